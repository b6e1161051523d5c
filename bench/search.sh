#!/usr/bin/env bash
# Search benchmark: durable-sessions' index vs SQLite FTS5 on a generated agent-event corpus.
#   bash bench/search.sh [EVENTS] [SESSIONS]     (defaults 1000000 2000)
# Writes bench/results/<date>-search.{md,json}. Needs build/durable-sessions.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-1000000}
SESSIONS=${2:-2000}
CORPUS=$(mktemp /tmp/ds-search-corpus.XXXXXX.jsonl)
trap 'rm -f "$CORPUS"' EXIT
python3 bench/search/gen_corpus.py --events "$EVENTS" --sessions "$SESSIONS" > "$CORPUS"
mkdir -p "${RESULTS_DIR:-bench/results}"
python3 bench/search/bench.py --corpus "$CORPUS" --out "${RESULTS_DIR:-bench/results}/${BENCH_DATE:-$(date +%F)}-search"
