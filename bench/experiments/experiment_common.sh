# Sourced by the experiment scripts (from the repository root): their common set-up and the
# servers they run.
#   experiment_setup NAME   scratch folder $WORK (removed at exit, with any server still up),
#                           checks $TANDEM, makes the `small` preset when $MODEL is unset,
#                           creates $OUT/runs
#   start_server LOG CMD..  runs a `tandem` server in the background and waits (bounded) until
#                           it listens and answers /health; sets SERVER_PID and PORT
#   stop_server
#   two_class_workload N SEED   the SLO experiments' workload (JSONL on stdout): half interactive
#                           (64-192 prompt tokens, 32 out), half batch (768-1024, 64 out), shuffled

experiment_setup() {  # $1: name of the scratch folder
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  SERVER_PID=""
  trap experiment_cleanup EXIT
  [ -x "$TANDEM" ] || { echo "no $TANDEM: build first (scripts/build.sh)" >&2; exit 2; }
  if [ -z "${MODEL:-}" ]; then
    MODEL=$WORK/small
    "$TANDEM" make-model --preset small --out "$MODEL" > /dev/null 2>&1
  fi
  mkdir -p "$OUT/runs"
}

experiment_cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}

start_server() {  # $1: log name, rest: the command
  local log=$WORK/$1.out
  shift
  "$@" > "$log" 2> "$WORK/server.err" &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 900); do
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$PORT" ] && break
    sleep 0.1
  done
  [ -n "$PORT" ] || { echo "server did not start:" >&2; tail -20 "$WORK/server.err" >&2; exit 1; }
  for _ in $(seq 1 900); do
    curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && return 0
    sleep 0.1
  done
  echo "server never healthy" >&2
  exit 1
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

two_class_workload() {  # $1: requests, $2: seed
  python3 - "$1" "$2" <<'PY'
import json, random, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)
for i in range(n):
    interactive = rng.random() < 0.5
    length = rng.randint(64, 192) if interactive else rng.randint(768, 1024)
    prompt = [rng.randint(100, 29000) for _ in range(length)]
    print(json.dumps({"prompt": prompt, "output_tokens": 32 if interactive else 64,
                      "slo_class": "interactive" if interactive else "batch"}))
PY
}
