#!/usr/bin/env bash
# Every benchmark in sequence: append (bench/append.sh, a matrix of runs), read / live / sessions / capacity
# (bench/perf/run.sh), search (bench/search.sh), S3 tier (bench/s3/run.sh).
#
#   bash bench/run_all.sh           # full run, for the record (an hour or more on 2 cores)
#   QUICK=1 bash bench/run_all.sh   # CI-sized run
#
# A failing workload is reported and the others still run; the exit status is non-zero if any
# failed. Results land in bench/results/<date>-*.{json,md}.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
QUICK="${QUICK:-0}"
export QUICK
failed=()
run() { # NAME CMD...
  local name="$1"; shift
  printf '\n===== %s: %s (load %s)\n' "$name" "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
  local t0=$SECONDS
  if "$@"; then
    printf '===== %s: ok (%ds)\n' "$name" $((SECONDS - t0)) >&2
  else
    printf '===== %s: FAILED (exit %d, %ds)\n' "$name" $? $((SECONDS - t0)) >&2
    failed+=("$name")
  fi
}
# One date for every result file of this run, even if it runs past midnight.
BENCH_DATE="${BENCH_DATE:-$(date +%F)}"
export BENCH_DATE
# Append (issue 6 item 1): the headline run (32 connections, 1 x 200 B event per request, both
# stream layouts) with ROUNDS interleaved rounds, then one run per varied factor — 1 and 256
# connections, 100 events per request, 4 KiB events — joined into <date>-append-matrix.md.
append_matrix() {
  local names=(append) rc=0
  env ROUNDS="${APPEND_ROUNDS:-3}" bash bench/append.sh || rc=1
  local v
  for v in "append-c1 CONNECTIONS=1" "append-c256 CONNECTIONS=256" \
           "append-batch100 EVENTS=100" "append-4k EVENT_BYTES=4096"; do
    set -- $v
    names+=("$1")
    env NAME="$1" "$2" bash bench/append.sh || rc=1
  done
  python3 bench/append_matrix.py "${RESULTS_DIR:-bench/results}" "$BENCH_DATE" "${names[@]}" || rc=1
  return $rc
}
if [[ "$QUICK" == 1 ]]; then
  APPEND_ROUNDS="${APPEND_ROUNDS:-1}"
  run append  append_matrix
  run perf    env FILL_GB="${FILL_GB:-1}" bash bench/perf/run.sh
  run search  bash bench/search.sh 50000 200
  run s3      env DURATION=3 WARMUP=1 bash bench/s3/run.sh
else
  run append  append_matrix
  run perf    bash bench/perf/run.sh
  run search  bash bench/search.sh
  run s3      bash bench/s3/run.sh
fi
# The targets table of this run (met / missed, ratios), from the JSON files written above.
python3 bench/summarize.py "${RESULTS_DIR:-bench/results}" "$BENCH_DATE" >/dev/null || failed+=(summary)
if ((${#failed[@]})); then
  printf '\nFAILED workloads: %s\n' "${failed[*]}" >&2
  exit 1
fi
printf '\nall workloads completed\n' >&2
