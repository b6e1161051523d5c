// Starts @20minutes/s3rver (installed under tests/compat) for the S3 system tests and benchmarks.
//   node --openssl-legacy-provider tests/system/s3rver_launch.cjs PORT DIRECTORY BUCKET
// Prints "s3rver listening on PORT" once ready. Credentials: S3RVER / S3RVER. Signatures are
// verified (allowMismatchedSignatures: false).
'use strict';
const path = require('path');
const { createRequire } = require('module');
const req = createRequire(path.join(__dirname, '..', 'compat', 'package.json'));
const S3rver = req('@20minutes/s3rver');

const [port, directory, bucket] = process.argv.slice(2);
const server = new S3rver({
  port: Number(port),
  address: '127.0.0.1',
  directory,
  silent: true,
  allowMismatchedSignatures: false,
  vhostBuckets: false,
  configureBuckets: [{ name: bucket || 'ds-test' }],
});
server.run((err, { port: actual } = {}) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  console.log(`s3rver listening on ${actual}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
