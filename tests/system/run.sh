#!/usr/bin/env bash
# Run every tests/system/*_test.py with python3; exit non-zero if any fails.
#
#   bash tests/system/run.sh
#
# Tests read their configuration from the environment (e.g. DS_BIN, the server
# binary, default build/durable-sessions relative to the repo root). Runs from
# the repo root so relative paths behave the same wherever this is invoked.
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
cd "$REPO_ROOT" || exit 2

shopt -s nullglob
tests=("$SCRIPT_DIR"/*_test.py)
if [[ ${#tests[@]} -eq 0 ]]; then
  echo "[system] no tests found in $SCRIPT_DIR" >&2
  exit 2
fi

failed=()
for t in "${tests[@]}"; do
  name="$(basename "$t")"
  echo "[system] ==== $name ===="
  start=$SECONDS
  if python3 "$t"; then
    echo "[system] PASS $name ($((SECONDS - start))s)"
  else
    rc=$?
    echo "[system] FAIL $name (exit $rc, $((SECONDS - start))s)"
    failed+=("$name")
  fi
done

echo "[system] $((${#tests[@]} - ${#failed[@]})) of ${#tests[@]} test file(s) passed"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "[system] failed: ${failed[*]}"
  exit 1
fi
