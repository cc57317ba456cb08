"""Reviews: writing one, average ratings, the best-rated books."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bookshop.models import Book, Customer, Review


def add_review(
    session: Session,
    book_id: int,
    customer_id: int,
    rating: int,
    body: str = "",
    now: datetime | None = None,
) -> Review:
    """Store a 1-5 star review (the caller commits)."""
    if not 1 <= rating <= 5:
        raise ValueError(f"rating must be between 1 and 5, got {rating}")
    if session.get(Book, book_id) is None:
        raise LookupError(f"no book {book_id}")
    if session.get(Customer, customer_id) is None:
        raise LookupError(f"no customer {customer_id}")
    review = Review(
        book_id=book_id,
        customer_id=customer_id,
        rating=rating,
        body=body.strip(),
        created_at=now or datetime.now(),
    )
    session.add(review)
    session.flush()
    return review


def _average(ratings: list[int]) -> float | None:
    return round(sum(ratings) / len(ratings), 2) if ratings else None


def average_ratings(session: Session, genre: str) -> dict[int, float | None]:
    """Average rating of every book of ``genre`` (None without reviews), by book id.

    Planted N+1: ``book.reviews`` issues one SELECT on ``reviews`` per book.
    """
    books = session.scalars(select(Book).where(Book.genre == genre).order_by(Book.id)).all()
    averages: dict[int, float | None] = {}
    for book in books:
        ratings = [review.rating for review in book.reviews]
        averages[book.id] = _average(ratings)
    return averages


def average_ratings_sql(session: Session, genre: str) -> dict[int, float | None]:
    """Same result as ``average_ratings`` in one aggregate query."""
    rows = session.execute(
        select(Book.id, func.avg(Review.rating))
        .outerjoin(Review, Review.book_id == Book.id)
        .where(Book.genre == genre)
        .group_by(Book.id)
        .order_by(Book.id)
    ).all()
    return {book_id: None if avg is None else round(float(avg), 2) for book_id, avg in rows}


def top_rated(session: Session, min_reviews: int = 3, limit: int = 5) -> list[tuple[str, float]]:
    """(title, average) of the best-rated books with at least ``min_reviews`` reviews."""
    average = func.avg(Review.rating).label("average")
    rows = session.execute(
        select(Book.title, average)
        .join(Review, Review.book_id == Book.id)
        .group_by(Book.id)
        .having(func.count(Review.id) >= min_reviews)
        .order_by(average.desc(), Book.id)
        .limit(limit)
    ).all()
    return [(title, round(float(avg), 2)) for title, avg in rows]
