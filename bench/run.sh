#!/usr/bin/env bash
# Load benchmark: handstamp side by side with two peers in one run, with ratios. See bench/README.md.
#
#   bash bench/run.sh [--quick] [--only SCENARIO,...] [--servers SERVER,...]
#
# Servers: handstamp (hs), the naive axum + jsonwebtoken reference (naive, bench/naive) and Django +
# DRF + simplejwt under gunicorn (django, bench/peer_django). Every server runs pinned to CPU 0, every
# wrk to CPU 1. Each scenario is measured ROUNDS times per server, interleaved (hs, naive, django, hs,
# naive, django, ...). Prints the comparison, the targets and the CPU use as Markdown (also written to
# bench/results.md; bench/report.py formats them). Exits 1 when any request got a non-200 answer or wrk
# saw a socket error (timeouts included), after printing them.
set -euo pipefail

usage() { echo "usage: bash bench/run.sh [--quick] [--only SCENARIO,...] [--servers SERVER,...]" >&2; }

DURATION_S=10
MODE=full
# The request scenarios, in order; --only picks some (and then skips the login flood, peak RSS and
# start-up), --servers some servers: for an A/B of a few rows without the full run.
SCENARIOS=(verify verify_es256 verify_eddsa verify_rs256 stateless checked me ceiling refresh login)
ONLY=""
SERVER_LIST=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) DURATION_S=2; MODE=quick ;;
    --only) ONLY=${2:?}; shift ;;
    --servers) SERVER_LIST=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 2 ;;
  esac
  shift
done
ROUNDS=3           # measurements per scenario and server (mean reported)
STARTUP_RUNS=5     # startup measurements per server (median reported)
CONNECTIONS=32
FLOOD_CONNECTIONS=64
RSS_CONNECTIONS=256

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
VENV=${BENCH_VENV:-$HOME/.cache/handstamp-bench/venv}
log() { echo "bench: $*" >&2; }
. "$BENCH_DIR/servers.sh"

# --- the servers and what each scenario asks of them ---------------------------------------------
SERVERS=(hs naive django)
[ -z "$ONLY" ] || IFS=, read -r -a SCENARIOS <<<"$ONLY"
[ -z "$SERVER_LIST" ] || IFS=, read -r -a SERVERS <<<"$SERVER_LIST"
serving() { [[ " ${SERVERS[*]} " == *" $1 "* ]]; } # SERVER: whether this run measures it

# scenario:server -> "MODE PATH" for bench/scenario.lua. A missing entry: the server has no such
# request (the naive server has no refresh or login; its login column is the bare hash rate).
declare -A ROUTE=(
  [verify:hs]="verify /api/token/verify/"
  [verify:naive]="verify /verify"
  [verify:django]="verify /api/token/verify/"
  [verify_es256:hs]="verify /api/token/verify/"
  [verify_es256:naive]="verify /verify"
  [verify_eddsa:hs]="verify /api/token/verify/"
  [verify_eddsa:naive]="verify /verify"
  [verify_rs256:hs]="verify /api/token/verify/"
  [verify_rs256:naive]="verify /verify"
  [stateless:hs]="bearer /api/auth/check"
  [stateless:naive]="bearer /check"
  [stateless:django]="bearer /api/auth/check"
  [checked:hs]="bearer /api/auth/check"
  [checked:naive]="bearer /check"
  [checked:django]="bearer /api/users/me/"
  [me:hs]="bearer /api/users/me/"
  [me:naive]="bearer /check"
  [me:django]="bearer /api/users/me/"
  [ceiling:hs]="get /healthz"
  [ceiling:naive]="get /healthz"
  [ceiling:django]="get /healthz"
  [refresh:hs]="refresh /api/token/refresh/"
  [refresh:django]="refresh /api/token/refresh/"
  [login:hs]="login /api/token/"
  [login:django]="login /api/token/"
)
# scenario:server -> the process that serves it, when not the server's own. handstamp runs as
# deployed (check_user = true: forward-auth loads the user, the "checked" row); the stateless row is
# the database-free check, served by a second handstamp on the same database with check_user = false.
# The public-key rows (verify_es256, ...) each have a handstamp of their own (hs_es256: `algorithm`
# and `signing_key_file`, a key made by openssl, its own database) and a naive server verifying with
# that key's public half (naive_es256); both verify the same access tokens, issued by hs_es256.
declare -A PROCESS=([stateless:hs]=hs_token)
# The public-key processes' suffix -> the algorithm.
declare -A PUBLIC_KEY_ALG=([es256]=ES256 [eddsa]=EdDSA [rs256]=RS256)
for suffix in "${!PUBLIC_KEY_ALG[@]}"; do
  PROCESS[verify_$suffix:hs]=hs_$suffix
  PROCESS[verify_$suffix:naive]=naive_$suffix
