#!/usr/bin/env bash
# Session API client suites: the official TypeScript SDK (vitest, sdk.test.mjs) and the
# official Python SDK (pytest, test_python_sdk.py) against a started durable-sessions server.
#
#   bash tests/compat/sessions/run.sh [ts|py ...]      (default: both)
#
# Steps: create the Python venv build/venv if missing or stale (pinned versions from
# requirements.txt), install tests/compat node_modules if missing, create two API keys
# (tenants `tenant-a`, `tenant-b`) in a fresh temp data dir, start `$DS_BIN serve` on a free
# 127.0.0.1 port (--long-poll-timeout 2), wait for GET /readyz == 200, export DS_BASE_URL,
# DS_KEY_A, DS_KEY_B, run the suites, stop the server with SIGTERM, and exit non-zero if
# anything failed (the server log tail is printed then).
#
# If DS_BASE_URL, DS_KEY_A and DS_KEY_B are all set already, no server is started.
#
# Environment:
#   DS_BIN            server binary (default build/durable-sessions, relative to the repo root)
#   DS_VENV           Python venv (default build/venv, relative to the repo root)
#   DS_READY_TIMEOUT  seconds to wait for /readyz (default 30)
#   DS_STOP_TIMEOUT   seconds to wait for exit after SIGTERM (default 15)
#   DS_KEEP_DATA      1 = keep the temp data dir (always kept on failure)
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMPAT_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../../.." && pwd)"
READY_TIMEOUT="${DS_READY_TIMEOUT:-30}"
STOP_TIMEOUT="${DS_STOP_TIMEOUT:-15}"
cd "$REPO_ROOT" || exit 2

