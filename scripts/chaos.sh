#!/usr/bin/env bash
# Chaos under load, the long run: a 2P+2D `tandem serve` cluster under steady streaming load
# while nodes are killed -9 (and restarted by serve), stopped for 1-3 s, and cut from the decode
# nodes mid-transfer (tests/scheduler/ucx/cluster_chaos_test.cc; CI runs it for 60 s). Builds
# nothing: run scripts/build.sh first. Prints the fault log and the summary; exits non-zero when
# an invariant broke (a request that never ended, a block not freed, a node that never rejoined
# or takes no work, the router's memory growing).
# Usage: scripts/chaos.sh [seconds, default 600] [seed, default: from the clock, printed]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TANDEM_BUILD_DIR:-build}
export TANDEM_CHAOS_SECONDS=${1:-${TANDEM_CHAOS_SECONDS:-600}}
export TANDEM_CHAOS_SEED=${2:-${TANDEM_CHAOS_SEED:-$(date +%s)}}
bin=$(find "$BUILD_DIR" -name cluster_ucx_tests -type f -perm -u+x | head -n 1)
if [ -z "$bin" ]; then
  echo "chaos: cluster_ucx_tests not built under $BUILD_DIR (scripts/build.sh)" >&2
  exit 2
fi
echo "chaos: $TANDEM_CHAOS_SECONDS s, seed $TANDEM_CHAOS_SEED ($bin)"
"$bin" --gtest_filter='ClusterChaosTest.*' --gtest_color=no
