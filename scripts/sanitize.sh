#!/usr/bin/env bash
# Builds the tree with sanitizers into its own folder and runs test suites there; any report
# fails the run (halt_on_error). Called by scripts/test.sh (`--sanitize`, and CI's subset).
#   scripts/sanitize.sh address,undefined              every suite, through ctest
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
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
# UCX's memory hooks (libucm) wrap madvise/mmap; a thread exiting after the sanitizer dropped its
# state crashes inside them. Registration does not need them here (pools are registered whole).
export UCX_MEM_EVENTS=no UCX_MEM_MALLOC_HOOKS=no UCX_MEM_MMAP_HOOK_MODE=none
# libgomp is not built with TSan: its thread hand-offs and barriers are invisible, so every
# OpenMP region would be reported. One thread per region (the kernels split work by the team
# they get) keeps TSan on our own threads.
if [ "$SANITIZERS" = thread ]; then export OMP_THREAD_LIMIT=1; fi

start=$(date +%s)
# -O1 with line tables (-g1): stack traces name lines, the suites stay fast, and the build is
# quicker than -O2 with full debug info; no CUDA (nvcc objects are not instrumented) and no
# benches.
TANDEM_BUILD_DIR=$BUILD_DIR TANDEM_BUILD_TARGETS="$*" scripts/build.sh -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" \
  -DTANDEM_SANITIZE="$SANITIZERS" -DTANDEM_CUDA=OFF -DTANDEM_BUILD_BENCH=OFF
built=$(date +%s)
if [ $# -eq 0 ]; then
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${TANDEM_TEST_JOBS:-2}" --timeout 1800
else
  for suite in "$@"; do
    echo "sanitize ($SANITIZERS): $suite"
    "$BUILD_DIR/bin/$suite" --gtest_brief=1
  done
fi
echo "sanitize ($SANITIZERS): build $((built - start)) s, tests $(($(date +%s) - built)) s, no report"