done
process_of() { echo "${PROCESS[$1:$2]:-$2}"; } # SCENARIO SERVER
# The process whose login issues a public-key row's access tokens; none for the HS256 rows (minted).
token_issuer() { # SCENARIO
  local suffix=${1#verify_}
  [ "$1" = "verify_$suffix" ] && [ -n "${PUBLIC_KEY_ALG[$suffix]:-}" ] && echo "hs_$suffix" || true
}
# Refresh tokens minted per second of run time, per round: a few times what the server spends.
declare -A REFRESH_PER_SECOND=([hs]=60000 [django]=1000)
# wrk's --timeout: Django's logins queue for seconds behind PBKDF2 (see peer_django/README.md). The
# login flood's 64 connections queue too: with verify served first, handstamp checks ~13 logins/s
# there, so a login waits ~5 s on average and the slowest over 10 s.
declare -A WRK_TIMEOUT=([hs]=10s [hs_token]=10s [naive]=10s [django]=30s)
for suffix in "${!PUBLIC_KEY_ALG[@]}"; do WRK_TIMEOUT[hs_$suffix]=10s WRK_TIMEOUT[naive_$suffix]=10s; done
FLOOD_TIMEOUT=30s
# One signing key per server (64 characters each).
declare -A KEY=(
  [hs]="bench-handstamp-key-0123456789abcdef0123456789abcdef0123456789ab"
  [hs_token]="bench-handstamp-key-0123456789abcdef0123456789abcdef0123456789ab"
  [naive]="bench-naive-key-0123456789abcdef0123456789abcdef0123456789abcdef"
  [django]="bench-django-key-0123456789abcdef0123456789abcdef0123456789abcde"
)
USERNAME=bench
PASSWORD=pw
declare -A USER_ID=([naive]=1) # hs and django: filled in when the user is created
declare -A PID=() PORT=()

# server_cmd SERVER PORT: sets CMD to the command line serving SERVER on 127.0.0.1:PORT, with an
# existing database. Each exec's the next, so the PID of `taskset ... "${CMD[@]}" &` is the server's.
server_cmd() {
  case $1 in
    hs) CMD=(env HANDSTAMP_DATABASE_URL="sqlite://$WORK/hs.sqlite3" HANDSTAMP_SIGNING_KEY="${KEY[hs]}"
      "$HS_BIN" serve --bind "127.0.0.1:$2") ;;
    hs_token) CMD=(env HANDSTAMP_DATABASE_URL="sqlite://$WORK/hs.sqlite3" HANDSTAMP_SIGNING_KEY="${KEY[hs]}"
      HANDSTAMP_CHECK_USER=false "$HS_BIN" serve --bind "127.0.0.1:$2") ;;
    hs_*) CMD=(env HANDSTAMP_DATABASE_URL="sqlite://$WORK/$1.sqlite3"
      HANDSTAMP_ALGORITHM="${PUBLIC_KEY_ALG[${1#hs_}]}" HANDSTAMP_SIGNING_KEY_FILE="$WORK/$1.key"
      "$HS_BIN" serve --bind "127.0.0.1:$2") ;;
    naive) CMD=(env NAIVE_SIGNING_KEY="${KEY[naive]}" "$NAIVE_BIN" "127.0.0.1:$2") ;;
    naive_*) CMD=(env NAIVE_ALG="${PUBLIC_KEY_ALG[${1#naive_}]}"
      NAIVE_PUBLIC_KEY_PEM="$WORK/hs_${1#naive_}.pub" "$NAIVE_BIN" "127.0.0.1:$2") ;;
    django) CMD=(env "${DJANGO_ENV[@]}" bash "$BENCH_DIR/peer_django/start.sh" "$2") ;;
    *) log "unknown server $1"; exit 1 ;;
  esac
}

