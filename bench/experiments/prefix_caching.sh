#!/usr/bin/env bash
# Prefix caching on a multi-turn chat workload: the colocated worker and a 2-prefill + 2-decode
# cluster (tandem serve), each with and without --enable-prefix-caching (the cluster also with the
# caches but without KV-aware routing, --no-kv-aware-routing), on the
# same seeded conversations (a system prompt every conversation shares; each turn resends the
# conversation so far plus a new message, once the previous answer is in). docs/goodput.md
# explains the result.
#
#   bench/experiments/prefix_caching.sh
#   CONVERSATIONS=6 TURNS=3 OUT=/tmp/x bench/experiments/prefix_caching.sh
#   SWEEP=1 bench/experiments/prefix_caching.sh   # goodput at 90% attainment instead (below)
#
# Reported per run: TTFT p50/p90 over all turns and mean TTFT by turn, the share of prompt tokens
# served from the cache (the responses' usage.prompt_tokens_details.cached_tokens), the prompt
# tokens computed (the router's tandem:prompt_tokens_total less tandem:prefix_cache_hit_tokens_total),
# KV bytes moved per request (cluster: tandem:kv_transfer_bytes), goodput under SLO.
# Environment: TANDEM, MODEL (default: the `small` preset), OUT, CONVERSATIONS, TURNS, RATE (new
# conversations per second), SYSTEM_LEN, MESSAGE_LEN, ANSWER_LEN, SEED, THREADS, SLO ("ttft_ms tpot_ms").
#
# SWEEP=1: per setup, DistServe's goodput instead of one run: the highest rate of new
# conversations at which at least 90% of the requests meet both targets (`tandem bench --sweep
# rate`, starting at RATE, at most SWEEP_POINTS runs, bisected to SWEEP_TOLERANCE). Every point
# sends its own cache_salt (--isolate-prefix-cache): the same conversations are replayed at each
# rate, and without it a point would be served from the blocks the points before it cached.
set -euo pipefail
cd "$(dirname "$0")/../.."

TANDEM=${TANDEM:-build/bin/tandem}
OUT=${OUT:-docs/goodput}
CONVERSATIONS=${CONVERSATIONS:-12}
TURNS=${TURNS:-4}
RATE=${RATE:-0.5}
SYSTEM_LEN=${SYSTEM_LEN:-512}
MESSAGE_LEN=${MESSAGE_LEN:-64}
ANSWER_LEN=${ANSWER_LEN:-32}
SEED=${SEED:-1}
THREADS=${THREADS:-2}
SLO=${SLO:-"1000 250"}
SWEEP=${SWEEP:-0}
SWEEP_POINTS=${SWEEP_POINTS:-5}
SWEEP_TOLERANCE=${SWEEP_TOLERANCE:-0.2}
# shellcheck source=bench/experiments/experiment_common.sh
source bench/experiments/experiment_common.sh
experiment_setup prefix_caching
read -r TTFT TPOT <<< "$SLO"

run() {  # $1: worker or cluster, $2: off, on (caching and KV-aware routing) or cache-only
  local setup=$1 caching=$2 label="$1-$2"
  local flags=()
  [ "$caching" = off ] && flags=(--no-enable-prefix-caching)
  [ "$caching" = cache-only ] && flags=(--no-kv-aware-routing)
  if [ "$setup" = worker ]; then
    start_server "$label" "$TANDEM" worker --model "$MODEL" --port 0 --threads "$THREADS" "${flags[@]}"
  else
    start_server "$label" "$TANDEM" serve --model "$MODEL" --num-prefill 2 --num-decode 2 --port 0 \
      --log-dir "$WORK/logs-$label" "${flags[@]}"
  fi
  "$TANDEM" bench --port "$PORT" --dataset-name random --random-input-len 16 --random-output-len 8 \
    --num-prompts 2 --ignore-eos --no-progress > /dev/null  # warm-up, not recorded
  local workload=(--dataset-name multi-turn --tokenizer "$MODEL" --num-prompts $((CONVERSATIONS * TURNS))
    --multi-turn-turns "$TURNS" --multi-turn-system-len "$SYSTEM_LEN" --random-input-len "$MESSAGE_LEN"
    --random-output-len "$ANSWER_LEN" --ignore-eos --request-rate "$RATE" --seed "$SEED" --no-progress
    --goodput "ttft:$TTFT" "tpot:$TPOT" --percentile-metrics ttft,tpot --metric-percentiles 50,90
    --label "$label" --save-result --result-dir "$OUT/runs" --request-timeout-s 600)
  if [ "$SWEEP" = 1 ]; then
    "$TANDEM" bench --port "$PORT" "${workload[@]}" --sweep rate --sweep-max-points "$SWEEP_POINTS" \
      --sweep-tolerance "$SWEEP_TOLERANCE" --isolate-prefix-cache \
      --result-filename "prefix_caching_sweep_$label.json" > "$WORK/bench_$label.txt"
    stop_server
    echo "$label: done"
    return
  fi
  curl -sf "http://127.0.0.1:$PORT/metrics" > "$WORK/metrics_before_$label.txt"
  "$TANDEM" bench --port "$PORT" "${workload[@]}" --result-filename "prefix_caching_$label.json" \
    > "$WORK/bench_$label.txt"
  curl -sf "http://127.0.0.1:$PORT/metrics" > "$OUT/runs/prefix_caching_metrics_$label.txt"
  cp "$WORK/metrics_before_$label.txt" "$OUT/runs/prefix_caching_metrics_before_$label.txt"
  stop_server
  echo "$label: done"
}
for caching in off on; do run worker "$caching"; done
for caching in off cache-only on; do run cluster "$caching"; done

