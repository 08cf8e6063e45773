# Server processes, sourced by bench/run.sh and bench/gateway.sh: each keeps its processes in
# PID[NAME], their output in $WORK/NAME.log, and defines log().

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

server_failed() { # NAME MESSAGE
  log "$1: $2; last lines of its log:"
  tail -n 20 "$WORK/$1.log" >&2
  [ ! -f "$WORK/$1/logs/error.log" ] || tail -n 20 "$WORK/$1/logs/error.log" >&2
  exit 1
}

# launch NAME CPU URL COMMAND...: COMMAND pinned to CPU, answering 200 at URL when this returns.
launch() {
  local s=$1 cpu=$2 url=$3
  shift 3
  taskset -c "$cpu" "$@" >>"$WORK/$s.log" 2>&1 &
  PID[$s]=$!
  for _ in $(seq 1 300); do
    [ "$(curl -sk -o /dev/null -w '%{http_code}' "$url" || true)" = 200 ] && return 0
    kill -0 "${PID[$s]}" 2>/dev/null || server_failed "$s" "exited during start-up"
    sleep 0.1
  done
  server_failed "$s" "no answer from $url within 30 s"
}

stop_server() { # NAME
  local pid=${PID[$1]:-}
  unset "PID[$1]"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true # nginx: SIGTERM is its fast shutdown, workers included
  wait "$pid" 2>/dev/null || true
}
