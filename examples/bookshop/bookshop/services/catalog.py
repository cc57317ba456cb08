"""Catalogue pages: the book listing, one book's page and a title/author search."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, contains_eager, joinedload

from bookshop.models import Author, Book, Review
from bookshop.money import format_cents


@dataclass(frozen=True)
class BookListing:
    """One row of the catalogue listing."""

    id: int
    title: str
    author: str
    genre: str
    price: str
    in_stock: bool


@dataclass(frozen=True)
class BookPage:
    """Everything the page of one book shows."""

    id: int
    title: str
    author: str
    author_country: str
    price: str
    stock: int
    review_count: int
    average_rating: float | None


def _listing(book: Book, author_name: str) -> BookListing:
    return BookListing(
        id=book.id,
        title=book.title,
        author=author_name,
        genre=book.genre,
        price=format_cents(book.price_cents),
        in_stock=book.stock > 0,
    )


def list_books(session: Session, genre: str | None = None, limit: int = 20) -> list[BookListing]:
    """Books ordered by title, with their author's name.

    Planted N+1: the authors are not loaded with the books, so ``book.author`` issues one
    SELECT on ``authors`` for every author not yet in the session.
    """
    stmt = select(Book).order_by(Book.title, Book.id).limit(limit)
    if genre is not None:
        stmt = stmt.where(Book.genre == genre)
    listings = []
    for book in session.scalars(stmt).all():
        author = book.author
        listings.append(_listing(book, author.name))
    return listings


def list_books_eager(
    session: Session, genre: str | None = None, limit: int = 20
) -> list[BookListing]:
    """Same result as ``list_books`` in one query (authors joined in)."""
    stmt = select(Book).options(joinedload(Book.author)).order_by(Book.title, Book.id).limit(limit)
    if genre is not None:
        stmt = stmt.where(Book.genre == genre)
    return [_listing(book, book.author.name) for book in session.scalars(stmt).all()]


def book_detail(session: Session, book_id: int) -> BookPage | None:
    """One book's page, or None if there is no such book (one lazy load of its author)."""
    book = session.get(Book, book_id)
    if book is None:
        return None
    author = book.author
    count, average = session.execute(
        select(func.count(Review.id), func.avg(Review.rating)).where(Review.book_id == book_id)
    ).one()
    return BookPage(
        id=book.id,
        title=book.title,
        author=author.name,
        author_country=author.country,
        price=format_cents(book.price_cents),
        stock=book.stock,
        review_count=count,
        average_rating=None if average is None else round(float(average), 2),
    )


def search_books(session: Session, text: str, limit: int = 20) -> list[BookListing]:
    """Books whose title or author name contains ``text`` (case-insensitive)."""
    term = text.strip()
    if len(term) < 2:
        raise ValueError("search for at least two characters")
    pattern = f"%{term}%"
    stmt = (
        select(Book)
        .join(Book.author)
        .options(contains_eager(Book.author))
        .where(or_(Book.title.ilike(pattern), Author.name.ilike(pattern)))
        .order_by(Book.title, Book.id)
        .limit(limit)
    )
    return [_listing(book, book.author.name) for book in session.scalars(stmt).all()]


def genres(session: Session) -> dict[str, int]:
    """Number of books per genre."""
    rows = session.execute(
        select(Book.genre, func.count(Book.id)).group_by(Book.genre).order_by(Book.genre)
    ).all()
    return {genre: count for genre, count in rows}
