#!/usr/bin/env bash
# The README's second command: install, build, run every test (and a short fuzz run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
BUILD_DIR=${TANDEM_BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${TANDEM_TEST_JOBS:-2}" --timeout 600
if [ -x scripts/fuzz_smoke.sh ]; then scripts/fuzz_smoke.sh; fi
