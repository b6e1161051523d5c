#!/usr/bin/env bash
# Append throughput benchmark: durable-sessions vs the upstream reference server
# (@durable-streams/server, file-backed) vs a null Beast server (the HTTP ceiling), plus the raw
# fdatasync rate of the data disk (the durability ceiling). See bench/README.md.
#
#   bash bench/append.sh            # ~10 s measured per run (+2 s warm-up)
#   QUICK=1 bash bench/append.sh    # ~3 s per run (+1 s warm-up)
#
# Prints a side-by-side table and writes bench/results/<YYYY-MM-DD>-append.{json,md}.
# Prerequisites (fresh clone): `make build` and `npm ci` in tests/compat (or just `make bench`).
#
# Environment (all optional):
#   QUICK=1            short runs
#   DURATION, WARMUP   measured / warm-up seconds per run (default 10 / 2; QUICK: 3 / 1)
#   CONNECTIONS        concurrent keep-alive connections (32)
#   EVENT_BYTES        bytes per JSON event (200)
#   EVENTS             events per request (1)
#   LOADGEN_THREADS    epoll threads in ds_loadgen (1)
#   WORKLOADS          space-separated subset of "per-stream hot" (both)
#   SERVERS            space-separated subset/order of "null ours reference ours-nojournal"
#                      (default "null ours reference"; ours-nojournal = --journal=false)
#   BUILD              CMake build dir (build)
#   DS_BIN             durable-sessions binary ($BUILD/durable-sessions)
#   BENCH_TMPDIR       where the servers' temp data dirs go (${TMPDIR:-/tmp}); the fsync ceiling
#                      is measured on this filesystem
#   RESULTS_DIR        output directory (bench/results)
#   NAME               result file name: RESULTS_DIR/<date>-NAME.{json,md} (append)
#   BENCH_DATE         the <date> in result file names (today; run_all.sh sets it once per run)
#   ROUNDS             repeat the whole server/workload matrix N times, interleaved; the report
#                      shows each server's median round (1)
#   KEEP_DATA=1        keep the temp dir (data dirs + server logs)
#   IDLE_WAIT          max seconds to wait before each run for the machine to be idle (180)
#   RETRIES            repeats of a run during which other processes used > OTHER_CPU_LIMIT
#                      cores (default 2, limit 0.25); if every attempt is disturbed, the least
#                      disturbed one is kept and flagged
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$REPO_ROOT"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

QUICK="${QUICK:-0}"
if [[ "$QUICK" == 1 ]]; then
  DURATION="${DURATION:-3}"; WARMUP="${WARMUP:-1}"; FSYNC_DURATION="${FSYNC_DURATION:-2}"
else
  DURATION="${DURATION:-10}"; WARMUP="${WARMUP:-2}"; FSYNC_DURATION="${FSYNC_DURATION:-5}"
fi
CONNECTIONS="${CONNECTIONS:-32}"
EVENT_BYTES="${EVENT_BYTES:-200}"
EVENTS="${EVENTS:-1}"
LOADGEN_THREADS="${LOADGEN_THREADS:-1}"
WORKLOADS="${WORKLOADS:-per-stream hot}"
SERVERS="${SERVERS:-null ours reference}"
BUILD="${BUILD:-build}"
DS_BIN="${DS_BIN:-$BUILD/durable-sessions}"
RESULTS_DIR="${RESULTS_DIR:-bench/results}"
NAME="${NAME:-append}"
STOP_TIMEOUT=15
READY_TIMEOUT=30
IDLE_THRESHOLD="${IDLE_THRESHOLD:-0.15}"   # machine busy fraction counted as "not idle"
IDLE_WAIT="${IDLE_WAIT:-180}"              # max seconds to wait for idle before each run
OTHER_CPU_LIMIT="${OTHER_CPU_LIMIT:-0.25}" # cores used by others in a window that void it
RETRIES="${RETRIES:-2}"                    # repeats of a run voided by other load
ROUNDS="${ROUNDS:-1}"

