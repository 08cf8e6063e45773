#!/usr/bin/env bash
# handstamp on PostgreSQL beside the database's own limit, Django on the same PostgreSQL, and
# handstamp on SQLite:
#
#   bash bench/postgres.sh [SECONDS]      (default 10 s a measurement; needs wrk, pgbench, python3)
#   BENCH_HS_BIN=path/to/handstamp bash bench/postgres.sh      (that binary instead of a release build)
#   BENCH_ROUNDS=N (default 3)            rounds; each runs every row once, in turn (interleaved)
#   BENCH_VENV=DIR                        Django's virtualenv (bench/peer_django/setup.sh makes it)
#
# PostgreSQL is reached over TCP and, when the server has a Unix socket in BENCH_PG_SOCKET (default
# /var/run/postgresql), over that socket too: the rows marked "Unix socket" (pgbench and handstamp
# alike), as an instance on the database's own machine would connect.
#
# Rows: `pgbench`: the refresh transaction itself (refresh_in's statements, read from
# src/store/postgres/sql.rs), run by pgbench at the same concurrency with prepared statements: the
# most refreshes that PostgreSQL commits on this machine. `refresh`: POST /api/token/refresh/ with a
# never-used token a request, handstamp and Django + DRF + simplejwt (bench/peer_django, psycopg 3,
# 2 gunicorn workers), each on its own database of one PostgreSQL server. `me`: GET /api/users/me/
# on both, and handstamp's on SQLite. Servers on CPU 0, wrk on CPU 1, as bench/run.sh does;
# PostgreSQL runs where it runs (the machine's server, TEST_POSTGRES_URL's or
# postgres://postgres@127.0.0.1:5432/postgres), on databases made for the run and dropped after.
# Prints a Markdown table: the median of the rounds, their lowest and highest, and the ratios.
set -euo pipefail
SECONDS_EACH=${1:-10}
ROUNDS=${BENCH_ROUNDS:-3}
VENV=${BENCH_VENV:-$HOME/.cache/handstamp-bench/venv}
CONNECTIONS=32
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SERVER_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=handstamp_bench_$$
PG_URL="${SERVER_URL%/*}/$DB"
DJANGO_URL="${SERVER_URL%/*}/${DB}_django"
PG_SOCKET=${BENCH_PG_SOCKET:-/var/run/postgresql}
# The same database through the socket: libpq's URL form, the server's role kept.
UNIX_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print("postgres://%s@%s:%s/%s" % (p.username or "postgres", u.quote(sys.argv[3], safe=""), p.port or 5432, sys.argv[2]))' "$SERVER_URL" "$DB" "$PG_SOCKET")
ls "$PG_SOCKET"/.s.PGSQL.* >/dev/null 2>&1 || UNIX_URL=
KEY=bench-signing-key-of-at-least-sixty-four-bytes-for-every-hs-algorithm-xx
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  psql -q "$SERVER_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  psql -q "$SERVER_URL" -c "DROP DATABASE IF EXISTS ${DB}_django WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^HANDSTAMP_' || true)

