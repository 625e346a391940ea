#!/usr/bin/env bash
# Builds the tree with sanitizers into its own folder and runs test suites there. Any report, in
# a test binary or in a process it started (the `tandem` children of the multi-process suites),
# fails the run. Called by scripts/test.sh (CI) and by `scripts/test.sh --sanitize`.
#   scripts/sanitize.sh address,undefined              the whole tree (benches, CUDA sources and
#                                                      fuzzers compiled too) and every suite
#   scripts/sanitize.sh thread rpc_tests scheduler_tests   only those test binaries (and what
#                                                      they link) are built, each run whole
# Suppressions live in scripts/sanitizers/ and each names its third-party cause.
set -euo pipefail
cd "$(dirname "$0")/.."
SANITIZERS=${1:?usage: scripts/sanitize.sh address,undefined|thread [TEST_BINARY...]}
shift
case "$SANITIZERS" in
  address | undefined | address,undefined | undefined,address | thread) ;;
  *) echo "sanitize: '$SANITIZERS': expected address,undefined or thread" >&2; exit 2 ;;
esac
BUILD_DIR=${TANDEM_SANITIZE_BUILD_DIR:-build-${SANITIZERS//,/-}}
SUPP=$PWD/scripts/sanitizers
# Every process writes its ASan, LeakSanitizer or TSan report to REPORTS/report.<pid> (children's
# stderr goes to log files the tests may never print); the run fails if any file is there at the
# end. GCC 12's UBSan runtime ignores log_path and writes to stderr; without recovery a report
# aborts the process, which its test sees.
REPORTS=$PWD/$BUILD_DIR/sanitizer-reports
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1:protect_shadow_gap=0:log_path=$REPORTS/report${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/report${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp:log_path=$REPORTS/report${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
# UCX's memory hooks (libucm) wrap madvise/mmap; a thread exiting after the sanitizer dropped its
# state crashes inside them. Registration does not need them here (pools are registered whole).
export UCX_MEM_EVENTS=no UCX_MEM_MALLOC_HOOKS=no UCX_MEM_MMAP_HOOK_MODE=none
# libgomp is not built with TSan: its thread hand-offs and barriers are invisible, so every
# OpenMP region would be reported. One thread per region (the kernels split work by the team
# they get) keeps TSan on our own threads.
if [ "$SANITIZERS" = thread ]; then export OMP_THREAD_LIMIT=1; fi

start=$(date +%s)
# -O1 with line tables (-g1): stack traces name lines, the suites stay fast, and the build is
# quicker than -O2 with full debug info. nvcc objects are not instrumented (linked as they are).
TANDEM_BUILD_DIR=$BUILD_DIR TANDEM_BUILD_TARGETS="$*" scripts/build.sh -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" \
  -DTANDEM_SANITIZE="$SANITIZERS"
built=$(date +%s)
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
status=0
if [ $# -eq 0 ]; then
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${TANDEM_TEST_JOBS:-2}" --timeout 1800 || status=$?
else
  for suite in "$@"; do
    echo "sanitize ($SANITIZERS): $suite"
    "$BUILD_DIR/bin/$suite" --gtest_brief=1 || status=$?
  done
fi
reports=$(find "$REPORTS" -type f | sort)
if [ -n "$reports" ]; then
  for f in $reports; do
    echo "=== sanitizer report: $f"
    cat "$f"
  done
  echo "sanitize ($SANITIZERS): $(echo "$reports" | wc -l) report(s)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "sanitize ($SANITIZERS): tests failed" >&2
  exit "$status"
fi
echo "sanitize ($SANITIZERS): build $((built - start)) s, tests $(($(date +%s) - built)) s, no report"
