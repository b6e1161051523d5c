#!/usr/bin/env bash
# Build the libFuzzer targets (build-fuzz, clang 14, ASan+UBSan) if needed and run each for
# SECONDS (default 10) on its committed corpus. New inputs go to a scratch copy of the corpus,
# so the committed corpus does not churn. Fails if any target crashes, leaks, times out, runs out
# of memory or violates one of its invariants; the reproducer is kept under
# build-fuzz/artifacts/<target>/ (copy it to tests/fuzz/crashes/ when reporting).
#
#   bash tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# Environment:
#   CXX_FUZZ          clang++ to use (default clang++-14)
#   DS_FUZZ_JOBS      build parallelism (default nproc)
#   DS_FUZZ_ARGS      extra libFuzzer flags (e.g. "-dict=... -only_ascii=1")
#   DS_FUZZ_MERGE=1   merge new coverage back into the committed corpus (minimised) afterwards
# Targets read DS_FUZZ_ALLOW_500 / DS_FUZZ_CHECK_METRICS (see fuzz_http_request.cc).
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
cd "$REPO_ROOT" || exit 2

log() { printf '[fuzz] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

SECONDS_PER_TARGET="${1:-10}"
[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || die "usage: $0 [SECONDS] [TARGET...]"
shift || true
CXX_FUZZ="${CXX_FUZZ:-clang++-14}"
BUILD_DIR="$REPO_ROOT/build-fuzz"
JOBS="${DS_FUZZ_JOBS:-$(nproc)}"

command -v "$CXX_FUZZ" >/dev/null 2>&1 ||
  die "$CXX_FUZZ not found (apt-get install -y clang-14 libclang-rt-14-dev lld-14)"

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  log "configuring $BUILD_DIR"
  cmake -S tests/fuzz -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_FUZZ" >/dev/null ||
    die "cmake configure failed"
fi
log "building fuzz targets (-j$JOBS)"
cmake --build "$BUILD_DIR" -j "$JOBS" || die "build failed"

TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  for src in tests/fuzz/fuzz_*.cc; do TARGETS+=("$(basename "$src" .cc)"); done
fi

# Sanitizer behaviour for the targets: fail on the first error, with a stack.
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:print_stacktrace=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"

SCRATCH="$BUILD_DIR/scratch-corpus"
ARTIFACTS="$BUILD_DIR/artifacts"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
  bin="$BUILD_DIR/$t"
  [[ -x "$bin" ]] || { log "no binary for $t"; failed+=("$t"); continue; }
  corpus="tests/fuzz/corpus/$t"
  mkdir -p "$corpus" "$SCRATCH/$t" "$ARTIFACTS/$t"
  cp -n "$corpus"/* "$SCRATCH/$t"/ 2>/dev/null || true
  out="$ARTIFACTS/$t/last-run.log"
  log "==== $t for ${SECONDS_PER_TARGET}s"
  # -timeout: one input may not take longer than 10 s; -rss_limit_mb: 2 GiB; -max_len: 64 KiB.
  # shellcheck disable=SC2086
  "$bin" "$SCRATCH/$t" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$ARTIFACTS/$t/" ${DS_FUZZ_ARGS:-} >"$out" 2>&1
  rc=$?
  execs="$(grep -E '^stat::number_of_executed_units:' "$out" | awk '{print $2}')"
  cov="$(grep -E '^#[0-9]+' "$out" | tail -n 1 | grep -oE 'cov: [0-9]+' | awk '{print $2}')"
  if [[ $rc -ne 0 ]]; then
    failed+=("$t")
    log "FAIL $t (exit $rc) after ${execs:-?} executions; log: $out"
    grep -E 'INVARIANT VIOLATED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY|Test unit written' "$out" |
      head -n 8 >&2
    summary+=("$t: FAIL, ${execs:-?} execs")
  else
    log "ok $t: ${execs:-?} executions, coverage ${cov:-?}"
    summary+=("$t: ok, ${execs:-?} execs, cov ${cov:-?}")
  fi
  if [[ "${DS_FUZZ_MERGE:-0}" == 1 && $rc -eq 0 ]]; then
    "$bin" -merge=1 "$corpus" "$SCRATCH/$t" >/dev/null 2>&1 || log "merge failed for $t"
  fi
done

log "---- summary (${SECONDS_PER_TARGET}s per target)"
for s in "${summary[@]}"; do log "$s"; done
if [[ ${#failed[@]} -gt 0 ]]; then
  log "FAILED: ${failed[*]}"
  exit 1
fi
log "all fuzz targets ran clean"