# --- tools -------------------------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  log "installing wrk"
  $SUDO apt-get install -y wrk || { $SUDO apt-get update && $SUDO apt-get install -y wrk; }
fi
for tool in taskset curl openssl python3 cargo ps; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool"; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
  log "needs at least 2 CPUs (servers on CPU 0, wrk on CPU 1); nproc says $(nproc)"
  exit 1
fi

# --- build -------------------------------------------------------------------------------------
log "cargo build --release (handstamp)"
(cd "$ROOT" && cargo build --release --quiet)
HS_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/handstamp"
HS_BIN=$(cd "$(dirname "$HS_BIN")" && pwd)/handstamp
log "cargo build --release (bench/naive)"
# Its own target directory: a CARGO_TARGET_DIR shared with handstamp would mix the two.
(cd "$BENCH_DIR/naive" && CARGO_TARGET_DIR="$BENCH_DIR/naive/target" cargo build --release --quiet)
NAIVE_BIN=$BENCH_DIR/naive/target/release/naive
HASHRATE_BIN=$BENCH_DIR/naive/target/release/hashrate
if serving django; then
  log "Django virtualenv $VENV"
  bash "$BENCH_DIR/peer_django/setup.sh" "$VENV"
fi

# --- scratch dir, databases, users ---------------------------------------------------------------
WORK=$(mktemp -d -t handstamp-bench.XXXXXX)
RECORDS=$WORK/records.txt
: >"$RECORDS"
cleanup() {
  local s
  for s in "${!PID[@]}"; do stop_server "$s"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Settings from the caller's environment must not leak into the servers: run handstamp from the scratch
# dir (no handstamp.toml), and drop HANDSTAMP_*, PEER_* and RUST_LOG (handstamp logs at its default,
# info: one access-log line per request, to a file, as deployed).
cd "$WORK"
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(HANDSTAMP_|PEER_|NAIVE_)' || true)
unset RUST_LOG
# WAL like handstamp; set on the fresh database when the user is created, and it sticks.
DJANGO_ENV=(PEER_VENV="$VENV" PEER_DB="$WORK/django.sqlite3" PEER_SIGNING_KEY="${KEY[django]}"
  PEER_SQLITE_JOURNAL=WAL)

created=$(echo "$PASSWORD" | HANDSTAMP_DATABASE_URL="sqlite://$WORK/hs.sqlite3" \
  "$HS_BIN" user create "$USERNAME" --password-stdin)
USER_ID[hs]=$(sed -n 's/.*(id \([0-9][0-9]*\)).*/\1/p' <<<"$created")
[ -n "${USER_ID[hs]}" ] || { log "cannot read the user id from: $created"; exit 1; }
USER_ID[hs_token]=${USER_ID[hs]}
if serving django; then
  USER_ID[django]=$(env "${DJANGO_ENV[@]}" bash "$BENCH_DIR/peer_django/create_user.sh" "$USERNAME" "$PASSWORD")
  [[ ${USER_ID[django]} =~ ^[0-9]+$ ]] || { log "cannot read the Django user id: ${USER_ID[django]}"; exit 1; }
fi

# setup_public_key_hs hs_SUFFIX: a key for its algorithm ($WORK/hs_SUFFIX.key, the public half in .pub,
# which naive_SUFFIX reads) and the bench user in its own database.
setup_public_key_hs() {
  local p=$1
  bash "$BENCH_DIR/openssl_key.sh" "${PUBLIC_KEY_ALG[${p#hs_}]}" "$WORK/$p.key" "$WORK/$p.pub"
  echo "$PASSWORD" | HANDSTAMP_DATABASE_URL="sqlite://$WORK/$p.sqlite3" \
    HANDSTAMP_ALGORITHM="${PUBLIC_KEY_ALG[${p#hs_}]}" HANDSTAMP_SIGNING_KEY_FILE="$WORK/$p.key" \
    "$HS_BIN" user create "$USERNAME" --password-stdin >/dev/null
}

# --- server processes --------------------------------------------------------------------------
start_server() { # SERVER: a new process, pinned to CPU 0, answering /healthz when this returns
  local s=$1 port
  port=$(free_port)
  server_cmd "$s" "$port"
  PORT[$s]=$port
  launch "$s" 0 "http://127.0.0.1:$port/healthz" "${CMD[@]}"
}

url_of() { echo "http://127.0.0.1:${PORT[$1]}"; }

# Peak resident memory (VmHWM) of a server, in MiB: the process plus its children (gunicorn's workers).
peak_rss_mib() { # PID
  local pid kib total=0
  for pid in "$1" $(ps -o pid= --ppid "$1"); do
    kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${kib:-0}))
  done
  python3 -c "print(f'{$total / 1024:.1f}')"
}