# BENCH_HS_BIN: another build to measure (an A/B), instead of this tree's release build.
HS=${BENCH_HS_BIN:-}
if [ -z "$HS" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  HS="${CARGO_TARGET_DIR:-$ROOT/target}/release/handstamp"
fi
psql -q "$SERVER_URL" -c "CREATE DATABASE $DB"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# serve NAME DATABASE_URL: starts handstamp on CPU 0, waits until it answers; sets ADDR.
serve() {
  local p; p=$(port)
  HANDSTAMP_SIGNING_KEY=$KEY taskset -c 0 "$HS" --database "$2" serve --bind "127.0.0.1:$p" \
    >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$p/healthz" >/dev/null && break; sleep 0.1; done
  ADDR="127.0.0.1:$p"
}
user() { # DATABASE_URL: creates the user bench, prints its id
  echo pw | HANDSTAMP_SIGNING_KEY=$KEY "$HS" --database "$1" user create bench --password-stdin |
    sed -E 's/.*\(id ([0-9]+)\).*/\1/'
}
wrk_rps() { # ADDR ARGS...: requests/s of one wrk run of the scenario
  local addr=$1; shift
  taskset -c 1 wrk -t1 -c$CONNECTIONS -d"${SECONDS_EACH}s" -s "$BENCH_DIR/scenario.lua" \
    "http://$addr" -- "$@" | sed -nE 's/^BENCH .*rps=([0-9.]+).* non200=([0-9]+).*/\1 \2/p'
}

# pgbench: the refresh transaction of src/store/postgres/mod.rs's refresh_in, statement for statement
# (read from sql.rs), for a token of no session as the wrk run's are: the user held, the token's
# session looked up (none), its blacklist entry looked up (none), the token blacklisted, the new one
# recorded; BEGIN and COMMIT around them. TOUCH_SESSION is not run: refresh_in skips it without a
# session. Parameters become pgbench variables; "now" is PostgreSQL's clock.
python3 - "$ROOT/src/store/postgres/sql.rs" >"$WORK/refresh.sql" <<'PY'
import re, sys
source = open(sys.argv[1]).read()
def statement(name, *values):
    sql = re.search(r'pub const %s: &str =\s*"(.*?)";' % name, source, re.S).group(1)
    sql = re.sub(r"\$(\d)", lambda m: "(" + values[int(m.group(1)) - 1] + ")", sql)
    return " ".join(sql.split()) + ";"
old, new, uid, exp = "'o' || :r", "'n' || :r", ":uid", "4000000000"
now = "extract(epoch from now())::bigint"
print("\\set r random(1, 9000000000000000000)")
print("BEGIN;")
print(statement("REFRESH_USER", uid))
print(statement("LOCK_SESSION_OF", old))
print(statement("BLACKLISTED_AT", old))
print(statement("BLACKLIST", old, exp, now))
print(statement("RECORD", new, uid, now, exp, "NULL", old))
print("COMMIT;")
PY

echo "bench: PostgreSQL $(psql -Atc 'SHOW server_version' "$SERVER_URL"), $ROUNDS rounds of ${SECONDS_EACH}s each, $CONNECTIONS connections" >&2
serve pg "$PG_URL"; PG_ADDR=$ADDR
[ -z "$UNIX_URL" ] || { serve pg_unix "$UNIX_URL"; PG_UNIX_ADDR=$ADDR; }
UID_PG=$(user "$PG_URL")
SQLITE_URL="sqlite://$WORK/hs.sqlite3"
UID_SQLITE=$(user "$SQLITE_URL")
serve sqlite "$SQLITE_URL"; SQLITE_ADDR=$ADDR

# Django + DRF + simplejwt (bench/peer_django, 2 gunicorn workers on CPU 0) on a database of its own
# on the same PostgreSQL server.
bash "$BENCH_DIR/peer_django/setup.sh" "$VENV"
psql -q "$SERVER_URL" -c "CREATE DATABASE ${DB}_django"
DJANGO_ENV=(PEER_VENV="$VENV" PEER_DATABASE_URL="$DJANGO_URL" PEER_SIGNING_KEY="$KEY")
UID_DJANGO=$(env "${DJANGO_ENV[@]}" bash "$BENCH_DIR/peer_django/create_user.sh" bench pw | tail -1)
P=$(port)
env "${DJANGO_ENV[@]}" taskset -c 0 bash "$BENCH_DIR/peer_django/start.sh" "$P" >"$WORK/django.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$P/healthz" >/dev/null && break; sleep 0.1; done
DJANGO_ADDR="127.0.0.1:$P"

ACCESS_PG=$(python3 "$BENCH_DIR/mint_refresh.py" --access "$KEY" "$UID_PG")
ACCESS_SQLITE=$(python3 "$BENCH_DIR/mint_refresh.py" --access "$KEY" "$UID_SQLITE")
# Fresh tokens a round: never-used refresh tokens, so every request rotates one.
declare -A R
add() { R[$1]="${R[$1]:-} $2"; }
for round in $(seq "$ROUNDS"); do
  echo "bench: round $round" >&2
  pgbench -n -M prepared -c $CONNECTIONS -j 1 -T "$SECONDS_EACH" -D uid="$UID_PG" \
    -f "$WORK/refresh.sql" "$PG_URL" >"$WORK/pgbench.out" 2>&1
  add pgbench "$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$WORK/pgbench.out")"
  # Every transaction rotated (the user exists and is active): blacklisted rows were added.
  ROTATED=$(psql -Atc "SELECT count(*) FROM blacklisted_tokens" "$PG_URL")
  [ "$ROTATED" -gt 0 ] || { cat "$WORK/pgbench.out" >&2; echo "bench: pgbench rotated nothing" >&2; exit 1; }
  python3 "$BENCH_DIR/mint_refresh.py" --v7 "$KEY" "$UID_PG" 200000 "$WORK/tokens"
  read -r rps bad < <(wrk_rps "$PG_ADDR" refresh /api/token/refresh/ "$WORK/tokens")
  add refresh_pg "$rps"; add bad_refresh_pg "$bad"
  if [ -n "$UNIX_URL" ]; then
    pgbench -n -M prepared -c $CONNECTIONS -j 1 -T "$SECONDS_EACH" -D uid="$UID_PG" \
      -f "$WORK/refresh.sql" "$UNIX_URL" >"$WORK/pgbench.out" 2>&1
    add pgbench_unix "$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$WORK/pgbench.out")"
    python3 "$BENCH_DIR/mint_refresh.py" --v7 "$KEY" "$UID_PG" 200000 "$WORK/tokens"
    read -r rps bad < <(wrk_rps "$PG_UNIX_ADDR" refresh /api/token/refresh/ "$WORK/tokens")
    add refresh_pg_unix "$rps"; add bad_refresh_pg_unix "$bad"
    read -r rps bad < <(wrk_rps "$PG_UNIX_ADDR" bearer /api/users/me/ "$ACCESS_PG")
    add me_pg_unix "$rps"; add bad_me_pg_unix "$bad"
  fi
  python3 "$BENCH_DIR/mint_refresh.py" "$KEY" "$UID_DJANGO" 20000 "$WORK/tokens"
  read -r rps bad < <(wrk_rps "$DJANGO_ADDR" refresh /api/token/refresh/ "$WORK/tokens")
  add refresh_django "$rps"; add bad_refresh_django "$bad"
  read -r rps bad < <(wrk_rps "$PG_ADDR" bearer /api/users/me/ "$ACCESS_PG")
  add me_pg "$rps"; add bad_me_pg "$bad"
  read -r rps bad < <(wrk_rps "$SQLITE_ADDR" bearer /api/users/me/ "$ACCESS_SQLITE")
  add me_sqlite "$rps"; add bad_me_sqlite "$bad"
  ACCESS_DJANGO=$(python3 "$BENCH_DIR/mint_refresh.py" --access "$KEY" "$UID_DJANGO")
  read -r rps bad < <(wrk_rps "$DJANGO_ADDR" bearer /api/users/me/ "$ACCESS_DJANGO")
  add me_django "$rps"; add bad_me_django "$bad"
