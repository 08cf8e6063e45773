#!/usr/bin/env bash
# The gateway beside nginx: static files, proxying, TLS, in one run, with ratios. See bench/README.md.
#
#   bash bench/gateway.sh [--quick] [--only ROW,...]
#   BENCH_HS_BIN=path/to/handstamp bash bench/gateway.sh     (that binary instead of a release build)
#   BENCH_ROUNDS=N (default 3)                                rounds, interleaved (handstamp, nginx, ...)
#
# Servers: handstamp (its `[[static]]` and `[[upstream]]`) and nginx 1.22 from Debian's packages
# (installed with apt-get when missing), one worker, `sendfile on`, upstream keep-alive, an access log
# with a 64k buffer; both pinned to CPU 0, in front of the same fixed backend (a second nginx answering
# a fixed 200), pinned with the load generator (wrk -t1 -c32, or bench/handshakes for new TLS
# connections) on CPU 1.
# Each is configured in a temporary directory (its own prefix, pid and log paths; never /etc/nginx).
# Prints a Markdown table (median of the rounds, lowest and highest, the ratio, the target met or
# missed, each server's CPU time per request) and writes it to bench/gateway_results.md. Exits 1 when
# an answer had another status than expected (anything but 2xx/3xx included) or a socket error.
set -euo pipefail

usage() { echo "usage: bash bench/gateway.sh [--quick] [--only ROW,...]" >&2; }

DURATION_S=10
MODE=full
ROWS=(static_1k static_64k static_304 proxy auth auth_keepalive https handshake rss)
ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) DURATION_S=2; MODE=quick ;;
    --only) ONLY=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 2 ;;
  esac
  shift
done
[ -z "$ONLY" ] || IFS=, read -r -a ROWS <<<"$ONLY"
ROUNDS=${BENCH_ROUNDS:-3}
CONNECTIONS=32
RSS_CONNECTIONS=256
SERVERS=(hs nginx)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
log() { echo "bench: $*" >&2; }
. "$BENCH_DIR/cpu.sh"
. "$BENCH_DIR/servers.sh"
CLK_TCK=$(getconf CLK_TCK)

