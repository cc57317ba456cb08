"""Reviews and ratings (the per-book averages are a planted N+1)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from bookshop.services import reviews

CRIME_AVERAGES = {1: 1.75, 9: 1.0, 17: 2.0, 25: 2.75, 33: 2.8}


def test_average_ratings_per_book(session: Session) -> None:
    assert reviews.average_ratings(session, "crime") == CRIME_AVERAGES


def test_average_ratings_in_one_query(session: Session) -> None:
    assert reviews.average_ratings_sql(session, "crime") == CRIME_AVERAGES


def test_add_review(session: Session) -> None:
    review = reviews.add_review(
        session,
        book_id=5,
        customer_id=2,
        rating=5,
        body="  A delight.  ",
        now=datetime(2025, 1, 2),
    )
    session.commit()
    assert (review.id, review.body, review.book_id) == (121, "A delight.", 5)


@pytest.mark.parametrize("rating", [0, 6])
def test_ratings_outside_one_to_five_are_refused(session: Session, rating: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 5"):
        reviews.add_review(session, book_id=5, customer_id=2, rating=rating)


def test_reviewing_an_unknown_book_fails(session: Session) -> None:
    with pytest.raises(LookupError, match="no book 99"):
        reviews.add_review(session, book_id=99, customer_id=2, rating=4)


def test_reviewing_as_an_unknown_customer_fails(session: Session) -> None:
    with pytest.raises(LookupError, match="no customer 77"):
        reviews.add_review(session, book_id=5, customer_id=77, rating=4)


def test_top_rated_books(session: Session) -> None:
    ranking = reviews.top_rated(session, min_reviews=3, limit=3)
    assert len(ranking) == 3
    averages = [average for _, average in ranking]
    assert averages == sorted(averages, reverse=True)
    assert all(1.0 <= average <= 5.0 for average in averages)
