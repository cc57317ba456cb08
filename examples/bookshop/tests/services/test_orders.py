"""Checkout, cancellation and order history (the lazy history is a planted N+1)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bookshop.models import Book, Order
from bookshop.services import orders

NOW = datetime(2025, 3, 1, 12, 0, 0)


def test_order_summaries_list_lines_and_totals(session: Session) -> None:
    summaries = orders.order_summaries(session, customer_id=1)
    assert [summary.id for summary in summaries] == [2, 26, 1, 3]
    assert [len(summary.lines) for summary in summaries] == [3, 2, 4, 3]
    assert [summary.total_cents for summary in summaries] == [19993, 6397, 21290, 16293]
    assert [summary.placed_at for summary in summaries] == sorted(s.placed_at for s in summaries)


def test_place_order_takes_copies_from_stock(session: Session) -> None:
    order = orders.place_order(session, customer_id=3, quantities={1: 2, 2: 1}, now=NOW)
    session.commit()
    assert order.id == 37
    assert [(item.book_id, item.quantity) for item in order.items] == [(1, 2), (2, 1)]
    stock = dict(session.execute(select(Book.id, Book.stock).where(Book.id.in_([1, 2]))).all())
    assert stock == {1: 24, 2: 3}


def test_place_order_rejects_an_unknown_book(session: Session) -> None:
    with pytest.raises(LookupError, match=r"no books \[404\]"):
        orders.place_order(session, customer_id=3, quantities={1: 1, 404: 1}, now=NOW)


def test_place_order_rejects_a_zero_quantity(session: Session) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        orders.place_order(session, customer_id=3, quantities={1: 0}, now=NOW)


def test_place_order_needs_books(session: Session) -> None:
    with pytest.raises(ValueError, match="at least one book"):
        orders.place_order(session, customer_id=3, quantities={}, now=NOW)


def test_cancel_order_puts_copies_back(session: Session) -> None:
    restored = orders.cancel_order(session, order_id=4)
    session.commit()
    assert restored == 6
    status = session.scalar(select(Order.status).where(Order.id == 4))
    assert status == "cancelled"


def test_cancelling_an_unknown_order_fails(session: Session) -> None:
    with pytest.raises(LookupError, match="no order 999"):
        orders.cancel_order(session, order_id=999)


def test_only_placed_orders_can_be_cancelled(session: Session) -> None:
    with pytest.raises(ValueError, match="is shipped"):
        orders.cancel_order(session, order_id=1)
