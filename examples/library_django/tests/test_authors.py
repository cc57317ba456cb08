"""Author pages."""

from __future__ import annotations

from library import authors
from library.seed import Size

PAGES = {f"Author {a:03d}": [f"Book {a:03d}-0", f"Book {a:03d}-1"] for a in range(5)}


def test_bibliographies_list_every_book(small: Size) -> None:
    assert authors.bibliographies() == PAGES


def test_bibliographies_eager(small: Size) -> None:
    assert authors.bibliographies_eager() == PAGES


def test_author_of_one_title(small: Size) -> None:
    assert authors.author_of("Book 002-1") == "Author 002"