# --- CPU accounting ----------------------------------------------------------------------------
# The machine may be shared: whatever else runs on CPU 0 or CPU 1 during a measurement lowers it. Each
# measurement therefore counts the CPU time of what it measures and of everything else on both CPUs.

# cpu_ticks, cpu_stat: bench/cpu.sh.
. "$BENCH_DIR/cpu.sh"
CLK_TCK=$(getconf CLK_TCK)

# timed OUT COMMAND...: run COMMAND, its output to OUT and the CPU time it used, in ticks, to OUT.ticks.
timed() {
  local out=$1
  shift
  (
    "$@" >"$out" 2>&1 || true
    times >"$out.times" # not in a pipe: a pipe's subshell has no children
  )
  awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] }
    printf "%d\n", s * 100 }' "$out.times" >"$out.ticks"
}

# watch_start [PID], then watch_stop [PID] CPU0_OWN CPU1_OWN: sets CPU_FIELDS to the CPU shares (%)
# during the measurement: cpu0_server (PID plus CPU0_OWN ticks: what is measured), cpu0_other (everything
# else on CPU 0), cpu1_wrk (CPU1_OWN ticks: the load generator), cpu1_other, and server_cpu_us (PID's
# own CPU time during it, microseconds; report.py divides it by the requests); and NOISY to 1 when other
# processes took more than 10% of CPU 0, or of CPU 1 while wrk needed a good part of it (over 25%).
watch_start() {
  read -r W_BUSY0 W_TOTAL0 < <(cpu_stat 0)
  read -r W_BUSY1 W_TOTAL1 < <(cpu_stat 1)
  W_SERVER=0
  [ -z "${1:-}" ] || W_SERVER=$(cpu_ticks "$1")
}
watch_stop() {
  local pid=$1 own0=$2 own1=$3 busy0 total0 busy1 total1 server=0
  read -r busy0 total0 < <(cpu_stat 0)
  read -r busy1 total1 < <(cpu_stat 1)
  [ -z "$pid" ] || server=$(($(cpu_ticks "$pid") - W_SERVER))
  busy0=$((busy0 - W_BUSY0)) busy1=$((busy1 - W_BUSY1))
  total0=$((total0 - W_TOTAL0)) total1=$((total1 - W_TOTAL1))
  ((total0 > 0)) || total0=1
  ((total1 > 0)) || total1=1
  local measured=$((server + own0))
  local other0=$((busy0 > measured ? 100 * (busy0 - measured) / total0 : 0))
  local other1=$((busy1 > own1 ? 100 * (busy1 - own1) / total1 : 0))
  CPU_FIELDS="cpu0_server=$((100 * measured / total0)) cpu0_other=$other0"
  CPU_FIELDS+=" cpu1_wrk=$((100 * own1 / total1)) cpu1_other=$other1"
  # The server's own CPU time (utime + stime, children included), for the CPU time per request.
  [ -z "$pid" ] || CPU_FIELDS+=" server_cpu_us=$((server * 1000000 / CLK_TCK))"
  NOISY=0
  if ((other0 > 10 || (other1 > 10 && 100 * own1 / total1 > 25))); then NOISY=1; fi
}

