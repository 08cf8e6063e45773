#!/usr/bin/env bash
# Migrate the peer's SQLite database and serve it with gunicorn (2 sync workers, no access log).
#
#   PEER_VENV=VENV_DIR [PEER_DB=FILE] [PEER_SIGNING_KEY=KEY] bash bench/peer_django/start.sh PORT
#
# Binds 127.0.0.1:PORT. The benchmark wraps it with `taskset -c 0`; gunicorn's master and workers
# inherit the CPU mask. Stop it with SIGTERM (or SIGINT) to the PID of this script, which execs
# gunicorn's master.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: PEER_VENV=VENV_DIR bash bench/peer_django/start.sh PORT" >&2
  exit 2
fi
PORT=$1
: "${PEER_VENV:?set PEER_VENV to the virtualenv made by setup.sh}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE"
export DJANGO_SETTINGS_MODULE=peer.settings
export PYTHONDONTWRITEBYTECODE=1

"$PEER_VENV/bin/python" manage.py migrate --verbosity 0 --no-input
# --no-control-socket: gunicorn >= 25.1 otherwise opens $HOME/.gunicorn/gunicorn.ctl, shared by every
# instance. No --access-logfile: gunicorn writes no access log by default.
exec "$PEER_VENV/bin/gunicorn" --workers 2 --worker-class sync --bind "127.0.0.1:$PORT" \
  --no-control-socket peer.wsgi
