#!/usr/bin/env bash
# SLO-aware scheduling against the scheduling Tandem had before it, on a real 1P+1D cluster with
# a two-class workload (interactive: short prompts, tight TTFT; batch: long prompts, loose TTFT),
# at rates up to twice what the prefill node sustains. docs/goodput.md explains the result.
#
#   bench/experiments/slo_scheduling.sh                   # this machine: small model, 2 cores
#   RATES="0.5 1" NUM_PROMPTS=40 OUT=/tmp/x bench/experiments/slo_scheduling.sh
#
# Setups (same cluster, same seeded workload, same step budget):
#   fcfs        --policy least-loaded --prefill-queue fcfs   (Tandem before SLO scheduling)
#   slo         --policy slo --latency-profile P             (EDF prefill queue, SLO placement)
#   slo-admit   the same with --admission slo                (429 slo_unattainable at once)
# The profile is measured here first (`tandem profile`, one thread: what each node gets).
# Environment: TANDEM, MODEL (default: the `small` preset), OUT, RATES, NUM_PROMPTS, SEED,
# BUDGET (prefill step budget, 256), INTERACTIVE / BATCH ("ttft_ms tpot_ms" of each class).
set -euo pipefail
cd "$(dirname "$0")/../.."

TANDEM=${TANDEM:-build/bin/tandem}
OUT=${OUT:-docs/goodput}
RATES=${RATES:-"0.5 1 2"}
NUM_PROMPTS=${NUM_PROMPTS:-60}
SEED=${SEED:-1}
BUDGET=${BUDGET:-256}
INTERACTIVE=${INTERACTIVE:-"1000 150"}
BATCH=${BATCH:-"15000 300"}
# shellcheck source=bench/experiments/experiment_common.sh
source bench/experiments/experiment_common.sh
experiment_setup slo_scheduling

# 1. The latency model of this machine, one thread per node.
PROFILE=$OUT/runs/slo_profile.json
"$TANDEM" profile --model "$MODEL" --threads 1 --max-num-batched-tokens "$BUDGET" --max-num-seqs 32 \
  --max-context 1280 --repeats 2 --validate --held-out 8 --out "$PROFILE" 2> "$WORK/profile.err" | tail -12

# 2. The classes and the workload: half interactive (64-192 prompt tokens, 32 out), half batch
#    (768-1024 prompt tokens, 64 out), shuffled with a fixed seed.
read -r I_TTFT I_TPOT <<< "$INTERACTIVE"
read -r B_TTFT B_TPOT <<< "$BATCH"
CLASSES=$WORK/classes.json
cat > "$CLASSES" <<JSON
{"classes": [{"name": "interactive", "ttft_ms": $I_TTFT, "tpot_ms": $I_TPOT, "priority": 0},
             {"name": "batch", "ttft_ms": $B_TTFT, "tpot_ms": $B_TPOT, "priority": 1}]}
JSON
DATA=$WORK/two_class.jsonl
two_class_workload "$NUM_PROMPTS" "$SEED" > "$DATA"


# 3. The runs: each setup serves every rate, a fresh bench run per rate.
run_setup() {  # $1: label, rest: serve flags
  local label=$1
  shift
  start_server "$label" "$TANDEM" serve --model "$MODEL" --num-prefill 1 --num-decode 1 --node-threads 1 --port 0 \
    --max-num-batched-tokens "$BUDGET" --slo-config "$CLASSES" --log-dir "$WORK/logs" "$@"
  "$TANDEM" bench --port "$PORT" --dataset-name random --random-input-len 16 --random-output-len 8 \
    --num-prompts 4 --ignore-eos --no-progress > /dev/null  # warm-up, not recorded
  for rate in $RATES; do
    "$TANDEM" bench --port "$PORT" --dataset-name custom --dataset-path "$DATA" --num-prompts "$NUM_PROMPTS" \
      --request-rate "$rate" --seed "$SEED" --ignore-eos --no-progress --slo-config "$CLASSES" --send-slo-class \
      --label "$label" --save-result --result-dir "$OUT/runs" --result-filename "slo_${label}_${rate}.json" \
      > "$WORK/bench_${label}_${rate}.txt"
    echo "$label at $rate req/s: done"
  done
  stop_server
}
run_setup fcfs --policy least-loaded --prefill-queue fcfs
run_setup slo --policy slo --latency-profile "$PROFILE"
run_setup slo-admit --policy slo --latency-profile "$PROFILE" --admission slo

# 4. The table: per class, attainment (failed and refused requests count as misses), goodput
#    (requests meeting their SLO per second) and refusals.
python3 - "$OUT/runs" "$RATES" <<'PY' | tee "$OUT/slo_scheduling.md"
import json, sys
runs, rates = sys.argv[1], sys.argv[2].split()
print("| setup | rate (req/s) | interactive attainment | interactive goodput | batch attainment | batch goodput | total goodput | 429s (i/b) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for setup in ["fcfs", "slo", "slo-admit"]:
    for rate in rates:
        j = json.load(open(f"{runs}/slo_{setup}_{rate}.json"))
        by = j["attainment_by_class"]
        refused = {"interactive": 0, "batch": 0}
        for r in j["requests"]:
            if r.get("error") and ("429" in r["error"] or "slo_unattainable" in r["error"]):
                refused[r["slo_class"]] += 1
        i, b = by.get("interactive", {}), by.get("batch", {})
        good = lambda c: c.get("met", 0) / j["duration"]
        print(f"| {setup} | {rate} | {100 * i.get('slo_attainment', 0):.0f}% | {good(i):.3f} | "
              f"{100 * b.get('slo_attainment', 0):.0f}% | {good(b):.3f} | {good(i) + good(b):.3f} | "
              f"{refused['interactive']}/{refused['batch']} |")
PY

# 5. Plots: attainment vs rate per class (each run's file with that class's attainment as its
#    attainment, labelled "setup class").
mkdir -p "$WORK/plot"
python3 - "$OUT/runs" "$WORK/plot" "$RATES" <<'PY'
import json, sys
runs, out, rates = sys.argv[1], sys.argv[2], sys.argv[3].split()
for setup in ["fcfs", "slo", "slo-admit"]:
    for rate in rates:
        j = json.load(open(f"{runs}/slo_{setup}_{rate}.json"))
        for cls in ["interactive", "batch"]:
            k = dict(j)
            k["slo_attainment"] = j["attainment_by_class"][cls]["slo_attainment"]
            k["label"] = f"{setup} {cls}"
            k["requests"] = [r for r in j["requests"] if r["slo_class"] == cls]
            json.dump(k, open(f"{out}/{cls}_{setup}_{rate}.json", "w"))
PY
for cls in interactive batch; do
  "$TANDEM" bench plot "$WORK"/plot/"$cls"_*.json --attainment 90 --out "$OUT/slo_scheduling_$cls.png" > /dev/null
done
