#!/usr/bin/env bash
# Run the Durable Streams conformance suite against the durable-sessions binary.
#
#   bash tests/compat/run-conformance.sh [--base-url URL] [extra vitest args...]
#
# Starts `$DS_BIN serve` on a free 127.0.0.1 port with a fresh temp data dir and
# `--long-poll-timeout 3`, waits (bounded) for GET /readyz == 200, runs the
# vitest wrapper (conformance.test.mjs), stops the server with SIGTERM, prints
# the server log tail if anything failed, and exits with vitest's exit code.
#
# With --base-url URL no server is started; the suite runs against URL.
# Extra arguments are passed to vitest, e.g. `-t "Long-poll"` to filter.
#
# Environment:
#   DS_BIN            server binary (default: build/durable-sessions, relative to repo root)
#   DS_SUBSCRIPTIONS  1 (default) = also run the subscription API tests; 0 = skip them
#   DS_READY_TIMEOUT  seconds to wait for /readyz (default 30)
#   DS_STOP_TIMEOUT   seconds to wait for exit after SIGTERM (default 15)
#   DS_KEEP_DATA      1 = keep the temp data dir (it is always kept on failure)
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
READY_TIMEOUT="${DS_READY_TIMEOUT:-30}"
STOP_TIMEOUT="${DS_STOP_TIMEOUT:-15}"

log() { printf '[run-conformance] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

BASE_URL=""
VITEST_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --base-url) [[ $# -ge 2 ]] || die "--base-url needs a value"; BASE_URL="${2%/}"; shift 2 ;;
    --base-url=*) BASE_URL="${1#--base-url=}"; BASE_URL="${BASE_URL%/}"; shift ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) VITEST_ARGS+=("$1"); shift ;;
  esac
done

command -v node >/dev/null 2>&1 || die "node is not installed"

# --- node dependencies -------------------------------------------------------
if [[ ! -d "$SCRIPT_DIR/node_modules/@durable-streams/server-conformance-tests" ]]; then
  log "node_modules missing; running npm ci in tests/compat"
  (cd "$SCRIPT_DIR" && npm ci --no-audit --no-fund) || die "npm ci failed in $SCRIPT_DIR"
fi

# Use the vitest that the conformance package itself resolves. It depends on
# vitest ^4 and may have a nested copy; its describe/test only register with
# the runner of that same vitest instance.
VITEST_BIN="$(cd "$SCRIPT_DIR" && node -e '
  const { createRequire } = require("node:module");
  const path = require("node:path");
  const req = createRequire(require.resolve("@durable-streams/server-conformance-tests/package.json"));
  console.log(path.join(path.dirname(req.resolve("vitest/package.json")), "vitest.mjs"));
')" || die "cannot resolve vitest for @durable-streams/server-conformance-tests"
[[ -f "$VITEST_BIN" ]] || die "vitest entry not found: $VITEST_BIN"

# Plain output when not on a terminal (CI logs).
if [[ ! -t 1 && -z "${FORCE_COLOR:-}" ]]; then export NO_COLOR=1; fi

# --- helpers -------------------------------------------------------------------
http_status() { # URL -> prints HTTP status code, or 000 if unreachable
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
  else
    node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) })
      .then(r => console.log(r.status), () => console.log("000"))' "$1"
  fi
}