# --- tools -------------------------------------------------------------------------------------
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
NGINX=${BENCH_NGINX:-/usr/sbin/nginx}
for pkg in nginx:"$NGINX" wrk:wrk; do
  if ! command -v "${pkg#*:}" >/dev/null 2>&1; then
    log "installing ${pkg%%:*} (apt-get)"
    $SUDO apt-get install -y -qq "${pkg%%:*}" >/dev/null ||
      { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${pkg%%:*}" >/dev/null; }
  fi
done
# Debian's package starts the machine's nginx on port 80: that one is left alone, and unused here.
for tool in taskset curl openssl python3 ps; do
  command -v "$tool" >/dev/null 2>&1 || { log "missing $tool"; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { log "needs at least 2 CPUs; nproc says $(nproc)"; exit 1; }

# --- scratch dir, binaries ---------------------------------------------------------------------
WORK=$(mktemp -d -t handstamp-gateway.XXXXXX)
declare -A PID=()
cleanup() {
  local s
  for s in "${!PID[@]}"; do stop_server "$s"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
# nginx's worker runs as the user nginx names (root's master: `nobody` unless told): it must reach
# the files and logs.
chmod 755 "$WORK"

HS_SOURCE=${BENCH_HS_BIN:-}
if [ -z "$HS_SOURCE" ]; then
  log "cargo build --release (handstamp)"
  (cd "$ROOT" && cargo build --release --quiet)
  HS_SOURCE="${CARGO_TARGET_DIR:-$ROOT/target}/release/handstamp"
fi
# A copy: a build of another tree into the same target directory must not swap it mid-run.
HS_BIN=$WORK/handstamp
cp "$HS_SOURCE" "$HS_BIN"
if [[ " ${ROWS[*]} " == *" handshake "* ]]; then
  log "cargo build --release (bench/handshakes)"
  # Its own target directory, as bench/naive's: a CARGO_TARGET_DIR shared with handstamp would mix
  # the two.
  (cd "$BENCH_DIR/handshakes" && CARGO_TARGET_DIR="$BENCH_DIR/handshakes/target" cargo build --release --quiet)
  HANDSHAKES_BIN=$BENCH_DIR/handshakes/target/release/handshakes
fi

cd "$WORK"
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^HANDSTAMP_' || true)
unset RUST_LOG

declare -A PORT=(
  [backend]=$(free_port) [hs]=$(free_port) [hs_tls]=$(free_port) [nginx]=$(free_port)
  [nginx_tls]=$(free_port)
)

# The files: 1 KiB and 64 KiB of random bytes (nothing to gain from compression either way).
mkdir -p "$WORK/www/static"
head -c 1024 /dev/urandom >"$WORK/www/static/1k.bin"
head -c 65536 /dev/urandom >"$WORK/www/static/64k.bin"
chmod -R a+rX "$WORK/www"

# ECDSA P-256, self-signed, for both servers.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
chmod a+r "$WORK/tls.key"

# handstamp's database, user and token.
KEY="bench-gateway-key-0123456789abcdef0123456789abcdef0123456789abcd"
export HANDSTAMP_DATABASE_URL="sqlite://$WORK/hs.sqlite3" HANDSTAMP_SIGNING_KEY=$KEY
created=$(echo pw | "$HS_BIN" user create bench --password-stdin)
USER_ID=$(sed -n 's/.*(id \([0-9][0-9]*\)).*/\1/p' <<<"$created")
[ -n "$USER_ID" ] || { log "cannot read the user id from: $created"; exit 1; }

# --- configurations ----------------------------------------------------------------------------
# handstamp: the same mounts as nginx's locations below; the TLS one a process of its own (with TLS
# every listener speaks HTTPS).
hs_config() { # FILE [TLS]
  {
    if [ -n "${2:-}" ]; then
      printf '[server]\ntls_cert = "%s"\ntls_key = "%s"\n\n' "$WORK/tls.crt" "$WORK/tls.key"
    fi
    cat <<EOF
[[static]]
prefix = "/static/"
dir = "$WORK/www/static"

[[upstream]]
prefix = "/app/"
backends = ["http://127.0.0.1:${PORT[backend]}"]
auth = "none"

[[upstream]]
prefix = "/auth/"
backends = ["http://127.0.0.1:${PORT[backend]}"]
auth = "required"
EOF
  } >"$1"
}
hs_config "$WORK/hs.toml"
hs_config "$WORK/hs_tls.toml" tls

nginx_user() { [ "$(id -u)" -ne 0 ] || echo "user root root;"; }

mkdir -p "$WORK/backend/logs" "$WORK/nginx/logs"
cat >"$WORK/backend/nginx.conf" <<EOF
# The fixed backend: a 200 with a short body, as fast as nginx answers anything.
$(nginx_user)
worker_processes 1;
pid $WORK/backend/nginx.pid;
error_log $WORK/backend/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:${PORT[backend]} reuseport backlog=4096;
    location / { return 200 "ok\n"; }
  }
}
EOF

cat >"$WORK/nginx/nginx.conf" <<EOF
$(nginx_user)
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log $WORK/nginx/logs/access.log combined buffer=64k;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path $WORK/nginx/client_body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;

  upstream backend {
    server 127.0.0.1:${PORT[backend]};
    keepalive 64;
    keepalive_requests 1000000;
  }
  # handstamp's check over kept-alive connections (the auth_keepalive row).
  upstream handstamp {
    server 127.0.0.1:${PORT[hs]};
    keepalive 64;
    keepalive_requests 1000000;
  }

  server {
    listen 127.0.0.1:${PORT[nginx]} backlog=4096;
    listen 127.0.0.1:${PORT[nginx_tls]} ssl backlog=4096;
    ssl_certificate $WORK/tls.crt;
    ssl_certificate_key $WORK/tls.key;
    ssl_protocols TLSv1.3;

    location = /healthz { return 200 "ok\n"; }
    location /static/ { root $WORK/www; }
    location /app/ {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    # As README's "Deploying" shows: auth_request to handstamp's check.
    location = /_auth {
      internal;
      proxy_pass http://127.0.0.1:${PORT[hs]}/api/auth/check;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }
    location /auth/ {
      auth_request /_auth;
      auth_request_set \$user_id \$upstream_http_x_handstamp_user_id;
      proxy_set_header X-Handstamp-User-Id \$user_id;
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    # The same with keep-alive to handstamp as well.
    location = /_auth_keepalive {
      internal;
      proxy_pass http://handstamp/api/auth/check;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location /authk/ {
      auth_request /_auth_keepalive;
      auth_request_set \$user_id \$upstream_http_x_handstamp_user_id;
      proxy_set_header X-Handstamp-User-Id \$user_id;
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF

# --- processes ---------------------------------------------------------------------------------
# server_cmd NAME: CMD, the command line (exec'd by taskset: the PID is the server's, or nginx's master)
# and CPU, the CPU it is pinned to.
server_cmd() {
  case $1 in
    backend) CMD=("$NGINX" -p "$WORK/backend/" -c "$WORK/backend/nginx.conf" -g "daemon off;"); CPU=1 ;;
    nginx) CMD=("$NGINX" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -g "daemon off;"); CPU=0 ;;
    hs) CMD=("$HS_BIN" --config "$WORK/hs.toml" serve --bind "127.0.0.1:${PORT[hs]}"); CPU=0 ;;
    hs_tls) CMD=("$HS_BIN" --config "$WORK/hs_tls.toml" serve --bind "127.0.0.1:${PORT[hs_tls]}"); CPU=0 ;;
    *) log "unknown server $1"; exit 1 ;;
  esac
}
health_url() {
  case $1 in
    backend) echo "http://127.0.0.1:${PORT[backend]}/" ;;
    hs_tls) echo "https://127.0.0.1:${PORT[hs_tls]}/healthz" ;;
    *) echo "http://127.0.0.1:${PORT[$1]}/healthz" ;;
  esac
}

