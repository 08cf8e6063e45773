#!/usr/bin/env bash
# handstamp on PostgreSQL beside the database's own limit, and beside handstamp on SQLite:
#
#   bash bench/postgres.sh [SECONDS]      (default 10 s a measurement; needs wrk, pgbench, python3)
#   BENCH_HS_BIN=path/to/handstamp bash bench/postgres.sh      (that binary instead of a release build)
#
# Rows: `pgbench`: the refresh transaction itself (refresh_in's statements, read from
# src/store/postgres/sql.rs), run by pgbench at the same concurrency with prepared statements: the most refreshes that
# PostgreSQL commits on this machine. `refresh`: POST /api/token/refresh/ with a never-used token a
# request. `me`: GET /api/users/me/, on PostgreSQL and on SQLite. Servers on CPU 0, wrk on CPU 1, as
# bench/run.sh does; PostgreSQL runs where it runs (the machine's server, TEST_POSTGRES_URL's or
# postgres://postgres@127.0.0.1:5432/postgres), on a database made for the run and dropped after.
set -euo pipefail
SECONDS_EACH=${1:-10}
CONNECTIONS=32
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SERVER_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=handstamp_bench_$$
PG_URL="${SERVER_URL%/*}/$DB"
KEY=bench-signing-key-of-at-least-sixty-four-bytes-for-every-hs-algorithm-xx
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  psql -q "$SERVER_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
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

echo "bench: PostgreSQL $(psql -Atc 'SHOW server_version' "$SERVER_URL"), ${SECONDS_EACH}s each, $CONNECTIONS connections" >&2
serve pg "$PG_URL"; PG_ADDR=$ADDR
UID_PG=$(user "$PG_URL")
pgbench -n -M prepared -c $CONNECTIONS -j 1 -T "$SECONDS_EACH" -D uid="$UID_PG" \
  -f "$WORK/refresh.sql" "$PG_URL" >"$WORK/pgbench.out" 2>&1
PGBENCH=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$WORK/pgbench.out")
# Every one of them rotated (the user exists and is active): as many blacklisted as new tokens.
ROTATED=$(psql -Atc "SELECT count(*) FROM blacklisted_tokens" "$PG_URL")
[ "$ROTATED" -gt 0 ] || { cat "$WORK/pgbench.out" >&2; echo "bench: pgbench rotated nothing" >&2; exit 1; }

python3 "$BENCH_DIR/mint_refresh.py" --v7 "$KEY" "$UID_PG" 200000 "$WORK/tokens"
read -r REFRESH REFRESH_BAD < <(wrk_rps "$PG_ADDR" refresh /api/token/refresh/ "$WORK/tokens")
ACCESS=$(python3 "$BENCH_DIR/mint_refresh.py" --access "$KEY" "$UID_PG")
read -r ME_PG ME_PG_BAD < <(wrk_rps "$PG_ADDR" bearer /api/users/me/ "$ACCESS")

SQLITE_URL="sqlite://$WORK/hs.sqlite3"
UID_SQLITE=$(user "$SQLITE_URL")
serve sqlite "$SQLITE_URL"
ACCESS=$(python3 "$BENCH_DIR/mint_refresh.py" --access "$KEY" "$UID_SQLITE")
read -r ME_SQLITE ME_SQLITE_BAD < <(wrk_rps "$ADDR" bearer /api/users/me/ "$ACCESS")

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
cat <<EOF2
| row | requests/s | non-200 |
|---|---:|---:|
| pgbench, the refresh transaction (PostgreSQL's limit) | $PGBENCH | |
| refresh on PostgreSQL | $REFRESH | $REFRESH_BAD |
| \`/api/users/me/\` on PostgreSQL | $ME_PG | $ME_PG_BAD |
| \`/api/users/me/\` on SQLite | $ME_SQLITE | $ME_SQLITE_BAD |

refresh / pgbench: $(ratio "$REFRESH" "$PGBENCH"); /me PostgreSQL / SQLite: $(ratio "$ME_PG" "$ME_SQLITE")
EOF2
