#!/usr/bin/env bash
# Does `tandem bench` measure what an independent client measures? Runs NVIDIA's aiperf and
# tandem bench against the same running server with the same workload shape (fixed prompt and
# output lengths, EOS ignored), the same Poisson rate and request count, and prints
# TTFT p50/p90, the per-request inter-token time, and request throughput side by side with the
# ratio. Never needed by CI. aiperf comes from PyPI, in a venv outside the repo:
#   python3 -m venv /tmp/aiperf-venv && /tmp/aiperf-venv/bin/pip install aiperf
#   build/bin/tandem worker --model /tmp/models/small --port 8100 &
#   AIPERF=/tmp/aiperf-venv/bin/aiperf tools/aiperf_agreement.sh 127.0.0.1:8100 /tmp/models/small
# Definitions: aiperf's "inter_token_latency" is per request (E2E - TTFT) / (output tokens - 1),
# which is vLLM's and our TPOT; our ITL pools every gap instead, so TPOT is the quantity compared
# (ITL mean is printed too). Request throughput: completed requests / benchmark duration in both.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=${1:?usage: $0 HOST:PORT MODEL_DIR}
MODEL_DIR=${2:?usage: $0 HOST:PORT MODEL_DIR}
AIPERF=${AIPERF:-aiperf}
TANDEM=${TANDEM:-build/bin/tandem}
RATE=${RATE:-0.5}
COUNT=${COUNT:-80}
INPUT=${INPUT:-256}
OUTPUT=${OUTPUT:-128}
ROUNDS=${ROUNDS:-2}
# ARRIVALS=constant (the default) sends at fixed gaps in both clients (aiperf --arrival-pattern
# constant, tandem --burstiness inf), so that request throughput compares without the Poisson
# draw's +-sqrt(n) spread in the run's length; ARRIVALS=poisson uses Poisson arrivals in both.
ARRIVALS=${ARRIVALS:-constant}
AIPERF_ARRIVAL=(--arrival-pattern "$ARRIVALS")
TANDEM_BURSTINESS=1
if [ "$ARRIVALS" = constant ]; then TANDEM_BURSTINESS=inf; fi
WORK=$(mktemp -d /tmp/aiperf_agreement.XXXXXX)
MODEL=$(curl -sf "http://$SERVER/v1/models" | python3 -c "import json,sys; print(json.load(sys.stdin)['data'][0]['id'])")

# SIMULTANEOUS=1 (the default) runs both clients at the same time, each at RATE/2, so that both
# see the same server in the same state (this VM's memory bandwidth changes from minute to
# minute, and aiperf's own processes share the cores); SIMULTANEOUS=0 runs them one after the
# other at RATE.
SIMULTANEOUS=${SIMULTANEOUS:-1}
if [ "$SIMULTANEOUS" = 1 ]; then RATE=$(python3 -c "print($RATE / 2)"); fi
for round in $(seq 1 "$ROUNDS"); do
  "$AIPERF" profile -m "$MODEL" --tokenizer "$MODEL_DIR" --url "$SERVER" --endpoint-type completions --streaming \
    --synthetic-input-tokens-mean "$INPUT" --synthetic-input-tokens-stddev 0 \
    --output-tokens-mean "$OUTPUT" --output-tokens-stddev 0 --extra-inputs ignore_eos:true --use-server-token-count \
    --request-rate "$RATE" "${AIPERF_ARRIVAL[@]}" --request-count "$COUNT" --random-seed "$round" \
    --artifact-dir "$WORK/aiperf-$round" > "$WORK/aiperf-$round.log" 2>&1 &
  AIPERF_PID=$!
  if [ "$SIMULTANEOUS" != 1 ]; then wait "$AIPERF_PID"; fi
  "$TANDEM" bench --base-url "http://$SERVER" --model "$MODEL" --dataset-name random \
    --random-input-len "$INPUT" --random-output-len "$OUTPUT" --ignore-eos --request-rate "$RATE" --burstiness "$TANDEM_BURSTINESS" \
    --num-prompts "$COUNT" --seed "$round" --metric-percentiles 50,90 --no-progress \
    --save-result --result-filename "$WORK/tandem-$round.json" > "$WORK/tandem-$round.log" 2>&1
  wait "$AIPERF_PID"
done

python3 - "$WORK" "$ROUNDS" <<'EOF'
import glob, json, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def aiperf(r):
    path = glob.glob(f"{work}/aiperf-{r}/**/profile_export_aiperf.json", recursive=True)[0]
    j = json.load(open(path))
    m = {k: v for k, v in j.items() if isinstance(v, dict)}
    if "records" in j and isinstance(j["records"], dict): m.update(j["records"])
    return {"TTFT p50 (ms)": m["time_to_first_token"]["p50"], "TTFT p90 (ms)": m["time_to_first_token"]["p90"],
            "TPOT mean (ms)": m["inter_token_latency"]["avg"], "req/s": m["request_throughput"]["avg"]}
def tandem(r):
    j = json.load(open(f"{work}/tandem-{r}.json"))
    return {"TTFT p50 (ms)": j["p50_ttft_ms"], "TTFT p90 (ms)": j["p90_ttft_ms"], "TPOT mean (ms)": j["mean_tpot_ms"],
            "req/s": j["request_throughput"], "ITL mean (ms, pooled)": j["mean_itl_ms"]}
print("| round | metric | aiperf | tandem bench | tandem / aiperf |\n| --- | --- | --- | --- | --- |")
for r in range(1, rounds + 1):
    a, t = aiperf(r), tandem(r)
    for k in a:
        print(f"| {r} | {k} | {a[k]:.2f} | {t[k]:.2f} | {t[k] / a[k]:.3f} |")
    print(f"| {r} | ITL mean (ms, pooled; tandem only) | | {t['ITL mean (ms, pooled)']:.2f} | |")
EOF
echo "raw outputs: $WORK"