start_server() { # NAME: a new process on its CPU, answering when this returns
  server_cmd "$1"
  launch "$1" "$CPU" "$(health_url "$1")" "${CMD[@]}"
}

nginx_worker() { ps -o pid= --ppid "${PID[nginx]}" | tr -d ' ' | head -n 1; }
cpu_pids() { # ROW SERVER
  case $2:$1 in
    nginx:auth | nginx:auth_keepalive) echo "$(nginx_worker) ${PID[hs]}" ;;
    nginx:*) nginx_worker ;;
    hs:https | hs:handshake) echo "${PID[hs_tls]}" ;;
    hs:*) echo "${PID[hs]}" ;;
  esac
}

# Peak resident memory (VmHWM), MiB: the process and its children (nginx's master and worker).
peak_rss_mib() { # PID
  local pid kib total=0
  for pid in "$1" $(ps -o pid= --ppid "$1"); do
    kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
    total=$((total + ${kib:-0}))
  done
  python3 -c "print(f'{$total / 1024:.1f}')"
}

# --- the requests ------------------------------------------------------------------------------
ACCESS=$(python3 "$BENCH_DIR/mint_refresh.py" --access "$KEY" "$USER_ID")
declare -A ETAG=()
# request ROW SERVER: sets URL (wrk's) and ARGS (gateway.lua's: expected status, path, headers).
request() {
  local row=$1 s=$2 base="http://127.0.0.1:${PORT[$2]}"
  case $row in
    static_1k) URL=$base ARGS=(200 /static/1k.bin) ;;
    static_64k) URL=$base ARGS=(200 /static/64k.bin) ;;
    static_304) URL=$base ARGS=(304 /static/1k.bin "If-None-Match: ${ETAG[$s]}") ;;
    proxy | rss) URL=$base ARGS=(200 /app/x) ;;
    auth) URL=$base ARGS=(200 /auth/x "Authorization: Bearer $ACCESS") ;;
    auth_keepalive) URL=$base ARGS=(200 /authk/x "Authorization: Bearer $ACCESS") ;;
    https)
      local port=${PORT[nginx_tls]}
      [ "$s" = nginx ] || port=${PORT[hs_tls]}
      URL="https://127.0.0.1:$port" ARGS=(200 /static/1k.bin)
      ;;
  esac
}
servers_of() { # ROW: auth_keepalive is nginx's alone (handstamp's figure is its auth row's)
  if [ "$1" = auth_keepalive ]; then echo nginx; else echo "${SERVERS[@]}"; fi
}
# The access token lives 5 minutes; a full run is longer.
refresh_access() { ACCESS=$(python3 "$BENCH_DIR/mint_refresh.py" --access "$KEY" "$USER_ID"); }

RECORDS=$WORK/records.txt
: >"$RECORDS"
FAILED=0

