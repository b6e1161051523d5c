// Durable Streams protocol conformance for durable-sessions.
//
// Thin vitest wrapper around @durable-streams/server-conformance-tests: the
// package's own CLI cannot locate its test entry when installed as a
// dependency, so we import runConformanceTests and register the suite here.
//
// Environment:
//   DS_BASE_URL       base URL of a running server (required), e.g. http://127.0.0.1:4437
//   DS_SUBSCRIPTIONS  set to 1 to also run the (optional) subscription API tests
//
// Usually driven by run-conformance.sh, which starts the server for you.
//
// NOTE: `describe` is taken from vitest's globals (globals: true in
// vitest.config.mjs) instead of `import { describe } from "vitest"`. The
// conformance package depends on vitest ^4 and may get its own nested copy;
// importing from "vitest" here could bind to a different vitest instance than
// the one the suite registers its tests with. Using the runner's globals
// always binds to the vitest that is actually running.
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = (process.env.DS_BASE_URL ?? ``).replace(/\/+$/, ``)
if (!baseUrl) {
  throw new Error(
    `DS_BASE_URL is not set (expected e.g. http://127.0.0.1:4437); ` +
      `use tests/compat/run-conformance.sh to start the server and run the suite`
  )
}

const subscriptions = process.env.DS_SUBSCRIPTIONS === `1`

// Must match the server's --long-poll-timeout (3s in run-conformance.sh).
const longPollTimeoutMs = 3000

globalThis.describe(`durable-sessions conformance (${baseUrl})`, () => {
  runConformanceTests({ baseUrl, longPollTimeoutMs, subscriptions })
})
