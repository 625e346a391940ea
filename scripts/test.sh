#!/usr/bin/env bash
# The README's second command and CI's: install, then build the whole tree with ASan+UBSan and
# run every suite there (the multi-process ones included: their `tandem` children are built with
# it too), a short fuzz run, and TSan on the concurrency-heavy suites.
#   scripts/test.sh                                  everything above
#   TANDEM_SANITIZE_IN_TEST=0 scripts/test.sh        the plain Release build (build/) and every
#                                                    suite there, with the fuzz run; quicker
#   scripts/test.sh --sanitize address,undefined [SUITE...]
#   scripts/test.sh --sanitize thread [SUITE...]     one sanitizer build (build-<sanitizers>/) and
#                                                    its run: the named test binaries, or all
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  shift
  scripts/install_deps.sh
  exec scripts/sanitize.sh "$@"
fi
scripts/install_deps.sh
if [ "${TANDEM_SANITIZE_IN_TEST:-1}" != 1 ]; then
  scripts/build.sh
  BUILD_DIR=${TANDEM_BUILD_DIR:-build}
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${TANDEM_TEST_JOBS:-2}" --timeout 600
  TANDEM_BUILD_DIR=$BUILD_DIR scripts/fuzz_smoke.sh
  exit 0
fi
# One instrumented build carries the whole suite: a plain build and a sanitized one of the whole
# tree do not both fit CI's time on 2 cores (docs/operations.md, "Sanitizers").
scripts/sanitize.sh address,undefined
# The fuzzers are clang builds with their own ASan+UBSan flags, compiled in the same tree.
TANDEM_BUILD_DIR=build-address-undefined scripts/fuzz_smoke.sh
# The suites with their own threads, timers and queues: the RPC layer, the router's scheduling
# core and in-process cluster, the prefill/decode node engines over the loopback transport.
scripts/sanitize.sh thread rpc_tests scheduler_tests nodes_tests
