// Vitest config for the Durable Streams conformance wrapper (conformance.test.mjs).
//
// Mirrors the conformance package's own CLI config (vitest.cli.config.mjs in
// @durable-streams/server-conformance-tests): explicit include, generous
// test/hook timeouts (long-poll tests set their own per-test timeout of
// longPollTimeoutMs + 1s), default sequencing -- tests run one after another
// except those the suite marks test.concurrent (TTL/expiry tests), which run
// with vitest's default maxConcurrency. There is a single test file, so a
// single worker.
//
// Plain object export (no `vitest/config` import) so this file works with
// whichever vitest major version is resolved (see run-conformance.sh).
export default {
  test: {
    include: [`conformance.test.mjs`],
    exclude: [`**/node_modules/**`],
    globals: true,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    maxConcurrency: 5,
    passWithNoTests: false,
    retry: 0,
  },
}
