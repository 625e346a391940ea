# Sourced by the experiment scripts: start a `tandem` server in the background and wait (bounded)
# until it listens and answers /health; stop it. Uses $WORK (scratch folder); sets SERVER_PID
# and PORT.

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
