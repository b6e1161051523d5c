#!/usr/bin/env bash
# Every benchmark in sequence: append (bench/append.sh), read / live / sessions / capacity
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
if [[ "$QUICK" == 1 ]]; then
  run append  bash bench/append.sh
  run perf    env FILL_GB="${FILL_GB:-1}" bash bench/perf/run.sh
  run search  bash bench/search.sh 50000 200
  run s3      env DURATION=3 WARMUP=1 bash bench/s3/run.sh
else
  run append  bash bench/append.sh
  run perf    bash bench/perf/run.sh
  run search  bash bench/search.sh
  run s3      bash bench/s3/run.sh
fi
if ((${#failed[@]})); then
  printf '\nFAILED workloads: %s\n' "${failed[*]}" >&2
  exit 1
fi
printf '\nall workloads completed\n' >&2