# --- prerequisites ----------------------------------------------------------------------------
[[ -f "$BUILD/build.ninja" || -f "$BUILD/Makefile" ]] || die "no CMake build dir at $BUILD; run \`make build\` first"
log "building bench tools"
cmake --build "$BUILD" -j2 --target ds_loadgen ds_null_server ds_fsync_rate >&2 || die "building the bench tools failed"
LOADGEN="$BUILD/bench/ds_loadgen"
NULL_SERVER="$BUILD/bench/ds_null_server"
FSYNC_RATE="$BUILD/bench/ds_fsync_rate"
[[ -x "$DS_BIN" ]] || die "server binary not found: $DS_BIN (run \`make build\`)"
command -v python3 >/dev/null || die "python3 is required (report generation)"
if [[ " $SERVERS " == *" reference "* ]]; then
  command -v node >/dev/null || die "node is required for the reference server"
  [[ -f tests/compat/node_modules/@durable-streams/server/package.json ]] ||
    die "reference server not installed; run \`npm ci\` in tests/compat"
fi
for w in $WORKLOADS; do [[ "$w" == per-stream || "$w" == hot ]] || die "unknown workload: $w"; done
for s in $SERVERS; do
  [[ "$s" == null || "$s" == ours || "$s" == reference || "$s" == ours-nojournal ]] || die "unknown server: $s"
done

WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/ds-bench.XXXXXX")"
OUT="$WORK/out"
mkdir -p "$OUT"
: >"$OUT/anomalies.txt"

SERVER_PID=""
SERVER_NAME=""
SERVER_LOG=""

anomaly() { log "WARNING: $*"; printf '%s\n' "$*" >>"$OUT/anomalies.txt"; }

STOP_RC=0
stop_server() { # SIGTERM, SIGKILL after STOP_TIMEOUT; exit status in STOP_RC
  STOP_RC=0
  [[ -n "$SERVER_PID" ]] || return 0
  local pid="$SERVER_PID" i rc=0
  SERVER_PID=""
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      anomaly "$SERVER_NAME (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sent SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  STOP_RC=$rc
}

cleanup() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]]; then stop_server; fi
  if [[ "${KEEP_DATA:-0}" == 1 || $rc -ne 0 ]]; then
    log "temp dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_open() { # PORT -> 0 when something accepts on 127.0.0.1:PORT
  python3 -c 'import socket, sys
s = socket.socket(); s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

# start_server NAME DATA_DIR -> sets SERVER_PID, PORT, SERVER_LOG, READY_ARGS
start_server() {
  local name="$1" data="$2" attempt deadline
  SERVER_NAME="$name"
  SERVER_LOG="$WORK/$name-$(basename "$data").log"
  mkdir -p "$data"
  : >"$SERVER_LOG"
  for attempt in 1 2 3; do # retry only if the port got taken in between
    PORT="$(free_port)"
    case "$name" in
      ours)
        "$DS_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$data" >>"$SERVER_LOG" 2>&1 &
        READY_ARGS=(--ready-path /readyz) ;;
      ours-nojournal)
        "$DS_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$data" --journal=false >>"$SERVER_LOG" 2>&1 &
        READY_ARGS=(--ready-path /readyz) ;;
      reference)
        node bench/reference-server.mjs --port "$PORT" --data-dir "$data" >>"$SERVER_LOG" 2>&1 &
        READY_ARGS=() ;;
      null)
        "$NULL_SERVER" --listen "127.0.0.1:$PORT" --threads 2 >>"$SERVER_LOG" 2>&1 &
        READY_ARGS=(--ready-path /readyz) ;;
    esac
    SERVER_PID=$!
    deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      if port_open "$PORT"; then return 0; fi
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      stop_server
      die "$name did not listen on port $PORT within ${READY_TIMEOUT}s (log: $SERVER_LOG)"
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    grep -qiE 'address (already )?in use|EADDRINUSE' "$SERVER_LOG" || break
  done
  tail -n 20 "$SERVER_LOG" >&2 || true
  die "$name failed to start (log: $SERVER_LOG)"
}

