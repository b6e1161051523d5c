#!/usr/bin/env bash
# Read, live-delivery, session (issue 3) and capacity benchmarks: durable-sessions vs the upstream
# reference server (@durable-streams/server, file-backed), measured in one run. See bench/README.md.
#
#   bash bench/perf/run.sh                      # full run (all families)
#   QUICK=1 bash bench/perf/run.sh              # CI-sized run (a few minutes)
#   FAMILIES="read live" bash bench/perf/run.sh # subset of: read live sessions capacity
#
# Writes bench/results/<date>-{read,live,sessions,capacity}.{json,md}.
# Env: BUILD (build), DS_BIN ($BUILD/durable-sessions), RESULTS_DIR (bench/results),
#      BENCH_TMPDIR (/tmp), KEEP_DATA=1, PEER=0 (skip the reference server).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
QUICK="${QUICK:-0}"
FAMILIES="${FAMILIES:-read live sessions capacity}"
BUILD="${BUILD:-build}"
RESULTS_DIR="${RESULTS_DIR:-bench/results}"
PEER="${PEER:-1}"
DATE="${BENCH_DATE:-$(date +%F)}"
log() { printf '[perf] %s\n' "$*" >&2; }

WORK="$(mktemp -d "${BENCH_TMPDIR:-/tmp}/ds-perf.XXXXXX")"
# A private copy of the server binary: the build dir may be rebuilt by others during the run.
cp "${DS_BIN:-$BUILD/durable-sessions}" "$WORK/durable-sessions" || { log "no server binary; run make build"; exit 2; }
DS="$WORK/durable-sessions"
PERF="$WORK/ds_perf"
if [[ -f "$BUILD/bench/perf/ds_perf" && "$BUILD/bench/perf/ds_perf" -nt bench/perf/perf_client.cc ]]; then
  cp "$BUILD/bench/perf/ds_perf" "$PERF"
else
  g++ -O2 -std=c++20 -pthread -o "$PERF" bench/perf/perf_client.cc || { log "building ds_perf failed"; exit 2; }
