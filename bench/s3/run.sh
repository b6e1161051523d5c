#!/usr/bin/env bash
# S3 tier benchmark: session append rate and p50/p99 latency with --durability local vs s3,
# against @20minutes/s3rver (a local S3 API that verifies SigV4), side by side in one run.
#
#   bash bench/s3/run.sh            # writes bench/results/<date>-s3.md (and .json)
#
# Environment: BUILD (build), CONNECTIONS (16), DURATION (10), WARMUP (2), EVENT_BYTES (200),
#              FLUSH_INTERVAL (1, seconds, local mode).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
BUILD="${BUILD:-build}"
CONNECTIONS="${CONNECTIONS:-16}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
EVENT_BYTES="${EVENT_BYTES:-200}"
FLUSH_INTERVAL="${FLUSH_INTERVAL:-1}"
DATE="${BENCH_DATE:-$(date +%F)}"
OUT_MD="${RESULTS_DIR:-bench/results}/${DATE}-s3.md"
OUT_JSON="${RESULTS_DIR:-bench/results}/${DATE}-s3.json"

cmake --build "$BUILD" -j2 --target durable-sessions ds_loadgen >&2
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

S3PORT="$(free_port)"
node --openssl-legacy-provider tests/system/s3rver_launch.cjs "$S3PORT" "$TMP/s3rver" bench >"$TMP/s3rver.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q listening "$TMP/s3rver.log" && break; sleep 0.1; done

run_mode() { # mode -> JSON on stdout
  local mode="$1" port; port="$(free_port)"
  AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$BUILD/durable-sessions" serve \
    --listen "127.0.0.1:$port" --data-dir "$TMP/data-$mode" --access-log false --log-level warn \
    --s3-endpoint "http://127.0.0.1:$S3PORT" --s3-bucket bench --s3-prefix "$mode" \
    --s3-flush-interval "$FLUSH_INTERVAL" --durability "$mode" >"$TMP/server-$mode.log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  "$BUILD/bench/ds_loadgen" --port "$port" --ready-path /readyz --ready-timeout 30 \
    --connections "$CONNECTIONS" --duration "$DURATION" --warmup "$WARMUP" \
    --event-bytes "$EVENT_BYTES" --no-create --server-pid "$pid" --label "durability-$mode" \
    --path '/v1/sessions/bench-{run}-{conn}/events'
  local objects
  objects="$(curl -s "127.0.0.1:$port/metrics" | awk '/^ds_s3_objects_uploaded_total/ {print $2}')"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "{\"objects\": ${objects:-0}}" >"$TMP/objects-$mode.json"
}

run_mode local >"$TMP/local.json"
run_mode s3 >"$TMP/s3.json"

python3 - "$TMP" "$OUT_MD" "$OUT_JSON" "$CONNECTIONS" "$DURATION" "$EVENT_BYTES" "$FLUSH_INTERVAL" <<'PY'
import json, sys, platform, os
tmp, out_md, out_json, conns, dur, ev, flush = sys.argv[1:]
res = {}
for m in ("local", "s3"):
    r = json.load(open(f"{tmp}/{m}.json"))
    r["s3_objects"] = json.load(open(f"{tmp}/objects-{m}.json"))["objects"]
    res[m] = r
rows = []
for m in ("local", "s3"):
    r = res[m]
    lat = r["latency_us"]
    rows.append((m, float(r["requests_per_s"]), lat["p50"] / 1000, lat["p99"] / 1000, r["errors"],
                 r["s3_objects"]))
json.dump(res, open(out_json, "w"), indent=2)
ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "n/a"
with open(out_md, "w") as f:
    f.write(f"# S3 tier: append rate and latency, --durability local vs s3\n\n")
    f.write(f"Session appends (1 event of {ev} B per request), {conns} keep-alive connections, one "
            f"request in flight each, {dur} s measured; S3 = @20minutes/s3rver on the same machine "
            f"(SigV4 verified), local mode flush interval {flush} s. Machine: {platform.node()}, "
            f"{os.cpu_count()} CPUs. Produced by `bash bench/s3/run.sh`.\n\n")
    f.write("| durability | appends/s | p50 ms | p99 ms | errors | objects PUT |\n|---|---|---|---|---|---|\n")
    for m, rps, p50, p99, err, objs in rows:
        f.write(f"| {m} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {err} | {objs} |\n")
    f.write(f"\ns3 / local: rate {ratio(rows[1][1], rows[0][1])}, p50 {ratio(rows[1][2], rows[0][2])}, "
            f"p99 {ratio(rows[1][3], rows[0][3])}.\n")
print(open(out_md).read())
PY