# Wait until a server is idle (at most one clock tick, 10 ms, of CPU in 200 ms). When wrk stops it
# leaves requests behind: the server still works on them (Django keeps hashing the passwords of up to 32
# logins whose client has gone, ~10 s of CPU), and that must not eat into the next measurement.
settle() { # SERVER
  local before after start=$SECONDS
  after=$(cpu_ticks "${PID[$1]}")
  while :; do
    before=$after
    sleep 0.2
    after=$(cpu_ticks "${PID[$1]}")
    [ $((after - before)) -gt 1 ] || break
    [ $((SECONDS - start)) -lt 120 ] || { log "  $1 still busy after 120 s; going on"; break; }
  done
  [ $((SECONDS - start)) -lt 2 ] || log "  waited $((SECONDS - start)) s for $1 to finish what wrk left behind"
}

# --- measurements ------------------------------------------------------------------------------
# Every measurement appends one line to $RECORDS, `scenario=S server=X round=N key=value ...`;
# bench/report.py turns them into the tables. A measurement during which other processes took a share
# of the CPUs (NOISY) is repeated, up to RETRIES times; the repeated ones are recorded with kept=0
# (their errors still count).
RETRIES=${BENCH_RETRIES:-2}
record() { echo "$*" >>"$RECORDS"; }

mint_access() { python3 "$BENCH_DIR/mint_refresh.py" --access "${KEY[$1]}" "${USER_ID[$1]}"; }

# access_token SCENARIO SERVER: an access token for one measurement. HS256 rows: minted with the
# server's key. Public-key rows: handstamp's own, from a login to the row's issuing handstamp, for
# handstamp and the naive server alike (no password hash runs while measuring: the login is over first).
access_token() {
  local issuer
  issuer=$(token_issuer "$1")
  if [ -z "$issuer" ]; then
    mint_access "$2"
    return
  fi
  curl -sS --fail-with-body -X POST "$(url_of "$issuer")/api/token/" -H 'content-type: application/json' \
    -d "{\"username\": \"$USERNAME\", \"password\": \"$PASSWORD\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access"])' ||
    server_failed "$issuer" "login for an access token failed"
}

# run_wrk OUT SERVER CONNECTIONS SECONDS TIMEOUT MODE PATH ARGS...: wrk on CPU 1 against SERVER (see
# timed); TIMEOUT empty for the server's WRK_TIMEOUT.
run_wrk() {
  local out=$1 s=$2 conns=$3 seconds=$4 timeout=${5:-${WRK_TIMEOUT[$2]}}
  shift 5
  timed "$out" taskset -c 1 wrk -t1 -c"$conns" -d"${seconds}s" --timeout "$timeout" \
    -s "$BENCH_DIR/scenario.lua" "$(url_of "$s")" -- "$@"
}

