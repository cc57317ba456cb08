"""Scenarios of repeated test bodies and of set-up work, labelled.

A hypothesis test runs its body once per example, and a unittest subTest is a run of its own:
a statement run once per run is not a loop, a loop inside the body is one finding (its count is
one run's). Statements sent while a database or an engine is being set up are never findings,
whatever project code sends them; two statements a library sends by two paths from one line
are not a loop.
"""

from __future__ import annotations

import tempfile
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ledger
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from app import rawsql
from app.db import Database
from app.labels import label, n_plus_one
from app.setup import engines_with_a_connect_check

EXAMPLES = settings(
    max_examples=6,
    database=None,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@label()
@EXAMPLES
@given(author_id=st.integers(1, 4))
def test_one_lookup_per_example(db: Database, con: Any, author_id: int) -> None:
    assert rawsql.author_name(db, con, author_id) in {"Ann", "Bob", "Cid", "Dee"}


@label(n_plus_one("raw_books", 4, "books"))
@EXAMPLES
@given(author_id=st.integers(1, 4))
def test_a_loop_inside_each_example(db: Database, con: Any, author_id: int) -> None:
    assert len(rawsql.titles_per_author(db, con)[author_id]) == 2


class TestAuthorsOneByOne(unittest.TestCase):
    """A unittest case: each subTest is a run of the body."""

    @label()
    def test_each_author_in_a_subtest(self) -> None:
        folder = tempfile.mkdtemp()
        db = Database(Path(folder))
        db.create()
        con = db.connect()
        try:
            for author_id, name in ((1, "Ann"), (2, "Bob"), (3, "Cid")):
                with self.subTest(author_id=author_id):
                    self.assertEqual(rawsql.author_name(db, con, author_id), name)
        finally:
            con.close()
            db.drop()


@label()
def test_a_library_checking_twice_by_two_paths(db: Database, con: Any) -> None:
    assert ledger.register(con, db.sql("SELECT id FROM authors WHERE name = ?"), "Ann")


@pytest.fixture
def engines(db: Database) -> Iterator[list[Engine]]:
    """Three engines, each checking the database when it first connects."""
    made = engines_with_a_connect_check(db, 3)
    yield made
    for engine in made:
        engine.dispose()


@label()
def test_engines_checked_on_connect_in_a_fixture(engines: list[Engine]) -> None:
    assert len(engines) == 3
