"""Per-test statement diffs and query budgets on the real bookshop history (tests/history.py).

What each step of the history changes in the SQL of its tests is known from its edit
(devformance_nb/cli/demo_history.py): the diff must name exactly that, and nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devformance_nb.analysis.statements import compact, statement_diff

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]

#: the statement shapes the steps' edits touch, as patterns over fingerprints
AUTHOR_BY_ID = r"^SELECT authors\.id, .* FROM authors WHERE authors\.id = \?$"
BOOKS_PAGE = r"^SELECT books\.id, .* FROM books (WHERE books\.genre = \? )?ORDER BY .* LIMIT"
BOOKS_JOINED = r"^SELECT books\.id, .* FROM books LEFT OUTER JOIN authors AS authors_1 ON "
BOOKS_OF_AUTHORS = r"^SELECT books\.author_id, .* FROM books WHERE books\.author_id IN \(\.\.\.\)"
BOOKS_OF_ONE_AUTHOR = r"^SELECT books\.id, .* FROM books WHERE \? = books\.author_id ORDER BY"

LIST_BOOKS = "tests/services/test_catalog.py::test_list_books_shows_each_books_author"
ONE_GENRE = "tests/services/test_catalog.py::test_one_book_of_a_genre_loads_one_author"
AUTHOR_PAGES = "tests/api/test_catalog.py::test_authors_with_their_titles"
ONE_COUNTRY = "tests/services/test_authors.py::test_eager_author_pages_of_one_country"


def changes(db: Path, a: str, b: str) -> list[tuple[str, str, float, float, str]]:
    """The diff as (nodeid, change, count_a, count_b, fingerprint) rows, sorted."""
    df = statement_diff(db, a, b)
    rows = df[["nodeid", "change", "count_a", "count_b", "fingerprint"]].itertuples(index=False)
    return sorted((str(n), str(c), float(x), float(y), str(f)) for n, c, x, y, f in rows)


def matches(found: list[tuple[str, str, float, float, str]], expected: list[tuple]) -> None:
    """Each found row matches the one expected row of its test, change, counts and pattern."""
    assert len(found) == len(expected), (found, expected)
    left = list(expected)
    for row in found:
        hits = [e for e in left if e[:4] == row[:4] and re.search(e[4], row[4])]
        assert len(hits) == 1, f"unexpected or ambiguous change {row}; expected one of {left}"
        left.remove(hits[0])


def test_the_fix_step_changes_the_book_listings_statements_and_nothing_else(
    db: Path, facts: Facts
) -> None:
    # joinedload(Book.author): the listing joins authors, the per-book author lookups go
    authors = float(facts.fixed_n_plus_one["count"])
    assert facts.fixed_n_plus_one["nodeid"] == LIST_BOOKS
    matches(
        changes(db, facts.run("baseline"), facts.run("fix")),
        [
            (LIST_BOOKS, "added", 0.0, 1.0, BOOKS_JOINED),
            (LIST_BOOKS, "removed", 1.0, 0.0, BOOKS_PAGE),
            (LIST_BOOKS, "removed", authors, 0.0, AUTHOR_BY_ID),
            (ONE_GENRE, "added", 0.0, 1.0, BOOKS_JOINED),
            (ONE_GENRE, "removed", 1.0, 0.0, BOOKS_PAGE),
            (ONE_GENRE, "removed", 1.0, 0.0, AUTHOR_BY_ID),
        ],
    )


def test_the_regress_step_trades_one_selectin_for_a_lookup_per_author(
    db: Path, facts: Facts
) -> None:
    authors = float(facts.n_plus_one("books", "author_pages")["count"])
    matches(
        changes(db, facts.run("fix"), facts.run("regress")),
        [
            (AUTHOR_PAGES, "added", 0.0, authors, BOOKS_OF_ONE_AUTHOR),
            (AUTHOR_PAGES, "removed", 1.0, 0.0, BOOKS_OF_AUTHORS),
            (ONE_COUNTRY, "added", 0.0, 1.0, BOOKS_OF_ONE_AUTHOR),
            (ONE_COUNTRY, "removed", 1.0, 0.0, BOOKS_OF_AUTHORS),
        ],
    )
    # new tests (the reorder report, housekeeping) are no diffs: they have no base
    assert not any("stock_reorder" in row[0] for row in changes(db, facts.run("fix"), "latest"))


def test_the_same_commit_again_changes_no_statement(db: Path, facts: Facts) -> None:
    assert changes(db, facts.run("regress"), facts.run("flaky")) == []


def test_a_baseline_takes_each_tests_median_over_its_runs(db: Path, facts: Facts) -> None:
    # main's three runs: the author pages' selectin load in two of them, the loop in one
    found = changes(db, f"branch:{facts.history.runs[0].git_branch}:last:5", facts.run("flaky"))
    authors = float(facts.n_plus_one("books", "author_pages")["count"])
    matches(
        found,
        [
            (AUTHOR_PAGES, "added", 0.0, authors, BOOKS_OF_ONE_AUTHOR),
            (AUTHOR_PAGES, "removed", 1.0, 0.0, BOOKS_OF_AUTHORS),
            (ONE_COUNTRY, "added", 0.0, 1.0, BOOKS_OF_ONE_AUTHOR),
            (ONE_COUNTRY, "removed", 1.0, 0.0, BOOKS_OF_AUTHORS),
        ],
    )


@pytest.mark.quick
@pytest.mark.parametrize(
    ("fingerprint", "shown"),
    [
        (
            "SELECT a.id, a.name FROM authors a WHERE a.id = ?",
            "SELECT … FROM authors a WHERE a.id = ?",
        ),
        (
            "SELECT (SELECT max(x) FROM t) AS m, b.id FROM books b",
            "SELECT … FROM books b",
        ),
        ("UPDATE books SET stock = ? WHERE id = ?", "UPDATE books SET stock = ? WHERE id = ?"),
        ("SELECT 1", "SELECT 1"),
    ],
)
def test_a_compact_shape_hides_the_select_list_only(fingerprint: str, shown: str) -> None:
    assert compact(fingerprint) == shown
