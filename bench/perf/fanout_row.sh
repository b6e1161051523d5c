#!/usr/bin/env bash
# The "SSE, 10,000 subscribers on one session" row of bench/perf/run.sh (fam_live), run by hand
# against one server binary, with the server's and the driver's CPU time over the append phase
# (from 1 s after the 10,000th SSE response started until the driver exits, drain included).
# For A/B runs of two builds: interleave them, e.g.
#   for i in 1 2 3; do bash bench/perf/fanout_row.sh /tmp/old 100; bash bench/perf/fanout_row.sh build/durable-sessions 100; done
# Usage: fanout_row.sh SERVER_BIN [EVENTS=100]   Env: SUBS (10000), PERF (ds_perf binary),
#        WORK (scratch dir, /tmp/ds-fanout), EXTRA (more server flags).
BIN=$1; EV=${2:-100}; SUBS=${SUBS:-10000}
WORK="${WORK:-/tmp/ds-fanout}"; mkdir -p "$WORK"
PERF="${PERF:-$WORK/ds_perf}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[[ -x "$PERF" ]] || g++ -O2 -std=c++20 -pthread -o "$PERF" "$ROOT/bench/perf/perf_client.cc" || exit 2
ulimit -n "$(ulimit -Hn)"
D=$(mktemp -d $WORK/data.XXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$BIN serve --listen 127.0.0.1:$PORT --data-dir $D --access-log false --log-level warn --max-connections 40000 --max-live-per-tenant 40000 --sse-max-duration 3600 --idle-timeout 3600 --long-poll-timeout 60 ${EXTRA:-} >>$WORK/srv.log 2>&1 &
PID=$!
$PERF ready --port $PORT --timeout 120 >/dev/null
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
$PERF live --port $PORT --mode sse --subs $SUBS --path /v1/sessions/fan-sse/events --typed --create --create-post --events $EV --interval-ms 200 --drain 60 --server-pid $PID --settle 2 > $WORK/out.$PID 2>&1 &
CL=$!
while :; do n=$(curl -s 127.0.0.1:$PORT/metrics | awk '/^ds_open_sse_connections/{print $2}'); [[ "${n:-0}" -ge $SUBS ]] && break; sleep 0.2; done
sleep 1
CC0=$(awk '{print $14+$15}' /proc/$CL/stat); C0=$(cpu); L0=$(cut -d' ' -f1-3 /proc/loadavg); T0=$(date +%s.%N)
C1=$(cpu); CC1=$(awk '{print $14+$15}' /proc/$CL/stat 2>/dev/null); while kill -0 $CL 2>/dev/null; do C1=$(cpu); CC1=$(awk '{print $14+$15}' /proc/$CL/stat 2>/dev/null || echo $CC1); sleep 0.1; done; wait $CL; T1=$(date +%s.%N)
kill -TERM $PID; wait $PID 2>/dev/null
rm -rf $D
python3 - "$(basename $BIN)" "$L0" "$C0" "$C1" "$EV" "$CC0" "$CC1" $WORK/out.$PID <<'PY'
import sys,json
name,load,c0,c1,ev,cc0,cc1,f=sys.argv[1:]
txt=open(f).read(); j=json.loads(txt[txt.index("{"):txt.rindex("}")+1])
cpu=(int(c1)-int(c0))/100.0
print("%-12s load=[%s] p50=%.1f p99=%.1f p999=%.1f all_p50=%.1f all_p99=%.1f append_p50=%.1f deliv=%d/%d cpu=%.2fs (%.1f ms/event, incl. drain)"%(name,load,j["p50_ms"],j["p99_ms"],j["p999_ms"],j["all_subscribers_p50_ms"],j["all_subscribers_p99_ms"],j["append_p50_ms"],j["deliveries"],j["expected_deliveries"],cpu,cpu*1000/int(ev)), "client_cpu=%.2fs"%((int(cc1)-int(cc0))/100.0), flush=True)
PY
rm -f $WORK/out.$PID