machine_busy() { # fraction of all CPUs busy over ~1 s
  python3 - <<'EOF'
import time
def snap():
    v = list(map(int, open("/proc/stat").readline().split()[1:9]))
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)
b0, t0 = snap(); time.sleep(1); b1, t1 = snap()
print(f"{(b1 - b0) / max(t1 - t0, 1):.3f}")
EOF
}

is_busy() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$1" "$2"; }

# Only 2 cores: a compile or anything else running alongside wrecks the numbers. Wait (bounded)
# until the machine is quiet before each run.
wait_idle() {
  local busy deadline=$((SECONDS + IDLE_WAIT)) warned=0
  while :; do
    busy="$(machine_busy)"
    is_busy "$busy" "$IDLE_THRESHOLD" || return 0
    if ((SECONDS >= deadline)); then
      anomaly "machine still ${busy} busy after waiting ${IDLE_WAIT}s for it to go idle; ran anyway"
      return 0
    fi
    ((warned)) || log "machine is ${busy} busy (other processes); waiting up to ${IDLE_WAIT}s for it to go idle"
    warned=1
  done
}

other_cpu() { # loadgen JSON -> cores of task CPU time used by neither the server nor ds_loadgen
  python3 -c 'import json, sys
v = json.load(open(sys.argv[1])).get("other_task_cores")
print(0 if v is None else v)' "$1" 2>/dev/null || echo 0
}

# --- preflight ----------------------------------------------------------------------------------
BUSY="$(machine_busy)"
echo "$BUSY" >"$OUT/preflight_busy.txt"
if is_busy "$BUSY" "$IDLE_THRESHOLD"; then
  log "machine was ${BUSY} busy at start (other processes compete for the $(nproc) cores)"
fi

log "config: ${CONNECTIONS} connections, ${EVENT_BYTES}-byte events, ${EVENTS} event(s)/request, ${WARMUP}s warm-up + ${DURATION}s measured, workloads: ${WORKLOADS}, servers: ${SERVERS}, rounds: ${ROUNDS}"

# --- durability ceiling -------------------------------------------------------------------------
wait_idle
log "measuring the fdatasync rate in $WORK (${FSYNC_DURATION}s per mode)"
"$FSYNC_RATE" --dir "$WORK" --duration "$FSYNC_DURATION" --bytes "$EVENT_BYTES" --mode both >"$OUT/fsync.json" ||
  anomaly "ds_fsync_rate failed"

# --- load runs ----------------------------------------------------------------------------------
run_one() { # WORKLOAD SERVER PATH_PATTERN ROUND -> $OUT/WORKLOAD-SERVER-rROUND.json (+ .meta.json); 1 = retry
  local workload="$1" server="$2" pattern="$3" round="$4" data res lg_rc=0 alive=1 du_bytes stop_rc other tag
  data="$WORK/data-$server-$workload-r$round"
  rm -rf "$data"
  start_server "$server" "$data"
  tag="[$workload] $server"
  ((ROUNDS > 1)) && tag+=" (round $round/$ROUNDS)"
  log "$tag: pid $SERVER_PID on 127.0.0.1:$PORT"
  res="$OUT/$workload-$server-r$round.json"
  rm -f "$res"
  "$LOADGEN" --port "$PORT" "${READY_ARGS[@]}" --ready-timeout "$READY_TIMEOUT" \
    --connections "$CONNECTIONS" --threads "$LOADGEN_THREADS" \
    --duration "$DURATION" --warmup "$WARMUP" --path "$pattern" \
    --event-bytes "$EVENT_BYTES" --events "$EVENTS" \
    --server-pid "$SERVER_PID" --label "$server" --out "$res" || lg_rc=$?
  kill -0 "$SERVER_PID" 2>/dev/null || alive=0
  du_bytes="$(du -sb "$data" 2>/dev/null | cut -f1)" || du_bytes=0
  stop_server
  stop_rc=$STOP_RC
  if [[ $lg_rc -ne 0 ]]; then
    anomaly "$tag: load generator failed (exit $lg_rc)"
    rm -f "$res"
  fi
  if [[ $alive == 0 ]]; then
    anomaly "$tag: server died during the run (exit $stop_rc)"
  elif [[ "$stop_rc" != 0 ]]; then
    anomaly "$tag: server exited with status $stop_rc after SIGTERM (expected 0)"
  fi
  if grep -qiE '\b(error|fatal|panic|abort|exception)\b' "$SERVER_LOG"; then
    anomaly "$tag: server log mentions errors: $(grep -iE '\b(error|fatal|panic|abort|exception)\b' "$SERVER_LOG" | head -n 3 | tr '\n' ' ' | cut -c1-400)"
  fi
  printf '{"server_exit_status": %s, "server_alive_at_end": %s, "data_dir_bytes": %s}\n' \
    "$stop_rc" "$([[ $alive == 1 ]] && echo true || echo false)" "${du_bytes:-0}" >"$OUT/$workload-$server-r$round.meta.json"
  rm -rf "$data"
  if [[ -f "$res" ]]; then
    other="$(other_cpu "$res")"
    if is_busy "$other" "$OTHER_CPU_LIMIT"; then
      log "$tag: other processes used $other cores during the window"
      return 1
    fi
  fi
  return 0
}

