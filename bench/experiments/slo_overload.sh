#!/usr/bin/env bash
# Overload, repeated: the two-class workload of slo_scheduling.sh (interactive: 64-192 prompt
# tokens, TTFT 1 s, TPOT 150 ms; batch: 768-1024, TTFT 15 s, TPOT 300 ms; 60 requests, half each)
# on `tandem serve` 1P+1D, one thread per node, past the knee (~0.75 req/s), each setup REPEAT
# times per rate with a fresh server:
#   fcfs        least-loaded placement, prefill queue in arrival order
#   slo-queue   --policy slo (EDF prefill queue), over-target requests queued (the default)
#   slo-admit   --policy slo --admission slo: refused at once with 429 slo_unattainable
# Prints one line per run: per-class attainment (a refusal is a miss), interactive and total
# goodput (requests meeting their targets per second), 429s by class.
#   REPEAT=3 RATES="1.5 2" bench/experiments/slo_overload.sh
# Environment: TANDEM, MODEL (default: the `small` preset), OUT, RATES, REPEAT, SETUPS,
# PROFILE (default: the committed one-thread profile of the small preset).
set -euo pipefail
cd "$(dirname "$0")/../.."

TANDEM=${TANDEM:-build/bin/tandem}
OUT=${OUT:-/tmp/slo_overload}
RATES=${RATES:-"1.5 2"}
REPEAT=${REPEAT:-3}
SETUPS=${SETUPS:-"fcfs slo-queue slo-admit"}
PROFILE=${PROFILE:-docs/goodput/slo_profile_small_1thread.json}
# shellcheck source=bench/experiments/experiment_common.sh
source bench/experiments/experiment_common.sh
experiment_setup slo_overload

CLASSES=$WORK/classes.json
cat > "$CLASSES" <<JSON
{"classes": [{"name": "interactive", "ttft_ms": 1000, "tpot_ms": 150, "priority": 0},
             {"name": "batch", "ttft_ms": 15000, "tpot_ms": 300, "priority": 1}]}
JSON
DATA=$WORK/two_class.jsonl
two_class_workload 60 1 > "$DATA"

flags_of() {
  case $1 in
    fcfs) echo "--policy least-loaded --prefill-queue fcfs" ;;
    slo-queue) echo "--policy slo --admission queue" ;;
    slo-admit) echo "--policy slo --admission slo" ;;
    *) echo "unknown setup $1" >&2; exit 2 ;;
  esac
}

for setup in $SETUPS; do
  for rate in $RATES; do
    for run in $(seq 1 "$REPEAT"); do
      # shellcheck disable=SC2046
      start_server "$setup" "$TANDEM" serve --model "$MODEL" --num-prefill 1 --num-decode 1 --node-threads 1 \
        --port 0 --max-num-batched-tokens 256 --slo-config "$CLASSES" --latency-profile "$PROFILE" \
        --log-dir "$WORK/logs" $(flags_of "$setup")
      "$TANDEM" bench --port "$PORT" --dataset-name random --random-input-len 16 --random-output-len 8 \
        --num-prompts 4 --ignore-eos --no-progress > /dev/null  # warm-up, not recorded
      "$TANDEM" bench --port "$PORT" --dataset-name custom --dataset-path "$DATA" --num-prompts 60 \
        --request-rate "$rate" --seed 1 --ignore-eos --no-progress --slo-config "$CLASSES" --send-slo-class \
        --label "$setup" --save-result --result-dir "$OUT/runs" \
        --result-filename "overload_${setup}_${rate}_${run}.json" > /dev/null 2>&1 || true
      stop_server
    done
  done
done

python3 - "$OUT/runs" "$SETUPS" "$RATES" "$REPEAT" <<'PY' | tee "$OUT/slo_overload.txt"
import json, sys
runs, setups, rates, repeat = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), int(sys.argv[4])
targets = {"interactive": (1000, 150), "batch": (15000, 300)}
print("setup      rate  run  interactive  batch   interactive goodput  total goodput  429s (i/b)")
for setup in setups:
    for rate in rates:
        for run in range(1, repeat + 1):
            j = json.load(open(f"{runs}/overload_{setup}_{rate}_{run}.json"))
            met = {"interactive": 0, "batch": 0}
            n = {"interactive": 0, "batch": 0}
            refused = {"interactive": 0, "batch": 0}
            for r in j["requests"]:
                c = r["slo_class"]
                n[c] += 1
                if not r["success"]:
                    refused[c] += r["http_status"] == 429
                    continue
                ttft = (r["first_token_s"] - r["sent_s"]) * 1000
                tpot = (r["done_s"] - r["first_token_s"]) / max(1, r["output_tokens"] - 1) * 1000
                met[c] += ttft <= targets[c][0] and tpot <= targets[c][1]
            d = j["duration"]
            print(f"{setup:10s} {rate:4s} {run:4d}  {100 * met['interactive'] / n['interactive']:10.1f}%"
                  f" {100 * met['batch'] / n['batch']:5.1f}%  {met['interactive'] / d:19.3f}"
                  f"  {(met['interactive'] + met['batch']) / d:13.3f}  {refused['interactive']}/{refused['batch']}")
PY
