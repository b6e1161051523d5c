#!/usr/bin/env bash
# Sanitizer builds: build the server and unit tests with a sanitizer, then run the unit tests,
# the system tests, the Durable Streams conformance suite and (when present) the session SDK
# suites against the instrumented binary. Fails on any test failure AND on any sanitizer report,
# including ones from a server process whose exit status a suite does not check (reports are
# written to files with log_path and collected at the end).
#
#   bash tests/sanitize.sh asan|tsan [unit|system|compat|sessions ...]   (default: all four)
#
#   asan  build-asan, -DDS_SANITIZE=ON (ASan+UBSan), RelWithDebInfo
#   tsan  build-tsan, -fsanitize=thread, RelWithDebInfo
#
# Environment:
#   DS_SANITIZE_KEEP_GOING=1  report every error instead of stopping at the first one
#                             (halt_on_error=0; UBSan keeps going, ASan still stops at the first
#                             memory error as it cannot recover from those)
#   DS_SANITIZE_JOBS          build parallelism (default: nproc)
#   DS_SANITIZE_LOG_DIR       where sanitizer reports go (default build-<kind>/sanitizer-logs)
#   Other DS_* variables are passed through to the suites (DS_CRASH_CYCLES, DS_READY_TIMEOUT…).
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$REPO_ROOT" || exit 2

log() { printf '[sanitize] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

KIND="${1:-}"
[[ "$KIND" == asan || "$KIND" == tsan ]] || die "usage: $0 asan|tsan [unit|system|compat|sessions ...]"
shift
SUITES=("$@")
[[ ${#SUITES[@]} -eq 0 ]] && SUITES=(unit system compat sessions)
for s in "${SUITES[@]}"; do
  case "$s" in unit|system|compat|sessions) ;; *) die "unknown suite '$s'" ;; esac
done

BUILD_DIR="build-$KIND"
JOBS="${DS_SANITIZE_JOBS:-$(nproc)}"
LOG_DIR="${DS_SANITIZE_LOG_DIR:-$REPO_ROOT/$BUILD_DIR/sanitizer-logs}"
HALT=1
[[ "${DS_SANITIZE_KEEP_GOING:-0}" == 1 ]] && HALT=0

# --- configure and build ---------------------------------------------------------------------
if [[ "$KIND" == asan ]]; then
  CONFIG=(-DDS_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
else
  CONFIG=(-DDS_SANITIZE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
          "-DCMAKE_CXX_FLAGS=-fsanitize=thread -fno-omit-frame-pointer"
          -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread)
fi
log "configuring $BUILD_DIR (${CONFIG[*]})"
cmake -S . -B "$BUILD_DIR" -G Ninja "${CONFIG[@]}" >/dev/null || die "cmake configure failed"
log "building durable-sessions and unit_tests in $BUILD_DIR (-j$JOBS)"
cmake --build "$BUILD_DIR" -j "$JOBS" --target durable-sessions unit_tests || die "build failed"

# --- sanitizer runtime options ---------------------------------------------------------------
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"
if [[ "$KIND" == asan ]]; then
  export ASAN_OPTIONS="halt_on_error=$HALT:abort_on_error=1:detect_leaks=1:print_stacktrace=1:\
detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:\
log_path=$LOG_DIR/asan:log_exe_name=1"
  export UBSAN_OPTIONS="halt_on_error=$HALT:abort_on_error=1:print_stacktrace=1:\
log_path=$LOG_DIR/ubsan:log_exe_name=1"
  export LSAN_OPTIONS="print_suppressions=0"
else
  export TSAN_OPTIONS="halt_on_error=$HALT:abort_on_error=1:second_deadlock_stack=1:\
history_size=4:log_path=$LOG_DIR/tsan:log_exe_name=1"
fi
export DS_BIN="$REPO_ROOT/$BUILD_DIR/durable-sessions"
# Instrumented servers start and answer more slowly.
export DS_READY_TIMEOUT="${DS_READY_TIMEOUT:-90}"

# --- run the suites --------------------------------------------------------------------------
failed=()
run_suite() {  # name command...
  local name="$1"; shift
  log "==== $KIND: $name ===="
  local start=$SECONDS
  if "$@"; then
    log "PASS $name ($((SECONDS - start))s)"
  else
    log "FAIL $name (exit $?, $((SECONDS - start))s)"
    failed+=("$name")
  fi
}
for s in "${SUITES[@]}"; do
  case "$s" in
    unit) run_suite unit bash -c "cd '$BUILD_DIR' && ctest --output-on-failure -j '$JOBS' --timeout 600" ;;
    system) run_suite system bash tests/system/run.sh ;;
    compat) run_suite compat bash tests/compat/run-conformance.sh ;;
    sessions)
      if [[ -f tests/compat/sessions/run.sh ]]; then
        run_suite sessions bash tests/compat/sessions/run.sh
      fi ;;
  esac
done

# --- collect sanitizer reports ---------------------------------------------------------------
shopt -s nullglob
reports=("$LOG_DIR"/*)
if [[ ${#reports[@]} -gt 0 ]]; then
  log "${#reports[@]} sanitizer report file(s) in $LOG_DIR:"
  for r in "${reports[@]}"; do
    log "---- $r"
    # The whole report up to its stacks' end (the summary line alone does not say where).
    head -n 80 "$r" >&2
  done
  failed+=("sanitizer-reports")
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  log "FAILED ($KIND): ${failed[*]}"
  exit 1
fi
log "all $KIND suites passed with no sanitizer reports"