# Rounds are interleaved (every server once per round) so slow drift in the machine's state hits
# all servers alike; the report takes each server's median round.
for ((round = 1; round <= ROUNDS; round++)); do
  for workload in $WORKLOADS; do
    case "$workload" in
      per-stream) PATH_PATTERN='/v1/stream/bench-{run}-{conn}' ;;
      hot) PATH_PATTERN='/v1/stream/bench-{run}-hot' ;;
    esac
    for server in $SERVERS; do
      base="$OUT/$workload-$server-r$round"
      for ((attempt = 0; attempt <= RETRIES; attempt++)); do
        wait_idle
        if run_one "$workload" "$server" "$PATH_PATTERN" "$round"; then break; fi
        # keep every disturbed attempt; the least disturbed one is used if none is clean
        [[ -f "$base.json" ]] && mv "$base.json" "$base.a$attempt.json"
        mv "$base.meta.json" "$base.a$attempt.meta.json"
        if ((attempt < RETRIES)); then log "[$workload] $server: disturbed by other load; repeating the run"; fi
      done
      if [[ ! -f "$base.meta.json" ]]; then
        best="$(python3 -c 'import json, sys
def other(meta):
    try:
        v = json.load(open(meta[:-len(".meta.json")] + ".json")).get("other_task_cores")
        return float("inf") if v is None else v
    except OSError:
        return float("inf")
print(min(sys.argv[1:], key=other)[:-len(".meta.json")])' "$base".a*.meta.json)"
        cp "$best.meta.json" "$base.meta.json"
        [[ -f "$best.json" ]] && cp "$best.json" "$base.json"
        log "[$workload] $server: every attempt was disturbed; keeping the least disturbed one (${best##*.})"
      fi
    done
  done
done

# --- report ---------------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
DATE="${BENCH_DATE:-$(date +%F)}"
export BENCH_QUICK="$QUICK" BENCH_DURATION="$DURATION" BENCH_WARMUP="$WARMUP" BENCH_CONNECTIONS="$CONNECTIONS" \
  BENCH_EVENT_BYTES="$EVENT_BYTES" BENCH_EVENTS="$EVENTS" BENCH_LOADGEN_THREADS="$LOADGEN_THREADS" \
  BENCH_WORKLOADS="$WORKLOADS" BENCH_SERVERS="$SERVERS" BENCH_ROUNDS="$ROUNDS" BENCH_OTHER_CPU_LIMIT="$OTHER_CPU_LIMIT" BENCH_DS_BIN="$DS_BIN" BENCH_DATA_FS_DIR="$WORK"
python3 bench/report.py "$OUT" "$RESULTS_DIR/$DATE-$NAME.json" "$RESULTS_DIR/$DATE-$NAME.md"
log "wrote $RESULTS_DIR/$DATE-$NAME.json and $RESULTS_DIR/$DATE-$NAME.md"
