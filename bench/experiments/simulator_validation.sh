#!/usr/bin/env bash
# Validates `tandem simulate` against measured runs (docs/planning.md): the same seeded workload
# and Poisson arrivals served for real (tandem worker; tandem serve 1P+1D) and simulated on
# latency profiles measured here, at rates spanning the knee; then the table of joint SLO
# attainment and TTFT / TPOT p50 and p90, measured against simulated, and one plot of both.
#
#   bench/experiments/simulator_validation.sh
#   RATES="0.5 1 2" NUM_PROMPTS=40 OUT=/tmp/x bench/experiments/simulator_validation.sh
#
# Environment: TANDEM, MODEL (default: make the `small` preset), OUT (docs/planning), RATES,
# NUM_PROMPTS, SEED, WORKLOAD (tandem bench's data set flags; default the chatbot preset),
# TOTAL_THREADS (2: the worker gets all, each node half), SLO (tandem bench --goodput pairs;
# default from the 1-thread profile: TTFT 3x a prefill of the mean prompt, TPOT 2.5x a decode
# step at batch 1), PROFILE_ARGS (extra tandem profile flags), REUSE=1 (keep the profiles and
# measured runs already in $OUT/runs: only simulate again).
#
# Two simulations per run: as the profile predicts, and calibrated: prefill scaled by the
# measured / simulated TTFT p50 and decode steps by the TPOT p50 ratio of the lowest rate (what
# the profile, measured on an idle machine, does not see: the server's HTTP threads and the
# benchmark client sharing the cores), the other rates held out.
set -euo pipefail
cd "$(dirname "$0")/../.."

TANDEM=${TANDEM:-build/bin/tandem}
OUT=${OUT:-docs/planning}
RATES=${RATES:-"0.25 0.5 0.75 1 1.5 2 3"}
NUM_PROMPTS=${NUM_PROMPTS:-60}
SEED=${SEED:-1}
WORKLOAD=${WORKLOAD:-"--dataset-name synthetic --synthetic-preset chatbot --max-model-len 2048"}
TOTAL_THREADS=${TOTAL_THREADS:-2}
# shellcheck source=bench/experiments/experiment_common.sh
source bench/experiments/experiment_common.sh
experiment_setup simulator_validation
NODE_THREADS=$(( TOTAL_THREADS / 2 > 0 ? TOTAL_THREADS / 2 : 1 ))

# 1. Profiles: the nodes' (NODE_THREADS, with the KV transfer) and the worker's (all threads).
if [ "${REUSE:-0}" != 1 ]; then
"$TANDEM" profile --model "$MODEL" --threads "$NODE_THREADS" --out "$OUT/runs/profile-node.json" ${PROFILE_ARGS:-} \
  > "$WORK/profile-node.log" 2>&1
"$TANDEM" profile --model "$MODEL" --threads "$TOTAL_THREADS" --no-transfer --out "$OUT/runs/profile-worker.json" \
  ${PROFILE_ARGS:-} > "$WORK/profile-worker.log" 2>&1
fi
if [ -z "${SLO:-}" ]; then
  SLO=$(python3 - "$OUT/runs/profile-node.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
def pick(regimes, key, x):
    for r in regimes:
        if r[key] == 0 or x <= r[key]: return r
pre = pick(p["prefill"], "max_tokens", 161)
prefill_us = pre["a_us"] + pre["b_us_per_token"] * 161 + pre["c_us_per_pair"] * 161 * 161
dec = pick(p["decode"], "max_batch", 1)
decode_us = dec["a_us"] + dec["b_us_per_context_token"] * 300 + dec["c_us_per_sequence"]
print(f"ttft:{round(3 * prefill_us / 1000)} tpot:{round(2.5 * decode_us / 1000)}")
PY
)
fi
echo "SLO: $SLO"

# 2. Measured and simulated runs, rate by rate.
simulate() {  # $1: label, $2: profile, $3: rate, $4: output, $5...: more simulate flags
  local label=$1 profile=$2 rate=$3 out=$4
  shift 4
  # shellcheck disable=SC2086  # WORKLOAD and SLO are lists of flags
  "$TANDEM" --log-level warn simulate --profile "$profile" "$@" $WORKLOAD --num-prompts "$NUM_PROMPTS" \
    --request-rate "$rate" --seed "$SEED" --goodput $SLO --label "$label simulated" --result-filename "$out" \
    > /dev/null 2>&1
}

run_setup() {  # $1: label, $2: profile, $3...: tandem simulate's deployment flags
  local label=$1 profile=$2
  shift 2
  "$TANDEM" bench --port "$PORT" --dataset-name random --random-input-len 16 --random-output-len 8 \
    --num-prompts 4 --ignore-eos --no-progress > /dev/null  # warm-up, not recorded
  for rate in $RATES; do
    # shellcheck disable=SC2086  # WORKLOAD and SLO are lists of flags
    "$TANDEM" bench --port "$PORT" $WORKLOAD --num-prompts "$NUM_PROMPTS" --request-rate "$rate" --seed "$SEED" \
      --ignore-eos --no-progress --goodput $SLO --label "$label measured" \
      --save-result --result-dir "$OUT/runs" --result-filename "measured-$label-$rate.json" > /dev/null
    echo "$label @ $rate req/s done"
  done
}

