// Start the upstream reference server (@durable-streams/server, installed by `npm ci` in
// tests/compat) in file-backed mode: stream data in log files fdatasync'ed on every append,
// metadata in LMDB under --data-dir.
//
//   node bench/reference-server.mjs --data-dir DIR [--port 0] [--host 127.0.0.1]
//
// Prints "listening on http://HOST:PORT" once accepting; stops cleanly on SIGINT/SIGTERM.
// DS_REFERENCE_DIR overrides where the package is looked up (a node_modules/... package dir).
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { mkdirSync } from "node:fs";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    "data-dir": { type: "string" },
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
  },
});
if (!values["data-dir"]) {
  console.error("usage: node bench/reference-server.mjs --data-dir DIR [--port N] [--host H]");
  process.exit(2);
}

let pkgDir = process.env.DS_REFERENCE_DIR;
if (!pkgDir) {
  const require = createRequire(new URL("../tests/compat/package.json", import.meta.url));
  try {
    pkgDir = path.dirname(require.resolve("@durable-streams/server/package.json"));
  } catch {
    console.error("reference-server: @durable-streams/server not found; run `npm ci` in tests/compat");
    process.exit(2);
  }
}
const pkg = createRequire(import.meta.url)(path.join(pkgDir, "package.json"));
const { DurableStreamTestServer, FileBackedStreamStore } = await import(
  pathToFileURL(path.join(pkgDir, "dist/index.js")).href
);

const dataDir = path.resolve(values["data-dir"]);
mkdirSync(dataDir, { recursive: true });
const server = new DurableStreamTestServer({
  host: values.host,
  port: Number(values.port),
  dataDir, // file-backed: FileBackedStreamStore instead of the in-memory StreamStore
});
await server.start();
if (!(server.store instanceof FileBackedStreamStore)) {
  console.error("reference-server: expected a file-backed store");
  await server.stop();
  process.exit(1);
}
console.log(`listening on ${server.url} (@durable-streams/server ${pkg.version}, file-backed, data dir ${dataDir})`);

let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 10_000);
    try {
      await server.stop();
      clearTimeout(force);
      process.exit(0);
    } catch (err) {
      console.error("reference-server: stop failed:", err);
      process.exit(1);
    }
  });
}
