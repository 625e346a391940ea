#!/usr/bin/env bash
# The README's first command: install, build, then run the main job on the built-in model: a
# local disaggregated cluster (router + 1 prefill + 1 decode process) answers one streaming chat
# request, prints the reply, and shuts down. Pass --keep-serving to leave it running on :8000.
# Only the `tandem` binary is built here (the test command builds the tests); the reply goes to
# stdout, everything else to stderr, and logging is warnings-only unless TANDEM_LOG_LEVEL says
# otherwise (trace, debug, info, warn, error).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
if [ ! -x build/bin/tandem ]; then
  echo "demo: first build of the tandem binary (about 10 minutes on 2 cores; later builds are incremental)" >&2
fi
TANDEM_BUILD_TARGETS=tandem scripts/build.sh >&2
LOG_LEVEL=${TANDEM_LOG_LEVEL:-warn}
if [ "${1:-}" = "--keep-serving" ]; then
  exec build/bin/tandem --log-level "$LOG_LEVEL" serve --demo --num-prefill 1 --num-decode 1 --port 8000
fi
exec build/bin/tandem --log-level "$LOG_LEVEL" serve --demo --num-prefill 1 --num-decode 1 --demo-request
