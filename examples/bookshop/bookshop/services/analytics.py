"""Sales analytics through SQLAlchemy: bestsellers and revenue."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from bookshop.models import Book, Order, OrderItem


@dataclass(frozen=True)
class Bestseller:
    """A book and the copies of it sold."""

    book_id: int
    title: str
    genre: str
    copies: int


def bestsellers(session: Session, limit: int = 10) -> list[Bestseller]:
    """The books that sold the most copies.

    Planted slow query: the copies are a correlated subquery over ``order_items``, whose
    ``book_id`` has no index, so SQLite scans every order item once per book. A GROUP BY
    join, or an index on ``order_items.book_id``, makes it fast.
    """
    copies = (
        select(func.coalesce(func.sum(OrderItem.quantity), 0))
        .where(OrderItem.book_id == Book.id)
        .correlate(Book)
        .scalar_subquery()
        .label("copies")
    )
    stmt = select(Book.id, Book.title, Book.genre, copies).order_by(copies.desc(), Book.id)
    rows = session.execute(stmt.limit(limit)).all()
    return [Bestseller(book_id, title, genre, int(sold)) for book_id, title, genre, sold in rows]


def revenue_by_genre(session: Session) -> dict[str, int]:
    """Revenue in cents per genre over orders that were not cancelled."""
    revenue = func.sum(OrderItem.quantity * OrderItem.unit_price_cents)
    rows = session.execute(
        select(Book.genre, revenue)
        .join(OrderItem, OrderItem.book_id == Book.id)
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.status != "cancelled")
        .group_by(Book.genre)
        .order_by(Book.genre)
    ).all()
    return {genre: int(cents) for genre, cents in rows}


def orders_per_month(session: Session, year: int) -> dict[int, int]:
    """Number of orders placed in each month of ``year`` (months without orders omitted)."""
    month = cast(func.strftime("%m", Order.placed_at), Integer).label("month")
    rows = session.execute(
        select(month, func.count(Order.id))
        .where(func.strftime("%Y", Order.placed_at) == str(year))
        .group_by(month)
        .order_by(month)
    ).all()
    return {int(m): count for m, count in rows}