done

# The table: per row the median of the rounds, the lowest and highest, the non-200 answers summed.
python3 - "$ROUNDS" <<PY
import statistics, sys
r = {k: [float(x) for x in v.split()] for k, v in dict(
    pgbench="${R[pgbench]}", refresh_pg="${R[refresh_pg]}", refresh_django="${R[refresh_django]}",
    me_pg="${R[me_pg]}", me_sqlite="${R[me_sqlite]}", me_django="${R[me_django]}",
    bad_refresh_pg="${R[bad_refresh_pg]}", bad_refresh_django="${R[bad_refresh_django]}",
    bad_me_pg="${R[bad_me_pg]}", bad_me_sqlite="${R[bad_me_sqlite]}", bad_me_django="${R[bad_me_django]}",
    pgbench_unix="${R[pgbench_unix]:-}", refresh_pg_unix="${R[refresh_pg_unix]:-}",
    me_pg_unix="${R[me_pg_unix]:-}", bad_refresh_pg_unix="${R[bad_refresh_pg_unix]:-}",
    bad_me_pg_unix="${R[bad_me_pg_unix]:-}",
).items() if v.split()}
med = {k: statistics.median(v) for k, v in r.items()}
rows = [("pgbench, the refresh transaction (PostgreSQL's limit)", "pgbench"),
        ("pgbench, the refresh transaction, Unix socket", "pgbench_unix"),
        ("refresh, handstamp on PostgreSQL", "refresh_pg"),
        ("refresh, handstamp on PostgreSQL, Unix socket", "refresh_pg_unix"),
        ("refresh, Django + simplejwt on PostgreSQL", "refresh_django"),
        ("\`/api/users/me/\`, handstamp on PostgreSQL", "me_pg"),
        ("\`/api/users/me/\`, handstamp on PostgreSQL, Unix socket", "me_pg_unix"),
        ("\`/api/users/me/\`, handstamp on SQLite", "me_sqlite"),
        ("\`/api/users/me/\`, Django + simplejwt on PostgreSQL", "me_django")]
rows = [(name, k) for name, k in rows if k in r]
print(f"{sys.argv[1]} rounds, interleaved; requests/s (pgbench: transactions/s)\n")
print("| row | median | lowest | highest | non-200 |")
print("|---|---:|---:|---:|---:|")
for name, k in rows:
    bad = int(sum(r.get("bad_" + k, [0])))
    print(f"| {name} | {med[k]:.0f} | {min(r[k]):.0f} | {max(r[k]):.0f} | {bad if not k.startswith('pgbench') else ''} |")
print()
for what, a, b, target in [("refresh: handstamp / Django on PostgreSQL", "refresh_pg", "refresh_django", 100),
                           ("refresh: handstamp / pgbench", "refresh_pg", "pgbench", 0.5),
                           ("refresh: handstamp / pgbench, Unix socket", "refresh_pg_unix", "pgbench_unix", 0.5),
                           ("/me: PostgreSQL / SQLite", "me_pg", "me_sqlite", 0.5),
                           ("/me: PostgreSQL over its Unix socket / SQLite", "me_pg_unix", "me_sqlite", 0.5),
                           ("/me: handstamp / Django on PostgreSQL", "me_pg", "me_django", None)]:
    if a not in r or b not in r:
        continue
    goal = f" (target >= {target})" if target else ""
    print(f"- {what}: {med[a] / med[b]:.2f}{goal}")
PY
