// Vitest config for the session-API suite driven by the official TypeScript SDK
// (sdk.test.mjs). Run through tests/compat/sessions/run.sh, which starts a server
// and exports DS_BASE_URL, DS_KEY_A and DS_KEY_B.
//
// Plain object export (no `vitest/config` import) so it works with whichever
// vitest major is resolved. One file, tests in declaration order (they share
// state: the flow create -> send -> list -> stream -> ... -> delete).
export default {
  test: {
    include: [`sdk.test.mjs`],
    exclude: [`**/node_modules/**`],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: false,
    sequence: { concurrent: false },
    passWithNoTests: false,
    retry: 0,
  },
}
