#!/usr/bin/env bash
# Disaggregated (tandem serve, 1 prefill + 1 decode node) against colocated (tandem worker) on
# the same cores, the chatbot workload, and two SLO settings; docs/goodput.md explains the result.
#
#   bench/experiments/disagg_vs_colocated.sh            # this machine: small model, 2 cores
#   RATES="0.5 1 2" NUM_PROMPTS=40 OUT=/tmp/x bench/experiments/disagg_vs_colocated.sh
#   NAME=longprompt WORKLOAD="--dataset-name random --random-input-len 1024 --random-output-len 128" \
#     RATES="0.1 0.2 0.3" TIGHT_TPOT_FACTOR=2 bench/experiments/disagg_vs_colocated.sh
#
# Steps (every number it uses is measured here, in this run):
#   1. step times of the model on one thread (tandem generate): a prefill of the preset's mean
#      prompt and the decode time per token at batch 1;
#   2. SLO A = DistServe's chatbot SLO (OPT-13B: TTFT 0.25 s, TPOT 0.1 s) scaled by the ratio of
#      our step times to OPT-13B's on an A100 (roofline estimates, printed below);
#      SLO B = the same TTFT and a tight TPOT: TIGHT_TPOT_FACTOR (1.5) x our batch-1 decode time
#      per token;
#   3. each setup serves the same seeded workload at each rate (open loop, Poisson), one fresh
#      `tandem bench` run per rate; each run is then scored under both SLOs (`tandem bench rescore`:
#      the servers never see the targets, so one run answers both exactly);
#   4. attainment-vs-rate plots per SLO and a table: attainment per rate, goodput at the goal
#      (the highest rate meeting it, linearly interpolated between measured rates), and the ratio.
# Environment: TANDEM (binary), MODEL (an HF folder; default: make the `small` preset), OUT,
# NAME (prefix of the outputs, "chatbot"), WORKLOAD (tandem bench's data set flags; default the
# chatbot preset), RATES, NUM_PROMPTS, TOTAL_THREADS (2: the worker gets all, each node half),
# TIGHT_TPOT_FACTOR, GOAL (90), SEED, WORKER_ARGS / SERVE_ARGS (extra flags, e.g.
# WORKER_ARGS="--device cuda").
set -euo pipefail
cd "$(dirname "$0")/../.."

TANDEM=${TANDEM:-build/bin/tandem}
OUT=${OUT:-docs/goodput}
RATES=${RATES:-"0.25 0.5 0.75 1 1.5 2 3"}
NUM_PROMPTS=${NUM_PROMPTS:-60}
NAME=${NAME:-chatbot}
WORKLOAD=${WORKLOAD:-"--dataset-name synthetic --synthetic-preset chatbot"}
TIGHT_TPOT_FACTOR=${TIGHT_TPOT_FACTOR:-1.5}
TOTAL_THREADS=${TOTAL_THREADS:-2}
GOAL=${GOAL:-90}
SEED=${SEED:-1}
# shellcheck source=bench/experiments/experiment_common.sh
source bench/experiments/experiment_common.sh
experiment_setup disagg_vs_colocated
NODE_THREADS=$(( TOTAL_THREADS / 2 > 0 ? TOTAL_THREADS / 2 : 1 ))

# 1. Step times on one thread (the decode and prefill nodes each have one).
PROMPT_LEN=161  # the chatbot preset's mean prompt (ShareGPT, vLLM paper): DistServe's SLO is for chat
IDS=$(python3 -c "print(','.join(str(100 + (i * 7919) % 29000) for i in range($PROMPT_LEN)))")
measure() {
  "$TANDEM" generate --model "$MODEL" --prompt-ids "$IDS" --max-tokens 128 --temperature 0 --threads 1 \
    --print-ids 2>&1 >/dev/null | sed -n 's/^TTFT: \([0-9.]*\) ms, decode: \([0-9.]*\) tokens\/s.*/\1 \2/p'
}
measure > /dev/null  # warm the page cache
read -r TTFT_A DECODE_A < <(measure)
read -r TTFT_B DECODE_B < <(measure)
PREFILL_MS=$(python3 -c "print(min($TTFT_A, $TTFT_B))")
DECODE_MS=$(python3 -c "print(1000 / max($DECODE_A, $DECODE_B))")

# 2. SLOs. OPT-13B on an A100-80GB (DistServe's chatbot setup), roofline estimates:
#    prefill of 161 tokens = 2 * 12.85e9 * 161 FLOP at 60% of 312 TFLOP/s = 22.1 ms;
#    decode step at batch 1 = 25.7 GB of FP16 weights at 80% of 2.039 TB/s = 15.8 ms.
read -r SLO_TTFT SLO_TPOT_A SLO_TPOT_B < <(python3 - "$PREFILL_MS" "$DECODE_MS" "$TIGHT_TPOT_FACTOR" <<'EOF'
import sys
prefill, decode, tight = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
their_prefill = 2 * 12.85e9 * 161 / (0.6 * 312e12) * 1000
their_decode = 25.7e9 / (0.8 * 2.039e12) * 1000
print(round(250 * prefill / their_prefill), round(100 * decode / their_decode), round(tight * decode))
EOF
)
echo "measured on 1 thread: prefill of $PROMPT_LEN tokens ${PREFILL_MS} ms, decode ${DECODE_MS} ms/token"
echo "SLO A (DistServe chatbot, scaled): TTFT ${SLO_TTFT} ms, TPOT ${SLO_TPOT_A} ms"
echo "SLO B (tight TPOT):                TTFT ${SLO_TTFT} ms, TPOT ${SLO_TPOT_B} ms"


