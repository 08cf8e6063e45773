#!/usr/bin/env bash
# Create a user in the peer's database (migrating it first) and print its numeric id on stdout.
#
#   PEER_VENV=VENV_DIR [PEER_DB=FILE] bash bench/peer_django/create_user.sh NAME PASSWORD
#
# Fails (exit 1) when the user already exists.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: PEER_VENV=VENV_DIR bash bench/peer_django/create_user.sh NAME PASSWORD" >&2
  exit 2
fi
: "${PEER_VENV:?set PEER_VENV to the virtualenv made by setup.sh}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$HERE"
export DJANGO_SETTINGS_MODULE=peer.settings
export PYTHONDONTWRITEBYTECODE=1

"$PEER_VENV/bin/python" manage.py migrate --verbosity 0 --no-input
"$PEER_VENV/bin/python" - "$1" "$2" <<'PY'
import sys

import django

django.setup()
from django.contrib.auth import get_user_model

name, password = sys.argv[1], sys.argv[2]
User = get_user_model()
if User.objects.filter(username=name).exists():
    sys.exit(f"create_user: user {name!r} already exists")
print(User.objects.create_user(username=name, password=password).id)
PY
