#!/usr/bin/env bash
# Load benchmark for handstamp: one release server pinned to CPU 0, wrk pinned to CPU 1,
# four scenarios (verify, me, refresh, login). See bench/README.md.
#
#   bash bench/run.sh [--quick]
#
# Prints a Markdown table (also written to bench/results.md). Exits 1 when any scenario saw a
# non-200 answer or a socket error, after printing the table.
set -euo pipefail

usage() { echo "usage: bash bench/run.sh [--quick]" >&2; }

DURATION_S=10
MODE=full
case "${1:-}" in
  "") ;;
  --quick) DURATION_S=2; MODE=quick ;;
  -h | --help) usage; exit 0 ;;
  *) usage; exit 2 ;;
esac
CONNECTIONS=32

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
log() { echo "bench: $*" >&2; }

# --- tools -------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  log "installing wrk"
  $SUDO apt-get install -y wrk || { $SUDO apt-get update && $SUDO apt-get install -y wrk; }
fi
for tool in taskset curl python3 cargo; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool"; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
  log "needs at least 2 CPUs (server on CPU 0, wrk on CPU 1); nproc says $(nproc)"
  exit 1
fi

# --- build -------------------------------------------------------------------------------------
log "cargo build --release"
(cd "$ROOT" && cargo build --release --quiet)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/handstamp"
BIN=$(cd "$(dirname "$BIN")" && pwd)/handstamp

# --- scratch dir, database, user ---------------------------------------------------------------
WORK=$(mktemp -d -t handstamp-bench.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Run handstamp from the scratch dir so a handstamp.toml in the caller's directory is not picked up.
cd "$WORK"
unset HANDSTAMP_CONFIG HANDSTAMP_BIND
export HANDSTAMP_DATABASE_URL="sqlite://$WORK/bench.sqlite3"
export HANDSTAMP_SIGNING_KEY="bench-signing-key-0123456789abcdef0123456789abcdef0123456789abcd"
USERNAME=bench
PASSWORD=pw

created=$(echo "$PASSWORD" | "$BIN" user create "$USERNAME" --password-stdin)
USER_ID=$(sed -n 's/.*(id \([0-9][0-9]*\)).*/\1/p' <<<"$created")
[ -n "$USER_ID" ] || { log "cannot read the user id from: $created"; exit 1; }

# --- server ------------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
taskset -c 0 "$BIN" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

server_failed() {
  log "$1; last lines of the server log:"
  tail -n 20 "$WORK/server.log" >&2
  exit 1
}
for _ in $(seq 1 100); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz" || true)" = 200 ]; then
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || server_failed "the server exited during start-up"
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz" || true)" = 200 ] ||
  server_failed "the server did not answer /healthz within 10 s"

# --- inputs ------------------------------------------------------------------------------------
ACCESS=$(curl -sf -H 'Content-Type: application/json' \
  -d "{\"username\":\"$USERNAME\",\"password\":\"$PASSWORD\"}" "$URL/api/token/" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access"])')

REFRESH_COUNT=$((15000 * DURATION_S))
log "minting $REFRESH_COUNT refresh tokens"
python3 "$BENCH_DIR/mint_refresh.py" "$HANDSTAMP_SIGNING_KEY" "$USER_ID" "$REFRESH_COUNT" "$WORK/refresh_tokens.txt"

# --- scenarios ---------------------------------------------------------------------------------
ROWS=()
FAILED=0
run_scenario() {
  local name=$1
  shift
  log "scenario $name (${DURATION_S}s, $CONNECTIONS connections)"
  local out line
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION_S}s" --timeout 10s \
    -s "$BENCH_DIR/scenario.lua" "$URL" -- "$name" "$@")
  line=$(grep '^BENCH ' <<<"$out" || true)
  [ -n "$line" ] || { log "no BENCH line from wrk:"; echo "$out" >&2; exit 1; }
  kill -0 "$SERVER_PID" 2>/dev/null || server_failed "the server died during $name"

  # key=value fields; first_bad is last and may contain spaces.
  local first_bad=${line#* first_bad=}
  local -A f=()
  local kv
  for kv in ${line% first_bad=*}; do
    [ "$kv" = BENCH ] || f[${kv%%=*}]=${kv#*=}
  done
  ROWS+=("| $name | ${f[rps]} | ${f[p50_ms]} | ${f[p99_ms]} | ${f[non200]} | ${f[socket_errors]} |")
  if [ "${f[non200]}" != 0 ] || [ "${f[socket_errors]}" != 0 ]; then
    FAILED=1
    log "$name: ${f[non200]} non-200 answers (statuses ${f[statuses]}), ${f[socket_errors]} socket errors"
    [ "${f[exhausted]}" = 0 ] || log "$name: ran out of refresh tokens and reused them"
    [ "$first_bad" = "" ] || log "$name: first non-200 answer: $first_bad"
  fi
}

run_scenario verify "$ACCESS"
run_scenario me "$ACCESS"
run_scenario refresh "$WORK/refresh_tokens.txt"
run_scenario login "$USERNAME" "$PASSWORD"

# --- report ------------------------------------------------------------------------------------
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
REVISION=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
WRK_VERSION=$(wrk -v 2>&1 | head -n 1 | sed 's/ Copyright.*//' || true)

REPORT=$(
  echo "## handstamp load benchmark ($MODE: ${DURATION_S}s per scenario, $CONNECTIONS connections, wrk -t1)"
  echo
  echo "| scenario | requests/s | p50 ms | p99 ms | non-200 | socket errors |"
  echo "|---|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Machine: $(nproc) CPUs, ${CPU_MODEL:-unknown CPU}; server pinned to CPU 0, wrk to CPU 1." \
    "handstamp $REVISION; $WRK_VERSION; $(date -u +%Y-%m-%dT%H:%M:%SZ)."
)
echo "$REPORT"
echo "$REPORT" >"$BENCH_DIR/results.md"

if [ "$FAILED" != 0 ]; then
  log "some requests failed; server log tail:"
  tail -n 20 "$WORK/server.log" >&2
  exit 1
fi
