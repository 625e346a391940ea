#!/usr/bin/env bash
# KV memory that grows (with preemption and recompute) against KV reserved up front, on the
# colocated worker with the same small KV pool, the same seeded chatbot workload and the same
# arrival times. docs/goodput.md explains the result.
#
#   bench/experiments/kv_growth.sh
#   RATE=1 NUM_PROMPTS=30 KV_GIB=0.05 OUT=/tmp/x bench/experiments/kv_growth.sh
#
# Workloads (prompts of 64-256 tokens, seeded):
#   exact     max_tokens = the answer's length (32-256), EOS ignored: growth's smallest gain
#             (reserve holds memory only for tokens that will come, but from the start)
#   generous  max_tokens 1024 (a chat client that sets none gets the rest of the window), and the
#             answer ends when the model samples one of STOP_IDS stop tokens (temperature 1: on
#             this random-weight model the lengths are roughly geometric, mean ~ 32000 /
#             STOP_IDS); the measured lengths are printed
# Each run polls GET /v1/load every 100 ms for the sequences in the running batch.
# Environment: TANDEM, MODEL (default: the `small` preset), OUT, RATE, NUM_PROMPTS, SEED, KV_GIB,
# THREADS, STOP_IDS, SLO ("ttft_ms tpot_ms").
set -euo pipefail
cd "$(dirname "$0")/../.."

TANDEM=${TANDEM:-build/bin/tandem}
OUT=${OUT:-docs/goodput}
RATE=${RATE:-1.5}
NUM_PROMPTS=${NUM_PROMPTS:-40}
SEED=${SEED:-1}
KV_GIB=${KV_GIB:-0.05}
THREADS=${THREADS:-2}
STOP_IDS=${STOP_IDS:-200}
SLO=${SLO:-"5000 250"}
# shellcheck source=bench/experiments/experiment_common.sh
source bench/experiments/experiment_common.sh
experiment_setup kv_growth

DATA=$WORK/chat.jsonl
python3 - "$NUM_PROMPTS" "$SEED" > "$DATA" <<'PY'
import json, random, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
for i in range(n):
    prompt = [rng.randint(100, 29000) for _ in range(rng.randint(64, 256))]
    print(json.dumps({"prompt": prompt, "output_tokens": rng.randint(32, 256)}))
PY
STOPS=$(python3 -c "import random; r = random.Random(7); print(sorted(r.sample(range(100, 32000), $STOP_IDS)))")
read -r TTFT TPOT <<< "$SLO"

poll_load() {  # $1: file; samples running_requests until killed
  while true; do
    curl -sf "http://127.0.0.1:$PORT/v1/load" | python3 -c \
      "import json,sys; print(json.load(sys.stdin)['nodes'][0]['running_requests'])" >> "$1" 2> /dev/null || true
    sleep 0.1
  done
}

run() {  # $1: allocation, $2: workload
  local alloc=$1 workload=$2 label="$1-$2"
  start_server "$label" "$TANDEM" worker --model "$MODEL" --port 0 --threads "$THREADS" --kv-cache-gib "$KV_GIB" \
    --kv-allocation "$alloc" --max-num-seqs 64
  "$TANDEM" bench --port "$PORT" --dataset-name random --random-input-len 16 --random-output-len 8 \
    --num-prompts 2 --ignore-eos --no-progress > /dev/null  # warm-up, not recorded
  local flags=(--ignore-eos)
  if [ "$workload" = generous ]; then
    flags=(--temperature 1 --extra-body "{\"max_tokens\": 1024, \"seed\": $SEED, \"stop_token_ids\": $STOPS}")
  fi
  poll_load "$WORK/running_$label.txt" &
  local poller=$!
  "$TANDEM" bench --port "$PORT" --dataset-name custom --dataset-path "$DATA" --num-prompts "$NUM_PROMPTS" \
    --request-rate "$RATE" --seed "$SEED" --no-progress --goodput "ttft:$TTFT" "tpot:$TPOT" "${flags[@]}" \
    --percentile-metrics ttft,tpot --metric-percentiles 50,90 \
    --label "$label" --save-result --result-dir "$OUT/runs" --result-filename "kv_growth_$label.json" \
    --request-timeout-s 600 > "$WORK/bench_$label.txt"
  kill "$poller" 2> /dev/null || true
  wait "$poller" 2> /dev/null || true
  cp "$WORK/running_$label.txt" "$OUT/runs/kv_growth_running_$label.txt"
  grep -o "engine ready: [0-9]* KV blocks" "$WORK/server.err" | head -1 > "$WORK/blocks_$label.txt" || true
  stop_server
  echo "$label: done"
}
for workload in exact generous; do
  for alloc in reserve grow; do run "$alloc" "$workload"; done
done

python3 - "$OUT/runs" "$WORK" <<'PY' | tee "$OUT/kv_growth.md"
import json, statistics, sys
runs, work = sys.argv[1], sys.argv[2]
print("| workload | kv | KV blocks | running batch mean / max | output tokens mean | throughput (tok/s) | TTFT p50 / p90 (ms) | TPOT p50 / p90 (ms) | SLO attainment | goodput (req/s) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for workload in ["exact", "generous"]:
    for alloc in ["reserve", "grow"]:
        label = f"{alloc}-{workload}"
        j = json.load(open(f"{runs}/kv_growth_{label}.json"))
        running = [int(x) for x in open(f"{runs}/kv_growth_running_{label}.txt").read().split() if x.strip()]
        busy = [x for x in running if x > 0] or [0]
        blocks = open(f"{work}/blocks_{label}.txt").read().split()[2:3] or ["?"]
        outs = [n for n in j["output_lens"] if n > 0]
        p = lambda m, q: j.get(f"p{q}_{m}_ms") or float("nan")
        print(f"| {workload} | {alloc} | {blocks[0]} | {statistics.mean(busy):.1f} / {max(busy)} | "
              f"{statistics.mean(outs) if outs else 0:.0f} | {j['output_throughput']:.1f} | "
              f"{p('ttft', 50):.0f} / {p('ttft', 90):.0f} | {p('tpot', 50):.0f} / {p('tpot', 90):.0f} | "
              f"{100 * (j.get('slo_attainment') or 0):.0f}% | {j.get('request_goodput') or 0:.3f} |")
PY