# run_load OUT ROW SERVER CONNECTIONS: the load generator on CPU 1, its output in OUT.
run_load() {
  local out=$1 row=$2 s=$3 conns=$4
  if [ "$row" = handshake ]; then
    local port=${PORT[nginx_tls]}
    [ "$s" = nginx ] || port=${PORT[hs_tls]}
    taskset -c 1 "$HANDSHAKES_BIN" 127.0.0.1 "$port" /static/1k.bin "$DURATION_S" "$conns" >"$out" 2>&1 ||
      true
  else
    request "$row" "$s"
    taskset -c 1 wrk -t1 -c"$conns" -d"${DURATION_S}s" --timeout 10s -s "$BENCH_DIR/gateway.lua" \
      "$URL" -- "${ARGS[@]}" >"$out" 2>&1 || true
  fi
}

# measure ROW SERVER ROUND [CONNECTIONS]: one run, taken again (up to BENCH_RETRIES times, default 2,
# after waiting for quiet CPUs) while other processes take more than 10% of CPU 0; the runs taken
# again are recorded with kept=0 (their errors still count).
RETRIES=${BENCH_RETRIES:-2}
measure() {
  local attempt
  for attempt in $(seq 1 $((RETRIES + 1))); do
    measure_once "$@"
    if [ "$OTHER0" -le 10 ] || [ "$attempt" -gt "$RETRIES" ]; then
      echo "$RECORD kept=1" >>"$RECORDS"
      return
    fi
    echo "$RECORD kept=0" >>"$RECORDS"
    log "  other processes took $OTHER0% of CPU 0: measuring again when the CPUs are quiet"
    wait_quiet
  done
}

