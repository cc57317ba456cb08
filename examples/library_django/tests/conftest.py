"""Fixtures: seeded data, and test databases of this process's own."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from library import seed


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Give this pytest process test databases of its own (``test_library_p<pid>``).

    devformance runs each test file in its own process, several at once: with one shared
    test database name they would create and drop each other's database. In-memory SQLite
    is private to the process already.
    """
    suffix = f"p{os.getpid()}"
    for db in settings.DATABASES.values():
        test = db.setdefault("TEST", {})
        name = test.get("NAME")
        if not name:
            if db["ENGINE"] == "django.db.backends.sqlite3":
                continue
            name = f"test_{db['NAME']}"
        test["NAME"] = f"{name}_{suffix}"


@pytest.fixture
def small(db: None) -> seed.Size:
    """The small library (5 authors, 10 books, 4 members, 8 loans)."""
    seed.seed(seed.SMALL)
    return seed.SMALL


@pytest.fixture
def large(db: None) -> seed.Size:
    """The large library (1,000 books, 4,000 loans), for the reports."""
    seed.seed(seed.LARGE)
    return seed.LARGE
