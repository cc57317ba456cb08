"""The catalogue services (the lazy listing is a planted N+1)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from bookshop.services import catalog


def test_list_books_shows_each_books_author(session: Session) -> None:
    listings = catalog.list_books(session, limit=20)
    assert len(listings) == 20
    assert [book.title for book in listings] == sorted(book.title for book in listings)
    assert listings[0] == catalog.BookListing(
        id=28,
        title="The Broken Atlas",
        author="Goran Garcia",
        genre="science",
        price="16.99 EUR",
        in_stock=True,
    )
    assert len({book.author for book in listings}) == 8


def test_one_book_of_a_genre_loads_one_author(session: Session) -> None:
    # the lazy listing again, but one book means one lazy load: not an N+1
    (listing,) = catalog.list_books(session, genre="crime", limit=1)
    assert (listing.genre, listing.author) == ("crime", "Elif Kowalski")


def test_search_matches_titles(session: Session) -> None:
    found = catalog.search_books(session, "citadel")
    assert len(found) == 6
    assert all("Citadel" in book.title for book in found)


def test_search_matches_authors_case_insensitively(session: Session) -> None:
    found = catalog.search_books(session, "KOWALSKI")
    assert {book.author for book in found} == {"Elif Kowalski"}
    assert len(found) == 11


def test_search_needs_two_characters(session: Session) -> None:
    with pytest.raises(ValueError, match="two characters"):
        catalog.search_books(session, " x ")


def test_genres_are_counted(session: Session) -> None:
    counts = catalog.genres(session)
    assert sum(counts.values()) == 40
    assert counts["poetry"] == 5