if [ "${REUSE:-0}" != 1 ]; then
  start_server worker "$TANDEM" worker --model "$MODEL" --port 0 --threads "$TOTAL_THREADS"
  run_setup colocated "$OUT/runs/profile-worker.json"
  stop_server
  start_server serve "$TANDEM" serve --model "$MODEL" --num-prefill 1 --num-decode 1 --port 0 \
    --node-threads "$NODE_THREADS" --log-dir "$WORK/logs"
  run_setup 1P+1D "$OUT/runs/profile-node.json"
  stop_server
fi

# 3. Simulated: as profiled, then calibrated on the lowest rate.
ratio() {  # $1: key, $2: measured result, $3: simulated result
  python3 -c "import json,sys; print(json.load(open(sys.argv[2]))[sys.argv[1]] / json.load(open(sys.argv[3]))[sys.argv[1]])" \
    "$1" "$2" "$3"
}
LOWEST=${RATES%% *}
for setup in "colocated profile-worker.json --colocated 1" "1P+1D profile-node.json --prefill 1 --decode 1"; do
  # shellcheck disable=SC2086  # the setup is a list
  set -- $setup
  label=$1 profile=$OUT/runs/$2
  shift 2
  for rate in $RATES; do simulate "$label" "$profile" "$rate" "$OUT/runs/simulated-$label-$rate.json" "$@"; done
  measured=$OUT/runs/measured-$label-$LOWEST.json simulated=$OUT/runs/simulated-$label-$LOWEST.json
  prefill_scale=$(ratio median_ttft_ms "$measured" "$simulated")
  decode_scale=$(ratio median_tpot_ms "$measured" "$simulated")
  echo "$label: prefill x$prefill_scale, decode x$decode_scale (measured / simulated p50 at $LOWEST req/s)" \
    | tee "$OUT/runs/scales-$label.txt"
  for rate in $RATES; do
    simulate "$label calibrated" "$profile" "$rate" "$OUT/runs/calibrated-$label-$rate.json" "$@" \
      --prefill-scale "$prefill_scale" --decode-scale "$decode_scale"
  done
done

# 4. Plot and table.
for label in colocated 1P+1D; do
  "$TANDEM" bench plot "$OUT"/runs/measured-"$label"-*.json "$OUT"/runs/simulated-"$label"-*.json \
    "$OUT"/runs/calibrated-"$label"-*.json --out "$OUT/validation-$label.png" > /dev/null
done
python3 - "$OUT" "$RATES" "$SLO" <<'PY' | tee "$OUT/validation-summary.md"
import json, sys
out, rates, slo = sys.argv[1], sys.argv[2].split(), sys.argv[3]
def pct(values, p):
    v = sorted(values)
    if not v: return float("nan")
    k = (len(v) - 1) * p / 100
    lo = int(k); hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)
def stats(path):
    j = json.load(open(path))
    ok = [r for r in j["requests"] if r["success"]]
    ttft = [1000 * (r["first_token_s"] - r["sent_s"]) for r in ok]
    tpot = [1000 * (r["latency_s"] - (r["first_token_s"] - r["sent_s"])) / (r["output_tokens"] - 1)
            for r in ok if r["output_tokens"] > 1]
    return 100 * j["slo_attainment"], pct(ttft, 50), pct(ttft, 90), pct(tpot, 50), pct(tpot, 90)
print(f"SLO {slo}. Each cell: measured / simulated as profiled / simulated calibrated on the lowest rate.\n")
print("| setup | rate (req/s) | attainment (%) | TTFT p50 (ms) | TTFT p90 (ms) | TPOT p50 (ms) | TPOT p90 (ms) |")
print("| --- | --- | --- | --- | --- | --- | --- |")
worst = {}
for label in ("colocated", "1P+1D"):
    for rate in rates:
        m = stats(f"{out}/runs/measured-{label}-{rate}.json")
        s = stats(f"{out}/runs/simulated-{label}-{rate}.json")
        c = stats(f"{out}/runs/calibrated-{label}-{rate}.json")
        for kind, x in (("profiled", s), ("calibrated", c)):
            key = (label, kind)
            worst[key] = max(worst.get(key, 0), abs(x[0] - m[0]))
        cells = [f"{m[i]:.0f} / {s[i]:.0f} / {c[i]:.0f}" for i in range(1, 5)]
        print(f"| {label} | {rate} | {m[0]:.0f} / {s[0]:.0f} / {c[0]:.0f} | " + " | ".join(cells) + " |")
print()
for (label, kind), w in worst.items():
    print(f"{label}, {kind}: largest attainment gap {w:.1f} points")
PY
