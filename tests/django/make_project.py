"""Builds a real Django project's database for `handstamp import-django` to read.

A minimal project (auth, contenttypes, simplejwt's token_blacklist) is migrated into a new
SQLite file (--sqlite PATH) or an empty PostgreSQL database (--postgres URL); users are made
with several of Django's hashers (at small costs, for speed: the stored formats are Django's
own), and refresh tokens are issued with simplejwt's RefreshToken.for_user, one of them
blacklisted. Prints one JSON object: the signing key, the users with their passwords, ids,
flags and times, and the two refresh tokens.

Run with the virtualenv .ci/run makes (tests/interop/requirements.txt):
    target/interop-venv/bin/python tests/django/make_project.py --sqlite /tmp/django.sqlite3
"""

import argparse
import json
import sys
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit

import django
from django.conf import settings
from django.contrib.auth import hashers

SECRET_KEY = "django-insecure-import-test-key-0123456789abcdefghijklmnopqrstuvwxyz"


class PBKDF2(hashers.PBKDF2PasswordHasher):
    iterations = 1000


class PBKDF2SHA1(hashers.PBKDF2SHA1PasswordHasher):
    iterations = 1000


class Argon2(hashers.Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 256
    parallelism = 1


class BCryptSHA256(hashers.BCryptSHA256PasswordHasher):
    rounds = 4


class BCrypt(hashers.BCryptPasswordHasher):
    rounds = 4


class Scrypt(hashers.ScryptPasswordHasher):
    work_factor = 1024


HASHERS = [PBKDF2, PBKDF2SHA1, Argon2, BCryptSHA256, BCrypt, Scrypt]

# username, hasher (by Django's algorithm name; None: unusable), password, active, staff, superuser
USERS = [
    ("alice", "pbkdf2_sha256", "alice's pbkdf2 password", True, True, True),
    ("bob", "argon2", "bob's argon2 password", True, False, False),
    ("carol", "bcrypt_sha256", "carol's bcrypt_sha256 password", True, True, False),
    ("dave", "scrypt", "dave's scrypt password", False, False, False),
    ("erin", "pbkdf2_sha1", "erin's pbkdf2_sha1 password", True, False, False),
    ("frank", "bcrypt", "frank's bcrypt password", True, False, False),
    ("grace", None, None, True, False, False),
]


def database(args):
    if args.sqlite:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": args.sqlite}
    url = urlsplit(args.postgres)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
    }


def epoch(moment):
    return None if moment is None else int(moment.timestamp())


def main():
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", metavar="PATH")
    where.add_argument("--postgres", metavar="URL")
    args = parser.parse_args()

    settings.configure(
        SECRET_KEY=SECRET_KEY,
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "rest_framework_simplejwt.token_blacklist",
        ],
        DATABASES={"default": database(args)},
        PASSWORD_HASHERS=[f"__main__.{h.__name__}" for h in HASHERS],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import RefreshToken

    call_command("migrate", verbosity=0, interactive=False)

    users = []
    for name, algorithm, password, active, staff, superuser in USERS:
        user = User(
            username=name, is_active=active, is_staff=staff, is_superuser=superuser
        )
        if algorithm is None:
            user.set_unusable_password()
        else:
            user.password = hashers.make_password(password, hasher=algorithm)
        if name == "alice":
            # A login time with microseconds, as Django records it.
            user.last_login = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
        user.save()
        user.refresh_from_db()
        users.append(
            {
                "id": user.id,
                "username": name,
                "password": password,
                "hash": user.password,
                "is_active": active,
                "is_staff": staff,
                "is_superuser": superuser,
                "date_joined": epoch(user.date_joined),
                "last_login": epoch(user.last_login),
            }
        )

    alice = User.objects.get(username="alice")
    live = RefreshToken.for_user(alice)
    blacklisted = RefreshToken.for_user(User.objects.get(username="bob"))
    blacklisted.blacklist()

    json.dump(
        {
            "signing_key": SECRET_KEY,
            "users": users,
            "live_refresh": str(live),
            "blacklisted_refresh": str(blacklisted),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