if [ "$SWEEP" = 1 ]; then
  python3 - "$OUT/runs" <<'PY' | tee "$OUT/prefix_caching_sweep.md"
import json, sys
runs = sys.argv[1]
print("| setup | prefix caching | goodput at 90% (new conversations/s) | requests/s meeting the SLO there | bracketed | points (rate: attainment) |")
print("| --- | --- | --- | --- | --- | --- |")
for setup, caching in [("worker", "off"), ("worker", "on"), ("cluster", "off"), ("cluster", "cache-only"),
                       ("cluster", "on")]:
    j = json.load(open(f"{runs}/prefix_caching_sweep_{setup}-{caching}.json"))
    best = j["goodput_rate"]
    run = next((r for r in j["runs"] if r["request_rate"] == best), None)
    rps = (run.get("request_goodput") or 0) if run else 0
    points = ", ".join(f"{p['request_rate']:.3g}: {100 * p['slo_attainment']:.0f}%" for p in j["points"])
    print(f"| {setup} | {caching} | {best:.3g} | {rps:.3f} | {'yes' if j['bracketed'] else 'no'} | {points} |")
PY
  exit 0
fi

python3 - "$OUT/runs" "$TURNS" <<'PY' | tee "$OUT/prefix_caching.md"
import json, re, statistics, sys
runs, turns = sys.argv[1], int(sys.argv[2])

def metric(path, name):
    total = 0.0
    for line in open(path):
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total

print("| setup | prefix caching | TTFT p50 / p90 (ms) | mean TTFT by turn (ms) | cached prompt tokens | "
      "prompt tokens computed | KV bytes / request | SLO attainment | goodput (req/s) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for setup, caching in [("worker", "off"), ("worker", "on"), ("cluster", "off"), ("cluster", "cache-only"),
                       ("cluster", "on")]:
        label = f"{setup}-{caching}"
        j = json.load(open(f"{runs}/prefix_caching_{label}.json"))
        after, before = (f"{runs}/prefix_caching_metrics_{label}.txt",
                         f"{runs}/prefix_caching_metrics_before_{label}.txt")
        delta = lambda name: metric(after, name) - metric(before, name)
        by_turn = []
        for t in range(turns):
            xs = [(r["first_token_s"] - r["sent_s"]) * 1000 for r in j["requests"]
                  if r["turn"] == t and r["success"] and r["first_token_s"] is not None]
            by_turn.append(f"{statistics.mean(xs):.0f}" if xs else "-")
        prompt = delta("tandem:prompt_tokens_total")
        hits = delta("tandem:prefix_cache_hit_tokens_total")
        nbytes, count = delta("tandem:kv_transfer_bytes_sum"), delta("tandem:kv_transfer_bytes_count")
        p = lambda m, q: j.get(f"p{q}_{m}_ms") or float("nan")
        share = 100 * j.get("total_cached_tokens", 0) / max(1, j["total_input_tokens"])
        print(f"| {setup} | {caching} | {p('ttft', 50):.0f} / {p('ttft', 90):.0f} | {' / '.join(by_turn)} | "
              f"{share:.0f}% | {prompt - hits:.0f} of {prompt:.0f} | "
              f"{(nbytes / count / 1e6) if count else 0:.2f} MB | {100 * (j.get('slo_attainment') or 0):.0f}% | "
              f"{j.get('request_goodput') or 0:.3f} |")
PY
