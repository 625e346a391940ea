#!/usr/bin/env bash
# A short libFuzzer run of every fuzz target that was built (clang++ present), starting from the
# committed seed corpora. Exits non-zero on a crash, a sanitizer report or a leak, and prints the
# reproducer's path and the report's tail. New corpus entries go to a temp dir, never to the repo.
# Usage: scripts/fuzz_smoke.sh [seconds per target, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${TANDEM_BUILD_DIR:-build}
SECONDS_PER_TARGET=${1:-${TANDEM_FUZZ_SECONDS:-20}}

# target name -> corpus folder and dictionary under tests/fuzz/
TARGETS=(
  safetensors_header_fuzzer:safetensors
  http_request_fuzzer:http
  openai_request_fuzzer:openai_request
  chat_template_render_fuzzer:chat_messages
  chat_template_parse_fuzzer:jinja
  tokenizer_json_fuzzer:tokenizer
  rpc_frame_fuzzer:rpc_frames
)

status=0
for spec in "${TARGETS[@]}"; do
  name=${spec%%:*}
  corpus=${spec#*:}
  bin="$BUILD_DIR/bin/$name"
  if [ ! -x "$bin" ]; then
    echo "fuzz_smoke: $name not built (no clang++ with libFuzzer), skipping" >&2
    continue
  fi
  work=$(mktemp -d)
  log="$work/fuzz.log"
  dict=()
  if [ -f "tests/fuzz/$corpus.dict" ]; then dict=(-dict="tests/fuzz/$corpus.dict"); fi
  set +e
  "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$work/" "${dict[@]}" \
    "$work" "tests/fuzz/corpus/$corpus" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    echo "fuzz_smoke: $name FAILED (exit $rc) after ${execs:-?} runs; reproducer(s):" >&2
    ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null >&2 || true
    tail -n 40 "$log" >&2
    status=1
  else
    echo "fuzz_smoke: $name ran ${SECONDS_PER_TARGET}s, ${execs:-?} inputs, no crash" >&2
    rm -rf "$work"
  fi
done
exit "$status"
