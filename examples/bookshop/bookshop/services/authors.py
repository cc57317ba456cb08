"""Author pages: each author with their bibliography."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bookshop.models import Author, Book


@dataclass(frozen=True)
class AuthorPage:
    """An author and the titles they wrote, oldest first."""

    id: int
    name: str
    country: str
    titles: tuple[str, ...]
    genres: tuple[str, ...]


def _page(author: Author, books: list[Book]) -> AuthorPage:
    ordered = sorted(books, key=lambda book: (book.published, book.id))
    return AuthorPage(
        id=author.id,
        name=author.name,
        country=author.country,
        titles=tuple(book.title for book in ordered),
        genres=tuple(sorted({book.genre for book in ordered})),
    )


def author_pages(session: Session, country: str | None = None) -> list[AuthorPage]:
    """Every author (optionally of one country) with their bibliography.

    Planted N+1: ``author.books`` is a lazy collection, so each author costs one SELECT on
    ``books``.
    """
    stmt = select(Author).order_by(Author.name, Author.id)
    if country is not None:
        stmt = stmt.where(Author.country == country)
    pages = []
    for author in session.scalars(stmt).all():
        books = author.books
        pages.append(_page(author, books))
    return pages


def author_pages_eager(session: Session, country: str | None = None) -> list[AuthorPage]:
    """Same result as ``author_pages`` in two queries (``selectinload``)."""
    stmt = select(Author).options(selectinload(Author.books)).order_by(Author.name, Author.id)
    if country is not None:
        stmt = stmt.where(Author.country == country)
    return [_page(author, author.books) for author in session.scalars(stmt).all()]


def prolific_authors(session: Session, min_books: int = 2) -> list[tuple[str, int]]:
    """(name, number of books) of authors with at least ``min_books`` books, most first."""
    count = func.count(Book.id).label("books")
    rows = session.execute(
        select(Author.name, count)
        .join(Author.books)
        .group_by(Author.id)
        .having(count >= min_books)
        .order_by(count.desc(), Author.name)
    ).all()
    return [(name, books) for name, books in rows]
