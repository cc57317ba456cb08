"""Page plans: which parameters of a LIMIT/OFFSET statement move the page (pure logic)."""

from __future__ import annotations

import pytest

from devformance_nb.plugin.capture.pages import page_of, plan_of


@pytest.mark.parametrize(
    ("text", "page", "other", "literals"),
    [
        ("SELECT a FROM t WHERE b = ? ORDER BY id LIMIT ? OFFSET ?", (1, 2), (0,), ()),
        ("SELECT a FROM t WHERE id > ? ORDER BY id LIMIT ?", (0, 1), (), ()),  # keyset
        ("SELECT a FROM t WHERE b = %s AND id <= %s LIMIT %s", (1, 2), (0,), ()),
        ("SELECT a FROM t LIMIT ?, ?", (0, 1), (), ()),  # MySQL: offset, count
        ("SELECT a FROM t WHERE b = %(b)s LIMIT %(n)s", ("n",), ("b",), ()),
        ("SELECT a FROM t WHERE b = :b AND id >= :after LIMIT :n", ("after", "n"), ("b",), ()),
        ("SELECT a FROM t WHERE b = $1 AND c <> $2 LIMIT $3", (2,), (0, 1), ()),
        # Django writes its limits as literals; a comparison of two columns moves nothing
        ("SELECT a FROM t WHERE t.x > u.y AND b = %s LIMIT 10 OFFSET 20", (), (0,), ("10", "20")),
        ("SELECT a FROM t WHERE b = ? limit ? offset ?", (1, 2), (0,), ()),
    ],
)
def test_the_page_positions_of_a_statement(
    text: str, page: tuple[object, ...], other: tuple[object, ...], literals: tuple[str, ...]
) -> None:
    plan = plan_of(text)
    assert plan is not None
    assert (plan.page, plan.other, plan.literals) == (page, other, literals)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT a FROM t WHERE id = ?",
        "SELECT a FROM t WHERE id > ?",  # a range with no LIMIT: no page
        "SELECT 'LIMIT 5' FROM t WHERE b = ?",  # the word in a string
        'SELECT "limit" FROM t',  # a quoted column
        # a literal limit is the same for every statement of its text (Django's get())
        "SELECT a FROM t WHERE id = %s LIMIT 21",
    ],
)
def test_statements_that_are_no_page(text: str) -> None:
    assert plan_of(text) is None


def test_literal_pages_share_their_listing_key() -> None:
    first = plan_of("SELECT a FROM t WHERE b = %s LIMIT 10 OFFSET 0")
    second = plan_of("SELECT a FROM t WHERE b = %s LIMIT 10 OFFSET 10")
    assert first is not None and second is not None
    assert page_of(first, (1,)).split(":")[0] == page_of(second, (1,)).split(":")[0]
    assert page_of(first, (1,)).split(":")[1] != page_of(second, (1,)).split(":")[1]


def test_the_listing_moves_with_the_parent_and_the_page_with_the_offset() -> None:
    plan = plan_of("SELECT a FROM t WHERE b = ? LIMIT ? OFFSET ?")
    assert plan is not None
    hashes = [page_of(plan, p).split(":") for p in [(1, 5, 0), (1, 5, 5), (2, 5, 0)]]
    listing, at = [h[0] for h in hashes], [h[1] for h in hashes]
    assert listing[0] == listing[1] != listing[2]
    assert at[0] == at[2] != at[1]


def test_odd_parameters_never_raise() -> None:
    plan = plan_of("SELECT a FROM t WHERE b = ? LIMIT ?")
    assert plan is not None
    for params in [None, (), ([1, 2], 3), {"x": [1]}, "text", 7]:
        listing, _, at = page_of(plan, params).partition(":")
        assert listing and at
    named = plan_of("SELECT a FROM t WHERE b = :b LIMIT :n")
    assert named is not None
    assert page_of(named, {"b": 1, "n": 2}) != page_of(named, {"b": 2, "n": 2})
