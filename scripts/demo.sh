#!/usr/bin/env bash
# The README's first command: install, build, then run the main job on the built-in model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
MODEL_DIR=${TANDEM_DEMO_MODEL:-build/models/tiny}
if [ ! -f "$MODEL_DIR/config.json" ]; then
  build/bin/tandem make-model --preset tiny --out "$MODEL_DIR"
fi
build/bin/tandem generate --model "$MODEL_DIR" --prompt-ids 1,2,3 --max-tokens 16 --temperature 0 --print-ids