free_port() {
  node -e 'const s = require("node:net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

SERVER_PID=""
SERVER_LOG=""
DATA_DIR=""
FAILED=0

print_server_log() {
  [[ -n "$SERVER_LOG" && -f "$SERVER_LOG" ]] || return 0
  log "---- server log (last 100 lines of $SERVER_LOG) ----"
  tail -n 100 "$SERVER_LOG" >&2
  log "---- end of server log ----"
}

stop_server() { # graceful SIGTERM, escalate to SIGKILL after STOP_TIMEOUT
  [[ -n "$SERVER_PID" ]] || return 0
  local pid="$SERVER_PID" rc=0 i
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "WARNING: server (pid $pid) did not exit within ${STOP_TIMEOUT}s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      FAILED=1
    fi
  fi
  wait "$pid" 2>/dev/null; rc=$?
  if [[ $rc -ne 0 ]]; then
    log "WARNING: server exited with status $rc after SIGTERM (expected 0)"
    FAILED=1
  else
    log "server stopped cleanly"
  fi
}

cleanup() {
  stop_server
  if [[ $FAILED -ne 0 ]]; then print_server_log; fi
  if [[ -n "$DATA_DIR" ]]; then
    if [[ $FAILED -eq 0 && "${DS_KEEP_DATA:-0}" != 1 ]]; then
      rm -rf "$DATA_DIR"
    else
      log "data dir kept: $DATA_DIR"
    fi
  fi
  if [[ -n "$SERVER_LOG" && -f "$SERVER_LOG" && $FAILED -eq 0 ]]; then rm -f "$SERVER_LOG"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; FAILED=1; exit 130' INT TERM

# --- start the server ------------------------------------------------------------
if [[ -z "$BASE_URL" ]]; then
  DS_BIN="${DS_BIN:-build/durable-sessions}"
  if [[ "$DS_BIN" != /* ]]; then
    # Relative paths: relative to the current directory if it exists there,
    # otherwise relative to the repo root.
    if [[ -e "$PWD/$DS_BIN" ]]; then DS_BIN="$PWD/$DS_BIN"; else DS_BIN="$REPO_ROOT/$DS_BIN"; fi
  fi
  [[ -x "$DS_BIN" ]] || die "server binary not found or not executable: $DS_BIN (build it first or set DS_BIN)"

  DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ds-conformance-data.XXXXXX")"
  SERVER_LOG="$(mktemp "${TMPDIR:-/tmp}/ds-conformance-server.XXXXXX.log")"

  ready=0
  for attempt in 1 2 3; do   # retry only if the port was grabbed in between
    PORT="$(free_port)" || die "could not pick a free port"
    BASE_URL="http://127.0.0.1:$PORT"
    log "starting $DS_BIN on $BASE_URL (data dir $DATA_DIR, attempt $attempt)"
    "$DS_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" --long-poll-timeout 3 \
      >>"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!

    deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
      if [[ "$(http_status "$BASE_URL/readyz")" == 200 ]]; then ready=1; break; fi
      sleep 0.1
    done
    ((ready)) && break

    if kill -0 "$SERVER_PID" 2>/dev/null; then
      FAILED=1
      die "server did not answer 200 on $BASE_URL/readyz within ${READY_TIMEOUT}s"
    fi
    wait "$SERVER_PID"; rc=$?; SERVER_PID=""
    log "server exited with status $rc before becoming ready"
    if ! grep -qiE 'address (already )?in use|EADDRINUSE' "$SERVER_LOG"; then break; fi
  done
  if ((!ready)); then FAILED=1; die "server failed to start"; fi
  log "server ready (pid $SERVER_PID)"
else
  log "using existing server at $BASE_URL (no server started)"
fi

# --- run the suite -----------------------------------------------------------------
export DS_SUBSCRIPTIONS="${DS_SUBSCRIPTIONS:-1}"
log "running conformance suite ($(node "$VITEST_BIN" --version 2>/dev/null | head -n1)); subscriptions=$DS_SUBSCRIPTIONS"
(
  cd "$SCRIPT_DIR" &&
    DS_BASE_URL="$BASE_URL" node "$VITEST_BIN" run --config vitest.config.mjs "${VITEST_ARGS[@]}"
)
VITEST_RC=$?

if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "ERROR: server process died during the test run"
  FAILED=1
fi
[[ $VITEST_RC -ne 0 ]] && FAILED=1

stop_server
log "vitest exit code: $VITEST_RC"
exit "$VITEST_RC"