# record_wrk OUT SCENARIO SERVER ROUND [FIELDS]: one record from wrk's BENCH line, FIELDS added; says
# what went wrong, if anything.
record_wrk() {
  local out=$1 scenario=$2 s=$3 round=$4 extra=${5:-} line
  line=$(grep '^BENCH ' "$out" || true)
  [ -n "$line" ] || { log "$scenario/$s: no BENCH line from wrk:"; cat "$out" >&2; exit 1; }
  local p
  p=$(process_of "$scenario" "$s")
  kill -0 "${PID[$p]}" 2>/dev/null || server_failed "$p" "died during $scenario"
  local fields=${line% first_bad=*} first_bad=${line#* first_bad=}
  fields=${fields#BENCH }
  record "scenario=$scenario server=$s round=$round $fields $extra"
  local -A f=()
  local kv
  for kv in $fields; do f[${kv%%=*}]=${kv#*=}; done
  log "  $scenario $s round $round: ${f[rps]} req/s, p50 ${f[p50_ms]} ms, p99 ${f[p99_ms]} ms${extra:+; $extra}"
  if [ "${f[non200]}" != 0 ] || [ "${f[socket_errors]}" != 0 ]; then
    log "  $scenario $s round $round: ${f[non200]} non-200 answers (statuses ${f[statuses]})," \
      "${f[socket_errors]} socket errors (${f[timeouts]} timeouts)"
    [ "${f[exhausted]}" = 0 ] || log "  ran out of refresh tokens and reused them"
    [ -z "$first_bad" ] || log "  first non-200 answer: $first_bad"
  fi
}

# lua_args SCENARIO SERVER ROUND: sets ARGS to scenario.lua's arguments (a fresh access token each time:
# they live 5 minutes, and a full run is longer; fresh refresh tokens each time).
lua_args() {
  local scenario=$1 s=$2 round=$3 mode path
  read -r mode path <<<"${ROUTE[$scenario:$s]}"
  case $mode in
    verify | bearer) ARGS=("$mode" "$path" "$(access_token "$scenario" "$s")") ;;
    get) ARGS=("$mode" "$path") ;;
    login) ARGS=("$mode" "$path" "$USERNAME" "$PASSWORD") ;;
    refresh)
      local file="$WORK/refresh-$s-$round.txt"
      # Token ids shaped as each server issues them: handstamp's are time-ordered.
      local ids=()
      [ "$s" != hs ] || ids=(--v7)
      python3 "$BENCH_DIR/mint_refresh.py" "${ids[@]}" "${KEY[$s]}" "${USER_ID[$s]}" \
        $((REFRESH_PER_SECOND[$s] * DURATION_S)) "$file"
      ARGS=("$mode" "$path" "$file")
      ;;
  esac
}

# wait_quiet: bench/cpu.sh.

# keep_or_retry ATTEMPT: whether the measurement just taken is kept ("kept=1"); logs a retry otherwise.
keep_or_retry() {
  if [ "$NOISY" = 1 ] && [ "$1" -le "$RETRIES" ]; then
    log "  other processes took CPU ($CPU_FIELDS): measuring again when the CPUs are quiet"
    KEPT=kept=0
    return 1
  fi
  KEPT=kept=1
}

measure() { # SCENARIO SERVER ROUND: one wrk run, CONNECTIONS connections, DURATION_S seconds
  local scenario=$1 s=$2 round=$3 attempt p
  p=$(process_of "$scenario" "$s")
  for attempt in $(seq 1 $((RETRIES + 1))); do
    lua_args "$scenario" "$s" "$round"
    watch_start "${PID[$p]}"
    run_wrk "$WORK/wrk.out" "$p" "$CONNECTIONS" "$DURATION_S" "" "${ARGS[@]}"
    watch_stop "${PID[$p]}" 0 "$(cat "$WORK/wrk.out.ticks")"
    keep_or_retry "$attempt" || true
    record_wrk "$WORK/wrk.out" "$scenario" "$s" "$round" "$CPU_FIELDS $KEPT"
    settle "$p"
    rm -f "$WORK/refresh-$s-$round.txt"
    [ "$KEPT" = kept=0 ] || break
    wait_quiet
  done
}

