#!/usr/bin/env bash
# Create (or reuse) a virtualenv with the peer's pinned packages.
#
#   bash bench/peer_django/setup.sh VENV_DIR
#
# Idempotent: when VENV_DIR already holds exactly requirements.txt's pins it returns at once.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: bash bench/peer_django/setup.sh VENV_DIR" >&2
  exit 2
fi
VENV=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REQS="$HERE/requirements.txt"
STAMP="$VENV/.peer_django_requirements.txt"

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && cmp -s "$REQS" "$STAMP" \
  && "$VENV/bin/python" -c 'import django, rest_framework, rest_framework_simplejwt, gunicorn, psycopg' 2>/dev/null; then
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "peer_django: creating virtualenv $VENV" >&2
  python3 -m venv "$VENV"
fi
echo "peer_django: installing $REQS" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$REQS"
cp "$REQS" "$STAMP"
