"""Settings of the library demo: PostgreSQL from ``DEVFORMANCE_PG_DSN``, else SQLite.

``DEVFORMANCE_PG_DSN`` is a libpq URL such as ``postgresql://user:secret@127.0.0.1:5432/postgres``
(a role that may create databases: pytest-django creates the test database). Without it the
app runs on a SQLite file next to this folder, and pytest-django tests on in-memory SQLite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
ENV_DSN = "DEVFORMANCE_PG_DSN"

SECRET_KEY = "library-demo-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["library"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TEMPLATES: list[dict[str, Any]] = []


def postgres_from_dsn(dsn: str) -> dict[str, Any]:
    """A Django ``DATABASES`` entry for a ``postgresql://`` URL (psycopg 3, or psycopg2)."""
    url = urlsplit(dsn)
    options: dict[str, Any] = dict(parse_qsl(url.query))
    # the session time zone Django wants, set at connect: no SET TIME ZONE per connection
    options.setdefault("options", "-c TimeZone=UTC")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(url.path.lstrip("/")) or "postgres",
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
        "OPTIONS": options,
        # tests/conftest.py adds a per-process suffix (files run in parallel processes)
        "TEST": {"NAME": "test_library"},
    }


if os.environ.get(ENV_DSN):
    DATABASES = {"default": postgres_from_dsn(os.environ[ENV_DSN])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "library.sqlite3",
        }
    }