# The naive column of the login row: Argon2id verifications per second on CPU 0, nothing else.
measure_hashrate() { # ROUND
  local attempt line rate
  for attempt in $(seq 1 $((RETRIES + 1))); do
    watch_start
    timed "$WORK/hashrate.out" taskset -c 0 "$HASHRATE_BIN" "$DURATION_S"
    watch_stop "" "$(cat "$WORK/hashrate.out.ticks")" 0
    line=$(grep '^HASHRATE ' "$WORK/hashrate.out") || { cat "$WORK/hashrate.out" >&2; exit 1; }
    rate=${line##*per_second=}
    keep_or_retry "$attempt" || true
    record "scenario=login server=naive round=$1 rps=$rate $CPU_FIELDS $KEPT"
    log "  login naive (hashrate) round $1: $rate verifications/s; $CPU_FIELDS"
    [ "$KEPT" = kept=0 ] || break
    wait_quiet
  done
}

# handstamp under a login flood: FLOOD_CONNECTIONS logging in, while CONNECTIONS measure verify.
measure_flood() { # ROUND
  local round=$1 attempt flood
  for attempt in $(seq 1 $((RETRIES + 1))); do
    lua_args login hs "$round"
    run_wrk "$WORK/flood-login.out" hs "$FLOOD_CONNECTIONS" $((DURATION_S + 2)) "$FLOOD_TIMEOUT" "${ARGS[@]}" &
    flood=$!
    sleep 1 # let the logins pile up before verify starts
    lua_args verify hs "$round"
    watch_start "${PID[hs]}"
    run_wrk "$WORK/flood-verify.out" hs "$CONNECTIONS" "$DURATION_S" "" "${ARGS[@]}"
    # CPU 1's own share: the verify wrk; the login wrk's few requests count as "other".
    watch_stop "${PID[hs]}" 0 "$(cat "$WORK/flood-verify.out.ticks")"
    wait "$flood"
    keep_or_retry "$attempt" || true
    record_wrk "$WORK/flood-verify.out" flood_verify hs "$round" "$CPU_FIELDS $KEPT"
    record_wrk "$WORK/flood-login.out" flood_login hs "$round" "$KEPT"
    settle hs
    [ "$KEPT" = kept=0 ] || break
    wait_quiet
  done
}

# Peak RSS: a fresh process (existing database), verify at RSS_CONNECTIONS; no login, whose password
# hash would count its own memory. CPU contention does not change it much: never repeated.
measure_rss() { # SERVER ROUND
  local s=$1 round=$2 mib
  start_server "$s"
  lua_args verify "$s" "$round"
  watch_start "${PID[$s]}"
  run_wrk "$WORK/wrk.out" "$s" "$RSS_CONNECTIONS" "$DURATION_S" "" "${ARGS[@]}"
  watch_stop "${PID[$s]}" 0 "$(cat "$WORK/wrk.out.ticks")"
  record_wrk "$WORK/wrk.out" rss_load "$s" "$round" "$CPU_FIELDS"
  mib=$(peak_rss_mib "${PID[$s]}")
  record "scenario=rss server=$s round=$round mib=$mib"
  log "  rss $s round $round: $mib MiB"
  stop_server "$s"
}

measure_startup() { # SERVER ROUND
  local s=$1 round=$2 line
  server_cmd "$s" "{port}"
  line=$(python3 "$BENCH_DIR/startup.py" "$WORK/$s-startup.log" -- taskset -c 0 "${CMD[@]}") ||
    server_failed "$s-startup" "startup measurement failed"
  record "scenario=startup server=$s round=$round ${line#STARTUP }"
  log "  startup $s round $round: ${line#STARTUP ms=} ms"
}

servers_for() { # SCENARIO: the servers with a route for it
  local s
  for s in "${SERVERS[@]}"; do
    [ -z "${ROUTE[$1:$s]:-}" ] || echo "$s"
  done
}

# --- the run -----------------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# The servers' processes, and the extra ones some scenarios are served by (see PROCESS) or take their
# tokens from (token_issuer).
PROCESSES=("${SERVERS[@]}")
for scenario in "${SCENARIOS[@]}"; do
  wanted=$(token_issuer "$scenario")
  for s in $(servers_for "$scenario"); do wanted+=" $(process_of "$scenario" "$s")"; done
  for p in $wanted; do
    [[ " ${PROCESSES[*]} " == *" $p "* ]] || PROCESSES+=("$p")
  done
done
for p in "${PROCESSES[@]}"; do
  if [[ $p == hs_* ]] && [ -n "${PUBLIC_KEY_ALG[${p#hs_}]:-}" ]; then setup_public_key_hs "$p"; fi
done
for p in "${PROCESSES[@]}"; do start_server "$p"; done
log "servers up: $(for p in "${PROCESSES[@]}"; do printf '%s pid %s; ' "$p" "${PID[$p]}"; done)"

for scenario in "${SCENARIOS[@]}"; do
  log "scenario $scenario (${DURATION_S}s, $CONNECTIONS connections, $ROUNDS rounds)"
  for round in $(seq 1 "$ROUNDS"); do
    for s in $(servers_for "$scenario"); do
      measure "$scenario" "$s" "$round"
      # The hash alone, between handstamp's logins and Django's.
      [ "$scenario:$s" != login:hs ] || measure_hashrate "$round"
    done
  done
done

if [ -z "$ONLY" ] && serving hs; then
  log "scenario login flood (hs: $FLOOD_CONNECTIONS connections logging in, $CONNECTIONS verifying)"
  for round in $(seq 1 "$ROUNDS"); do measure_flood "$round"; done
fi

# The rest needs fresh processes on the same databases.
for p in "${PROCESSES[@]}"; do stop_server "$p"; done

if [ -z "$ONLY" ]; then
  log "scenario peak RSS (fresh process each, verify at $RSS_CONNECTIONS connections)"
  for round in $(seq 1 "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do measure_rss "$s" "$round"; done
  done

  log "scenario startup (exec to the first 200 from /healthz, $STARTUP_RUNS runs each)"
  for round in $(seq 1 "$STARTUP_RUNS"); do
    for s in "${SERVERS[@]}"; do measure_startup "$s" "$round"; done
  done
fi

# --- report ------------------------------------------------------------------------------------
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
REVISION=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
WRK_VERSION=$(wrk -v 2>&1 | head -n 1 | sed 's/ Copyright.*//' || true)
NAIVE_VERSIONS=$(awk '/^name = / { n = $3 } /^version = / && n ~ /^"(axum|jsonwebtoken|tokio|argon2)"$/ {
  gsub(/"/, "", n); gsub(/"/, "", $3); printf "%s%s %s", sep, n, $3; sep = ", " }' "$BENCH_DIR/naive/Cargo.lock")
DJANGO_VERSIONS="not run"
serving django && DJANGO_VERSIONS=$("$VENV/bin/python" - <<'PY'
import platform
from importlib.metadata import version
print(f"Django {version('Django')}, DRF {version('djangorestframework')}, "
      f"simplejwt {version('djangorestframework-simplejwt')}, gunicorn {version('gunicorn')} "
      f"with 2 sync workers, Python {platform.python_version()}")
PY
)
MACHINE="Machine: $(nproc) CPUs, ${CPU_MODEL:-unknown CPU}; servers pinned to CPU 0, wrk to CPU 1."
MACHINE+=" handstamp $REVISION; naive ($NAIVE_VERSIONS); django ($DJANGO_VERSIONS); $WRK_VERSION;"
MACHINE+=" $(date -u +%Y-%m-%dT%H:%M:%SZ); load average $LOAD_BEFORE before, $LOAD_AFTER after."
TITLE="handstamp vs naive Rust vs Django ($MODE: ${DURATION_S}s per measurement, $ROUNDS rounds, wrk -t1 -c$CONNECTIONS)"
[ -z "$ONLY$SERVER_LIST" ] || TITLE+="; only ${SCENARIOS[*]} on ${SERVERS[*]}"

status=0
python3 "$BENCH_DIR/report.py" "$RECORDS" "$TITLE" "$MACHINE" >"$WORK/results.md" || status=$?
cat "$WORK/results.md"
cp "$WORK/results.md" "$BENCH_DIR/results.md"
if [ "$status" != 0 ]; then
  log "some requests failed (see Errors above); last lines of the server logs:"
  for s in "${PROCESSES[@]}"; do
    log "--- $s"
    tail -n 10 "$WORK/$s.log" >&2
  done
  exit 1
fi
