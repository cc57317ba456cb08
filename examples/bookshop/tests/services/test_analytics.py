"""Sales analytics on the large seed (``bestsellers`` is a planted slow query)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bookshop.services import analytics


def test_bestsellers(large_session: Session) -> None:
    top = analytics.bestsellers(large_session, limit=5)
    assert [(book.book_id, book.copies) for book in top[:3]] == [(808, 26), (543, 24), (655, 24)]
    assert top[0].title == "The Northern Citadel"
    assert [book.copies for book in top] == sorted((book.copies for book in top), reverse=True)


def test_revenue_by_genre(large_session: Session) -> None:
    revenue = analytics.revenue_by_genre(large_session)
    assert len(revenue) == 8
    assert revenue["fantasy"] == 2_558_917
    assert max(revenue, key=revenue.__getitem__) == "fantasy"


def test_orders_per_month(large_session: Session) -> None:
    months = analytics.orders_per_month(large_session, 2024)
    assert sorted(months) == list(range(1, 13))
    assert sum(months.values()) == 1_650
    assert months[1] == 147


def test_no_orders_in_another_year(large_session: Session) -> None:
    assert analytics.orders_per_month(large_session, 1999) == {}
