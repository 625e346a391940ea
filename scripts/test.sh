#!/usr/bin/env bash
# The README's second command: install, build, run every test (and a short fuzz run), then the
# sanitizer runs CI makes (scripts/sanitize.sh; TANDEM_SANITIZE_IN_TEST=0 skips them).
#   scripts/test.sh                                  everything
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
scripts/build.sh
BUILD_DIR=${TANDEM_BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${TANDEM_TEST_JOBS:-2}" --timeout 600
if [ -x scripts/fuzz_smoke.sh ]; then scripts/fuzz_smoke.sh; fi
if [ "${TANDEM_SANITIZE_IN_TEST:-1}" = 1 ]; then
  # The suites CI can afford under its time limit: the RPC layer, the router's scheduling core and
  # in-process cluster, the prefill/decode node engines over the loopback transport, the simulator
  # (their own threads, timers, queues and KV accounting) under ASan+UBSan; the concurrent ones
  # (rpc, cluster client, nodes) under TSan.
  scripts/sanitize.sh address,undefined common_tests rpc_tests scheduler_tests slo_tests sim_tests engine_tests \
    nodes_tests
  scripts/sanitize.sh thread rpc_tests scheduler_tests nodes_tests
fi
