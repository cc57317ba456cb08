"""``GET /books``, ``GET /books/<id>`` and ``GET /authors``: eager loading, no N+1 (same
file name as ``tests/services/test_catalog.py`` on purpose)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bookshop import api


def test_catalog_page_has_authors(session: Session) -> None:
    body = api.get_catalog(session, limit=20)
    assert body["count"] == 20
    first = body["books"][0]
    assert (first["id"], first["title"]) == (28, "The Broken Atlas")
    assert first["author"] == "Goran Garcia"
    assert len({book["author"] for book in body["books"]}) == 8


def test_catalog_page_of_one_genre(session: Session) -> None:
    body = api.get_catalog(session, genre="crime", limit=10)
    assert body["count"] == 5
    assert {book["genre"] for book in body["books"]} == {"crime"}


def test_book_page(session: Session) -> None:
    status, body = api.get_book(session, 28)
    assert status == 200
    assert body["title"] == "The Broken Atlas"
    assert body["author"] == "Goran Garcia"
    assert body["price"] == "16.99 EUR"
    assert body["review_count"] >= 0


def test_missing_book_is_404(session: Session) -> None:
    status, body = api.get_book(session, 999)
    assert status == 404
    assert "999" in body["error"]


def test_authors_with_their_titles(session: Session) -> None:
    body = api.get_authors(session)
    assert len(body["authors"]) == 8
    assert sum(len(author["titles"]) for author in body["authors"]) == 40
    assert body["authors"][0]["name"] == "Bruno Horvat"