log() { printf '[sessions] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; FAILED=1; exit 2; }

SUITES=("$@")
[[ ${#SUITES[@]} -eq 0 ]] && SUITES=(ts py)
for s in "${SUITES[@]}"; do
  [[ "$s" == ts || "$s" == py ]] || { log "unknown suite '$s' (expected ts or py)"; exit 2; }
done
want() { local s; for s in "${SUITES[@]}"; do [[ "$s" == "$1" ]] && return 0; done; return 1; }

SERVER_PID=""
SERVER_LOG=""
DATA_DIR=""
FAILED=0

print_server_log() {
  [[ -n "$SERVER_LOG" && -f "$SERVER_LOG" ]] || return 0
  log "---- server log (last 60 lines of $SERVER_LOG) ----"
  grep -v '^{"ts"' "$SERVER_LOG" | tail -n 60 >&2   # skip the per-request access log
  log "---- end of server log ----"
}

stop_server() { # SIGTERM, escalate to SIGKILL after STOP_TIMEOUT
  [[ -n "$SERVER_PID" ]] || return 0
  local pid="$SERVER_PID" rc i
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "WARNING: server (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      FAILED=1
    fi
  fi
  wait "$pid" 2>/dev/null; rc=$?
  if [[ $rc -ne 0 ]]; then log "WARNING: server exited with status $rc after SIGTERM"; FAILED=1; fi
}

cleanup() {
  stop_server
  [[ $FAILED -ne 0 ]] && print_server_log
  if [[ -n "$DATA_DIR" ]]; then
    if [[ $FAILED -eq 0 && "${DS_KEEP_DATA:-0}" != 1 ]]; then rm -rf "$DATA_DIR"; else log "data dir kept: $DATA_DIR"; fi
  fi
  if [[ -n "$SERVER_LOG" && -f "$SERVER_LOG" && $FAILED -eq 0 ]]; then rm -f "$SERVER_LOG"; fi
}
trap cleanup EXIT
trap 'log "interrupted"; FAILED=1; exit 130' INT TERM

http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# --- Python venv -------------------------------------------------------------------
VENV="${DS_VENV:-build/venv}"
[[ "$VENV" == /* ]] || VENV="$REPO_ROOT/$VENV"
REQS="$SCRIPT_DIR/requirements.txt"
if want py; then
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (install python3-venv)"
  fi
  # Reinstall when requirements.txt changed since the last install.
  if ! cmp -s "$REQS" "$VENV/.ds-sessions-requirements.txt"; then
    log "installing $(grep -v '^#' "$REQS" | xargs) into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQS" || die "pip install failed"
    cp "$REQS" "$VENV/.ds-sessions-requirements.txt"
  fi
fi

# --- node dependencies ---------------------------------------------------------------
if want ts; then
  command -v node >/dev/null 2>&1 || die "node is not installed"
  if [[ ! -d "$COMPAT_DIR/node_modules/@anthropic-ai/sdk" || ! -f "$COMPAT_DIR/node_modules/vitest/vitest.mjs" ]]; then
    log "node_modules incomplete; running npm ci in tests/compat"
    (cd "$COMPAT_DIR" && npm ci --no-audit --no-fund) || die "npm ci failed"
  fi
fi

# --- server --------------------------------------------------------------------------
if [[ -n "${DS_BASE_URL:-}" && -n "${DS_KEY_A:-}" && -n "${DS_KEY_B:-}" ]]; then
  log "using existing server at $DS_BASE_URL (no server started)"
else
  DS_BIN="${DS_BIN:-build/durable-sessions}"
  [[ "$DS_BIN" == /* ]] || DS_BIN="$REPO_ROOT/$DS_BIN"
  [[ -x "$DS_BIN" ]] || die "server binary not found: $DS_BIN (build it first or set DS_BIN)"
  DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ds-sessions-data.XXXXXX")"
  SERVER_LOG="$(mktemp "${TMPDIR:-/tmp}/ds-sessions-server.XXXXXX.log")"

  make_key() { # tenant -> prints the key (last stdout line of `keys create`)
    local out
    out="$("$DS_BIN" keys create --data-dir "$DATA_DIR" --tenant "$1" 2>>"$SERVER_LOG")" || return 1
    printf '%s\n' "$out" | tail -n 1 | tr -d '[:space:]'
  }
  DS_KEY_A="$(make_key tenant-a)" && [[ -n "$DS_KEY_A" ]] || die "keys create --tenant tenant-a failed"
  DS_KEY_B="$(make_key tenant-b)" && [[ -n "$DS_KEY_B" ]] || die "keys create --tenant tenant-b failed"
  [[ "$DS_KEY_A" != "$DS_KEY_B" ]] || die "keys create printed the same key twice"

  ready=0
  for attempt in 1 2 3; do
    PORT="$(free_port)" || die "could not pick a free port"
    DS_BASE_URL="http://127.0.0.1:$PORT"
    log "starting $DS_BIN on $DS_BASE_URL (data dir $DATA_DIR, attempt $attempt)"
    "$DS_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" --long-poll-timeout 2 >>"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      [[ "$(http_status "$DS_BASE_URL/readyz")" == 200 ]] && { ready=1; break; }
      sleep 0.1
    done
    ((ready)) && break
    kill -0 "$SERVER_PID" 2>/dev/null && die "server not ready within ${READY_TIMEOUT}s"
    wait "$SERVER_PID"; SERVER_PID=""
    grep -qiE 'address (already )?in use|EADDRINUSE' "$SERVER_LOG" || break
  done
  ((ready)) || die "server failed to start"
  log "server ready (pid $SERVER_PID)"
fi
export DS_BASE_URL DS_KEY_A DS_KEY_B

# --- suites --------------------------------------------------------------------------
[[ ! -t 1 && -z "${FORCE_COLOR:-}" ]] && export NO_COLOR=1
results=()
if want ts; then
  log "TypeScript SDK suite (@anthropic-ai/sdk via vitest)"
  (cd "$SCRIPT_DIR" && node "$COMPAT_DIR/node_modules/vitest/vitest.mjs" run --config vitest.config.mjs)
  rc=$?; results+=("ts=$rc"); ((rc)) && FAILED=1
fi
if want py; then
  log "Python SDK suite (anthropic via pytest)"
  (cd "$SCRIPT_DIR" && "$VENV/bin/python" -m pytest -p no:cacheprovider -q -rfE test_python_sdk.py)
  rc=$?; results+=("py=$rc"); ((rc)) && FAILED=1
fi

if [[ -n "$SERVER_PID" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "ERROR: server process died during the run"; FAILED=1
fi
stop_server
log "exit codes: ${results[*]}"
exit "$FAILED"
