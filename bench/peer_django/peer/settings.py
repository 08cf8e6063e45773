"""Settings of the classic-stack peer: Django + DRF + simplejwt, as a DRF project would configure it.

Environment: PEER_SECRET_KEY (Django's SECRET_KEY), PEER_SIGNING_KEY (simplejwt's SIGNING_KEY; falls
back to SECRET_KEY, simplejwt's own default), PEER_DB (SQLite file; default db.sqlite3 next to manage.py),
PEER_SQLITE_JOURNAL (optional SQLite journal_mode, e.g. WAL; default: SQLite's, DELETE),
PEER_DATABASE_URL (postgres://USER@HOST:PORT/NAME: PostgreSQL through psycopg 3 instead of SQLite).
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get(
    "PEER_SECRET_KEY", "peer-django-insecure-fixed-secret-key-for-benchmarks-only-0123456789"
)
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
]

# startproject's middleware less sessions, CSRF, auth (session-based) and messages: DRF does the
# authentication. SecurityMiddleware and XFrameOptionsMiddleware give the same security headers as
# handstamp (nosniff, Referrer-Policy and COOP same-origin, X-Frame-Options DENY); CommonMiddleware
# sets Content-Length.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "peer.urls"
WSGI_APPLICATION = "peer.wsgi.application"
TEMPLATES = []

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("PEER_DB") or str(BASE_DIR / "db.sqlite3"),
        "OPTIONS": {
            # Two gunicorn workers write to one SQLite file: take the write lock at BEGIN and wait
            # for it (Django's advice for concurrent SQLite) rather than fail with "database is locked".
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }
}
# SQLite's own default journal (DELETE) unless PEER_SQLITE_JOURNAL names another, e.g. WAL (what
# handstamp uses, with synchronous=FULL; SQLite's default synchronous is FULL too).
if os.environ.get("PEER_SQLITE_JOURNAL"):
    DATABASES["default"]["OPTIONS"]["init_command"] = (
        f"PRAGMA journal_mode={os.environ['PEER_SQLITE_JOURNAL']};"
    )

# PostgreSQL instead, as a Django project on PostgreSQL configures it: psycopg 3, one connection a
# worker kept between requests (CONN_MAX_AGE), autocommit with simplejwt's own atomic blocks.
if os.environ.get("PEER_DATABASE_URL"):
    from urllib.parse import urlsplit

    url = urlsplit(os.environ["PEER_DATABASE_URL"])
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": url.username or "",
        "PASSWORD": url.password or "",
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
        "CONN_MAX_AGE": None,
    }

# Django's default hashers: PBKDF2-SHA256, 1,000,000 iterations in Django 5.2.
AUTH_PASSWORD_VALIDATORS = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}

SIMPLE_JWT = {
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "SIGNING_KEY": os.environ.get("PEER_SIGNING_KEY") or SECRET_KEY,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