fi
LOADGEN="$WORK/ds_loadgen"
g++ -O2 -std=c++20 -pthread -o "$LOADGEN" bench/loadgen.cc || log "building ds_loadgen failed (sessions family will fail)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  if [[ "${KEEP_DATA:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

OURS_FLAGS=(--access-log false --log-level warn --max-connections 40000 --max-live-per-tenant 40000
  --sse-max-duration 3600 --idle-timeout 3600 --long-poll-timeout 60)
SRV_PID="" ; SRV_PORT=""
start_ours() { # DATA_DIR [extra flags]
  local dir="$1"; shift
  SRV_PORT="$(free_port)"
  "$DS" serve --listen "127.0.0.1:$SRV_PORT" --data-dir "$dir" "${OURS_FLAGS[@]}" "$@" >>"$WORK/ours.log" 2>&1 &
  SRV_PID=$!; PIDS+=("$SRV_PID")
  "$PERF" ready --port "$SRV_PORT" --timeout 120 >/dev/null || { log "ours did not become ready"; return 1; }
}
start_ref() { # DATA_DIR
  local dir="$1"
  SRV_PORT="$(free_port)"
  node bench/reference-server.mjs --data-dir "$dir" --port "$SRV_PORT" >>"$WORK/ref.log" 2>&1 &
  SRV_PID=$!; PIDS+=("$SRV_PID")
  for _ in $(seq 600); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SRV_PORT/")" != 000 ]] && return 0; sleep 0.1
  done
  log "reference did not start"; return 1
}
stop_srv() {
  [[ -n "$SRV_PID" ]] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null
  for _ in $(seq 150); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SRV_PID" 2>/dev/null
  wait "$SRV_PID" 2>/dev/null
  SRV_PID=""
}
put_stream() { curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' "http://127.0.0.1:$SRV_PORT$1"; }

# record FAMILY LABEL SERVER JSON — one line per measurement into $WORK/FAMILY.jsonl
record() {
  local fam="$1" label="$2" server="$3" json="$4"
  [[ -n "$json" ]] || { log "$fam/$label/$server: no output"; json='{"error":"no output"}'; }
  printf '{"label":"%s","server":"%s","load":"%s","result":%s}\n' "$label" "$server" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$json" >>"$WORK/$fam.jsonl"
  log "$fam $label [$server]: $json"
}
finish() { # FAMILY
  python3 bench/perf/report.py --family "$1" --in "$WORK/$1.jsonl" --quick "$QUICK" \
    --out "$RESULTS_DIR/$DATE-$1" || log "report for $1 failed"
}
servers() { if [[ "$PEER" == 1 ]]; then echo "ours reference"; else echo ours; fi; }
start_srv() { if [[ "$1" == ours ]]; then start_ours "$2"; else start_ref "$2"; fi; }

# ---- 1. catch-up and random-offset reads -----------------------------------------------------
fam_read() {
  local reqs=1000 per=1000 dur=10
  [[ "$QUICK" == 1 ]] && { reqs=100; dur=3; }
  local n=$((reqs * per))
  for s in $(servers); do
    start_srv "$s" "$WORK/read-$s" || { record read setup "$s" '{"error":"start failed"}'; continue; }
    put_stream /v1/stream/catchup >/dev/null
    record read "setup ($n events, 200 B, $per per POST)" "$s" \
      "$("$PERF" post --port "$SRV_PORT" --path /v1/stream/catchup --count $reqs --events $per --offsets "$WORK/offsets-$s.txt")"
    record read "catch-up from -1 (event count verified)" "$s" \
      "$("$PERF" catchup --port "$SRV_PORT" --path /v1/stream/catchup --reps 1)"
    record read "catch-up from -1" "$s" \
      "$("$PERF" catchup --port "$SRV_PORT" --path /v1/stream/catchup --reps 5 --no-count --expect-events $n)"
    for c in 1 4; do
      record read "random-offset reads, $c conn" "$s" \
        "$("$PERF" random --port "$SRV_PORT" --path /v1/stream/catchup --offsets "$WORK/offsets-$s.txt" --connections $c --duration $dur)"
    done
    if [[ "$s" == ours ]]; then
      # The same data through the session events endpoint (10,000 events per page, its maximum).
      record read "session setup ($n events, 200 B as sent, $per per POST)" ours \
        "$("$PERF" post --port "$SRV_PORT" --path /v1/sessions/catchup/events --typed --count $reqs --events $per)"
      record read "session catch-up from -1, limit=10000 (event count verified)" ours \
        "$("$PERF" catchup --port "$SRV_PORT" --path '/v1/sessions/catchup/events?limit=10000' --reps 1)"
      record read "session catch-up from -1, limit=10000" ours \
        "$("$PERF" catchup --port "$SRV_PORT" --path '/v1/sessions/catchup/events?limit=10000' --reps 5 --no-count --expect-events $n)"
    fi
    record read "server RSS after reads" "$s" "{\"rss_kb\":$(awk '/VmRSS/{print $2}' /proc/$SRV_PID/status)}"
    stop_srv
    rm -rf "$WORK/read-$s"
  done
  finish read
}

# ---- 2. live delivery ------------------------------------------------------------------------
fam_live() {
  local e1=2000 e100=500 e10k=100 nbig=10000
  [[ "$QUICK" == 1 ]] && { e1=300; e100=100; e10k=30; nbig=1000; }
  for s in $(servers); do
    start_srv "$s" "$WORK/live-$s" || continue
    # The reference takes seconds per append with 100 SSE readers (see bench/README.md): fewer events.
    local n1=$e1 n100=$e100
    [[ "$s" == reference ]] && { n1=$((e1 / 4)); n100=20; }
    for mode in sse long-poll; do
      record live "$mode, 1 subscriber" "$s" \
        "$("$PERF" live --port "$SRV_PORT" --mode $mode --subs 1 --path /v1/stream/l1-$mode --create --events $n1 --interval-ms 5)"
      record live "$mode, 100 subscribers" "$s" \
        "$("$PERF" live --port "$SRV_PORT" --mode $mode --subs 100 --path /v1/stream/l100-$mode --create --events $n100 --interval-ms 10 --drain 60)"
    done
    stop_srv
  done
  start_ours "$WORK/live-big" || return 1
  for mode in sse long-poll; do
    record live "$mode, $nbig subscribers on one session" ours \
      "$("$PERF" live --port "$SRV_PORT" --mode $mode --subs $nbig --path /v1/sessions/fan-$mode/events --typed --create --create-post \
         --events $e10k --interval-ms 200 --drain 60 --server-pid "$SRV_PID")"
  done
  "$PERF" post --port "$SRV_PORT" --path '/v1/sessions/own-{i}/events' --typed --count $nbig --connections 16 >/dev/null
  record live "sse, $nbig subscribers each on its own session" ours \
    "$("$PERF" live --port "$SRV_PORT" --mode sse --subs $nbig --own-sessions --path '/v1/sessions/own-{i}/events' --typed \
       --events $((e10k * 20)) --interval-ms 5 --drain 30 --server-pid "$SRV_PID")"
  stop_srv
  finish live
}

# ---- 3. issue 3: session appends/s (32 clients) and append-to-SSE latency (10,000 events) ------
fam_sessions() {
  local dur=10 nev=10000 nref=2000
  [[ "$QUICK" == 1 ]] && { dur=3; nev=1000; nref=300; }
  for s in $(servers); do
    start_srv "$s" "$WORK/sess-$s" || continue
    if [[ "$s" == ours ]]; then
      record sessions "appends/s, 32 clients, 1 event/request" ours \
        "$("$LOADGEN" --port "$SRV_PORT" --connections 32 --duration $dur --warmup 2 --no-create \
           --path '/v1/sessions/bench-{run}-{conn}/events' --server-pid "$SRV_PID" --label sessions 2>/dev/null)"
      record sessions "append-to-SSE latency, 1 subscriber" ours \
        "$("$PERF" live --port "$SRV_PORT" --mode sse --subs 1 --path /v1/sessions/sse1/events --typed --create --create-post \
           --events $nev --interval-ms 2 --drain 20)"
    else
      record sessions "appends/s, 32 clients, 1 event/request" reference \
        "$("$LOADGEN" --port "$SRV_PORT" --connections 32 --duration $dur --warmup 2 \
           --path '/v1/stream/bench-{run}-{conn}' --server-pid "$SRV_PID" --label reference 2>/dev/null)"
      record sessions "append-to-SSE latency, 1 subscriber" reference \
        "$("$PERF" live --port "$SRV_PORT" --mode sse --subs 1 --path /v1/stream/sse1 --typed --create \
           --events $nref --interval-ms 2 --drain 20)"
    fi
    stop_srv
  done
  finish sessions
}

# ---- 4. capacity -----------------------------------------------------------------------------
# Three restarts of the server on DIR, each recorded as "LABEL #k": time to ready, data size, RSS.
restarts() {
  local dir=$1 label=$2 t0 t1 du k
  du=$(du -sb "$dir" | cut -f1)
  for k in 1 2 3; do
    t0=$(date +%s%N); start_ours "$dir"; t1=$(date +%s%N)
    record capacity "$label #$k" ours \
      "{\"ms\":$(( (t1 - t0) / 1000000 )),\"data_bytes\":$du,\"rss_kb\":$(awk '/VmRSS/{print $2}' /proc/$SRV_PID/status)}"
    stop_srv
  done
}

fam_capacity() {
  local nidle=5000 nsess=${NSESS:-100000} ncreate=2000 fill_gb=${FILL_GB:-10}
  [[ "$QUICK" == 1 ]] && { nidle=1000; nsess=${NSESS:-5000}; ncreate=300; fill_gb=${FILL_GB:-1}; }
  for s in $(servers); do
    start_srv "$s" "$WORK/cap-$s" || continue
    if [[ "$s" == ours ]]; then
      "$PERF" post --port "$SRV_PORT" --path /v1/sessions/idle/events --typed --count 1 >/dev/null
      record capacity "idle SSE connections ($nidle, one session)" ours \
        "$("$PERF" idle --port "$SRV_PORT" --path /v1/sessions/idle/events --conns $nidle --server-pid "$SRV_PID")"
      # A fresh process for the next row: the heap freed by the closed connections would
      # otherwise be reused and the next row would measure (almost) nothing.
      stop_srv
      start_srv "$s" "$WORK/cap-$s" || continue
    fi
    put_stream /v1/stream/idle >/dev/null
    record capacity "idle SSE connections ($nidle, one JSON stream)" "$s" \
      "$("$PERF" idle --port "$SRV_PORT" --path /v1/stream/idle --conns $nidle --server-pid "$SRV_PID")"
    stop_srv
  done
  # sessions: creation rate (PUT /v1/sessions/{id}, empty body), then RSS with N sessions of one
  # event each (created implicitly by their first POST, 32 connections), then restart-to-ready
  # with that catalog (three restarts; RSS after each is the idle-sessions footprint).
  start_ours "$WORK/cap-sessions" || return 1
  for c in 1 32; do
    record capacity "session creation (PUT /v1/sessions/{id}), $c connections, $ncreate sessions" ours \
      "$("$PERF" post --port "$SRV_PORT" --method PUT --body '{}' --path "/v1/sessions/new$c-{i}" --count $ncreate --connections $c)"
  done
  stop_srv
  rm -rf "$WORK/cap-sessions"
  start_ours "$WORK/cap-sessions" || return 1
  local before after
  before=$(awk '/VmRSS/{print $2}' /proc/$SRV_PID/status)
  local pj
  pj="$("$PERF" post --port "$SRV_PORT" --path '/v1/sessions/cap-{i}/events' --typed --count $nsess --connections 32)"
  sleep 3
  after=$(awk '/VmRSS/{print $2}' /proc/$SRV_PID/status)
  local ok
  ok=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["requests"]-d["errors"])' "$pj" 2>/dev/null || echo "$nsess")
  record capacity "$nsess sessions, one event each (created by their first POST, 32 connections)" ours \
    "{\"create\":$pj,\"rss_before_kb\":$before,\"rss_after_kb\":$after,\"sessions_created\":$ok,\"bytes_per_session\":$(( (after - before) * 1024 / (ok > 0 ? ok : 1) ))}"
  stop_srv
  restarts "$WORK/cap-sessions" "restart-to-ready, $nsess sessions"
  rm -rf "$WORK/cap-sessions"
  # large data dir: 64 JSON streams of 8 KB events, 500 per POST (4 MB requests)
  start_ours "$WORK/cap-big" || return 1
  for i in $(seq 0 63); do put_stream "/v1/stream/big-$i" >/dev/null; done
  local reqs=$(( fill_gb * 1000000000 / 4000000 ))
  record capacity "fill ${fill_gb} GB" ours \
    "$("$PERF" post --port "$SRV_PORT" --path '/v1/stream/big-{m}' --mod 64 --events 500 --event-bytes 8000 --count $reqs --connections 4)"
  stop_srv
  restarts "$WORK/cap-big" "restart-to-ready, ${fill_gb} GB data (warm page cache)"
  rm -rf "$WORK/cap-big"
  finish capacity
}

mkdir -p "$RESULTS_DIR"
rc=0
for f in $FAMILIES; do
  log "=== $f (load $(cut -d' ' -f1-3 /proc/loadavg))"
  "fam_$f" || { log "family $f failed"; rc=1; }
done
exit $rc
