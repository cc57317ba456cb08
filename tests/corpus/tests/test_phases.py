"""Statements in fixtures (setup and teardown) and in the test body are apart.

A finding belongs to one phase of one test: the same statement from the same call stack in
two phases, or in two tests, is never grouped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app import library, rawsql
from app.db import Database
from app.labels import label, n_plus_one


@pytest.fixture
def bibliographies(session: Session) -> dict[str, list[str]]:
    """Built in the setup phase, the slow way."""
    return library.bibliographies(session)


@pytest.fixture
def audited(db: Database, con: Any) -> Iterator[None]:
    """Looks every author's books up again after the test (the teardown phase)."""
    yield
    rawsql.titles_per_author(db, con)


@pytest.fixture
def each_phase(db: Database, con: Any) -> Iterator[None]:
    """One lookup in setup and one in teardown, from the very same line and stack."""
    for phase in ("setup", "teardown"):
        rawsql.author_name(db, con, 1)
        if phase == "setup":
            yield


@label(n_plus_one("author_books", 4, "books", phase="setup", relation="Author.books"))
def test_an_n_plus_one_in_a_fixture_is_the_setup_phases(
    bibliographies: dict[str, list[str]],
) -> None:
    assert len(bibliographies) == 4


@label(n_plus_one("raw_books", 4, "books", phase="teardown"))
def test_an_n_plus_one_after_the_yield_is_the_teardown_phases(audited: None) -> None:
    pass


@label()
def test_one_stack_once_in_setup_and_once_in_teardown(each_phase: None) -> None:
    pass


@label(n_plus_one("lookup_loop", 2, "authors"))
def test_a_repeated_lookup_in_the_body(db: Database, con: Any, each_phase: None) -> None:
    # the fixture's lookups (setup, teardown) share the call site but not the phase
    names = [rawsql.author_name(db, con, i) for i in (1, 2)]  # site: lookup_loop (in listcomp)
    assert names == ["Ann", "Bob"]


@label()
@pytest.mark.parametrize("author_id", [2, 3])
def test_one_stack_once_in_each_of_two_tests(db: Database, con: Any, author_id: int) -> None:
    # two tests (one per parameter) with the very same stack: tests are never grouped
    assert rawsql.author_name(db, con, author_id) in ("Bob", "Cid")