# 3. The runs.
run_setup() {  # $1: label
  local label=$1
  "$TANDEM" bench --port "$PORT" --dataset-name random --random-input-len 16 --random-output-len 8 \
    --num-prompts 4 --ignore-eos --no-progress > /dev/null  # warm-up, not recorded
  for rate in $RATES; do
    # shellcheck disable=SC2086  # WORKLOAD is a list of flags
    "$TANDEM" bench --port "$PORT" $WORKLOAD --max-model-len 2048 \
      --num-prompts "$NUM_PROMPTS" --request-rate "$rate" --seed "$SEED" --ignore-eos --no-progress \
      --metric-percentiles 50,90,99 --label "$label" --resources "$TOTAL_THREADS" \
      --save-result --result-dir "$OUT/runs" --result-filename "$NAME-$label-$rate.json" \
      | grep -E "Successful|Failed requests|Median TTFT|Median TPOT" | tr -s ' ' | paste -sd ' ' \
      | sed "s/^/$label @ $rate req\/s: /"
    for slo in A B; do
      local tpot=$SLO_TPOT_A
      [ "$slo" = B ] && tpot=$SLO_TPOT_B
      "$TANDEM" bench rescore "$OUT/runs/$NAME-$label-$rate.json" --goodput "ttft:$SLO_TTFT" "tpot:$tpot" \
        --label "$label" --out "$OUT/runs/$NAME-$label-$rate-slo$slo.json" > /dev/null
    done
  done
}

start_server worker "$TANDEM" worker --model "$MODEL" --port 0 --threads "$TOTAL_THREADS" ${WORKER_ARGS:-}
run_setup colocated
stop_server
start_server serve "$TANDEM" serve --model "$MODEL" --num-prefill 1 --num-decode 1 --port 0 \
  --node-threads "$NODE_THREADS" --log-dir "$WORK/logs" ${SERVE_ARGS:-}
run_setup 1P+1D
stop_server

# 4. Plots and the table.
for slo in A B; do
  "$TANDEM" bench plot "$OUT"/runs/"$NAME"-colocated-*-slo$slo.json "$OUT"/runs/"$NAME"-1P+1D-*-slo$slo.json \
    --attainment "$GOAL" --out "$OUT/$NAME-slo-$slo.png" > /dev/null
done
python3 - "$OUT" "$GOAL" "$SLO_TTFT" "$SLO_TPOT_A" "$SLO_TPOT_B" "$RATES" "$TOTAL_THREADS" "$NAME" <<'EOF' | tee "$OUT/$NAME-summary.md"
import json, sys
out, goal, ttft, tpot_a, tpot_b, rates = sys.argv[1], float(sys.argv[2]) / 100, sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6].split()
cores, name = float(sys.argv[7]), sys.argv[8]
def load(label, rate, slo):
    return json.load(open(f"{out}/runs/{name}-{label}-{rate}-slo{slo}.json"))
def goodput(points):  # highest rate meeting the goal, interpolated between measured rates
    best = 0.0
    for (r0, a0), (r1, a1) in zip(points, points[1:]):
        if a0 >= goal: best = r0
        if a0 >= goal > a1: return r0 + (r1 - r0) * (a0 - goal) / (a0 - a1)
    if points and points[-1][1] >= goal: best = points[-1][0]
    return best
for slo, tpot in (("A", tpot_a), ("B", tpot_b)):
    print(f"\n### SLO {slo}: TTFT {ttft} ms, TPOT {tpot} ms (goal {goal:.0%})\n")
    print("| rate (req/s) | colocated attainment | 1P+1D attainment | colocated TTFT p50 / TPOT p50 (ms) | 1P+1D TTFT p50 / TPOT p50 (ms) |")
    print("| --- | --- | --- | --- | --- |")
    curves = {"colocated": [], "1P+1D": []}
    for rate in rates:
        row = [rate]
        cells = []
        for label in ("colocated", "1P+1D"):
            j = load(label, rate, slo)
            curves[label].append((float(rate), j["slo_attainment"]))
            row.append(f"{100 * j['slo_attainment']:.1f}% ({j['failed']} failed)" if j["failed"] else f"{100 * j['slo_attainment']:.1f}%")
            cells.append(f"{j['median_ttft_ms']:.0f} / {j['median_tpot_ms']:.1f}")
        print("| " + " | ".join(row + cells) + " |")
    g = {k: goodput(v) for k, v in curves.items()}
    ratio = f"{g['1P+1D'] / g['colocated']:.2f}x" if g["colocated"] > 0 else "n/a"
    print(f"\ngoodput at {goal:.0%}: colocated {g['colocated']:.2f} req/s, 1P+1D {g['1P+1D']:.2f} req/s "
          f"(1P+1D / colocated = {ratio}); per core: {g['colocated'] / cores:.2f} vs {g['1P+1D'] / cores:.2f}")
EOF
