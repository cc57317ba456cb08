"""Fix hints: by ORM and statement when only the SQL is known, exact when the ORM named the
relation it loaded lazily."""

from __future__ import annotations

import pytest

from devformance_nb.logic.hints import hint_for, lazy_load_hint

pytestmark = pytest.mark.quick


@pytest.mark.parametrize(
    ("orm", "words"),
    [
        ("sqlalchemy", ["selectinload", "joinedload", '"books"']),
        ("django", ["select_related", "prefetch_related", '"books"']),
        ("", ["IN (...)", "JOIN", '"books"']),
    ],
)
def test_hint_for(orm: str, words: list[str]) -> None:
    hint = hint_for(orm, "books")
    for word in words:
        assert word in hint


def test_django_hint_leads_with_the_likely_fix() -> None:
    forward = 'SELECT "m"."id" FROM "m" WHERE "m"."id" = ? LIMIT ?'
    reverse = 'SELECT "b"."id" FROM "b" WHERE "b"."author_id" = ? ORDER BY "b"."year" ASC'
    assert hint_for("django", "m", forward).split(": add ")[1].startswith(".select_related(")
    assert hint_for("django", "b", reverse).split(": add ")[1].startswith(".prefetch_related(")


def test_hint_without_a_table() -> None:
    assert "related rows" in hint_for("", "")


def test_a_lazy_load_hint_names_the_relation_and_the_exact_fix() -> None:
    hint = lazy_load_hint("Author.books", ".options(selectinload(Author.books))")
    assert hint == (
        "Author.books is loaded lazily, once per Author: add "
        ".options(selectinload(Author.books)) to the query that loads the Author rows."
    )
    deferred = 'load "bio" with the rows: drop it from .defer(...) or add it to .only(...)'
    assert lazy_load_hint("Author.bio", deferred) == (
        f"Author.bio is loaded lazily, once per Author: {deferred}."
    )


def test_a_chained_loader_names_the_query_it_goes_on() -> None:
    fix = ".options(selectinload(Order.items).joinedload(Item.book))"
    assert lazy_load_hint("Item.book", fix) == (
        f"Item.book is loaded lazily, once per Item: add {fix} to the query that loads the "
        "Order rows."
    )
