#!/usr/bin/env bash
# The README's first command: install, build, then run the main job on the built-in model: a
# local disaggregated cluster (router + 1 prefill + 1 decode process) answers one streaming chat
# request, prints the reply, and shuts down. Pass --keep-serving to leave it running on :8000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
if [ "${1:-}" = "--keep-serving" ]; then
  exec build/bin/tandem serve --demo --num-prefill 1 --num-decode 1 --port 8000
fi
exec build/bin/tandem serve --demo --num-prefill 1 --num-decode 1 --demo-request
