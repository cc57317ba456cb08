"""The new arrivals shelf."""

from __future__ import annotations

from library import shelf
from library.seed import Size

SHELF = (
    "Book 003-1 (2024) by Author 003\n"
    "Book 003-0 (2021) by Author 003\n"
    "Book 002-1 (2017) by Author 002\n"
    "Book 002-0 (2014) by Author 002\n"
    "Book 001-1 (2010) by Author 001\n"
)


def test_new_arrivals_shelf(small: Size) -> None:
    assert shelf.new_arrivals(since=2010) == SHELF


def test_new_arrivals_eager_shelf(small: Size) -> None:
    assert shelf.new_arrivals_eager(since=2010) == SHELF


def test_an_empty_shelf(db: None) -> None:
    assert shelf.render_shelf([]) == ""