# measure_once ROW SERVER ROUND [CONNECTIONS]: one run; sets RECORD to the BENCH line, the CPU time the server's
# processes spent (server_cpu_us), their share of CPU 0 and what everything else took of it (cpu0_server,
# cpu0_other, %), and how busy CPU 1 was (cpu1_busy, %: the load generator, the backend, anything else).
measure_once() {
  local row=$1 s=$2 round=$3 conns=${4:-$CONNECTIONS} pids before after b0 t0 b0e t0e b1 t1 b1e t1e line
  pids=$(cpu_pids "$row" "$s")
  read -r b0 t0 < <(cpu_stat 0)
  read -r b1 t1 < <(cpu_stat 1)
  before=$(own_ticks $pids)
  run_load "$WORK/load.out" "$row" "$s" "$conns"
  after=$(own_ticks $pids)
  read -r b0e t0e < <(cpu_stat 0)
  read -r b1e t1e < <(cpu_stat 1)
  local cpu1_busy=$((100 * (b1e - b1) / (t1e - t1 > 0 ? t1e - t1 : 1)))
  line=$(grep '^BENCH ' "$WORK/load.out" || true)
  [ -n "$line" ] || { log "$row/$s: no BENCH line:"; cat "$WORK/load.out" >&2; exit 1; }
  local used=$((after - before)) total0=$((t0e - t0)) busy0=$((b0e - b0))
  ((total0 > 0)) || total0=1
  local other0=$((busy0 > used ? 100 * (busy0 - used) / total0 : 0))
  local fields=${line% first_bad=*} first_bad=${line#* first_bad=}
  fields=${fields#BENCH }
  RECORD="row=$row server=$s round=$round $fields server_cpu_us=$((used * 1000000 / CLK_TCK))"
  RECORD+=" cpu0_server=$((100 * used / total0)) cpu0_other=$other0 cpu1_busy=$cpu1_busy"
  OTHER0=$other0
  local -A f=()
  local kv
  for kv in $fields; do f[${kv%%=*}]=${kv#*=}; done
  log "  $row $s round $round: ${f[rps]}/s, p50 ${f[p50_ms]} ms, p99 ${f[p99_ms]} ms; server CPU $((100 * used / total0))%, other processes on CPU 0 $other0%, CPU 1 busy $cpu1_busy%"
  if [ "${f[non200]}" != 0 ] || [ "${f[socket_errors]}" != 0 ]; then
    FAILED=1
    log "  $row $s round $round: ${f[non200]} unexpected statuses (${f[statuses]}), ${f[socket_errors]} socket errors (${f[timeouts]} timeouts); first: $first_bad"
  fi
  for p in $pids; do kill -0 "$p" 2>/dev/null || server_failed "$s" "died during $row"; done
}

# --- the run -----------------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
start_server backend
start_server hs
start_server hs_tls
start_server nginx
log "servers up: backend (nginx, CPU 1) pid ${PID[backend]}, handstamp ${PID[hs]} and ${PID[hs_tls]} (TLS), nginx ${PID[nginx]} (worker $(nginx_worker)), CPU 0"

# Every row's request answered as expected before measuring (and the ETags for the 304 row).
for s in "${SERVERS[@]}"; do
  ETAG[$s]=$(curl -sfI "http://127.0.0.1:${PORT[$s]}/static/1k.bin" | tr -d '\r' |
    sed -n 's/^[Ee][Tt][Aa][Gg]: *//p')
  [ -n "${ETAG[$s]}" ] || server_failed "$s" "no ETag on /static/1k.bin"
done
for row in static_1k static_64k static_304 proxy auth auth_keepalive https; do
  for s in $(servers_of "$row"); do
    request "$row" "$s"
    headers=()
    for h in "${ARGS[@]:2}"; do headers+=(-H "$h"); done
    got=$(curl -sk -o /dev/null -w '%{http_code}' "${headers[@]}" "$URL${ARGS[1]}")
    [ "$got" = "${ARGS[0]}" ] || server_failed "$s" "$row: $URL${ARGS[1]} answered $got, expected ${ARGS[0]}"
  done
done

for row in "${ROWS[@]}"; do
  [ "$row" != rss ] || continue
  log "row $row (${DURATION_S}s, $ROUNDS rounds)"
  for round in $(seq 1 "$ROUNDS"); do
    refresh_access
    for s in $(servers_of "$row"); do measure "$row" "$s" "$round"; done
  done
done

# Peak RSS: fresh processes, the proxy row's load at RSS_CONNECTIONS, then VmHWM.
if [[ " ${ROWS[*]} " == *" rss "* ]]; then
  log "row rss (fresh processes, the proxy at $RSS_CONNECTIONS connections, $ROUNDS rounds)"
  stop_server hs_tls
  for round in $(seq 1 "$ROUNDS"); do
    for s in "${SERVERS[@]}"; do
      stop_server "$s"
      start_server "$s"
      # Not taken again when disturbed: other processes hardly change the peak.
      measure_once rss "$s" "$round" "$RSS_CONNECTIONS"
      echo "$RECORD kept=1" >>"$RECORDS"
      mib=$(peak_rss_mib "${PID[$s]}")
      echo "row=rss_mib server=$s round=$round mib=$mib" >>"$RECORDS"
      log "  rss $s round $round: $mib MiB"
    done
  done
fi

# --- report ------------------------------------------------------------------------------------
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
REVISION=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
[ -z "${BENCH_HS_BIN:-}" ] || REVISION="$BENCH_HS_BIN"
MACHINE="Machine: $(nproc) CPUs, ${CPU_MODEL:-unknown CPU}; handstamp and nginx pinned to CPU 0, the"
MACHINE+=" backend and the load generator to CPU 1. handstamp $REVISION; $("$NGINX" -v 2>&1 | sed 's/^nginx version: //');"
MACHINE+=" $(wrk -v 2>&1 | head -n 1 | sed 's/ Copyright.*//'); $(openssl version | cut -d' ' -f1-2);"
MACHINE+=" $(date -u +%Y-%m-%dT%H:%M:%SZ); load average $LOAD_BEFORE before, $LOAD_AFTER after."
TITLE="handstamp beside nginx ($MODE: ${DURATION_S}s per measurement, $ROUNDS rounds, wrk -t1 -c$CONNECTIONS)"
[ -z "$ONLY" ] || TITLE+="; only ${ROWS[*]}"
status=0
python3 "$BENCH_DIR/gateway_report.py" "$RECORDS" "$TITLE" "$MACHINE" >"$WORK/results.md" || status=$?
cat "$WORK/results.md"
cp "$WORK/results.md" "$BENCH_DIR/gateway_results.md"
if [ "$status" != 0 ] || [ "$FAILED" != 0 ]; then
  log "some requests failed (see Errors above); last lines of the logs:"
  for s in hs hs_tls; do log "--- $s"; tail -n 5 "$WORK/$s.log" >&2 || true; done
  log "--- nginx"; tail -n 5 "$WORK/nginx/logs/error.log" >&2 || true
  exit 1
fi
