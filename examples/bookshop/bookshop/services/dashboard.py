"""The shop owner's dashboard: row counts, stock alerts and the latest order."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bookshop.models import Author, Base, Book, Customer, Order, Review

COUNTED: tuple[type[Base], ...] = (Author, Book, Customer, Order, Review)


@dataclass(frozen=True)
class LatestOrder:
    """The most recent order and who placed it."""

    id: int
    customer: str
    status: str


def table_counts(session: Session) -> dict[str, int]:
    """Rows per table. The loop issues a different COUNT each time, so it is not an N+1."""
    counts: dict[str, int] = {}
    for model in COUNTED:
        counts[model.__tablename__] = session.scalar(select(func.count()).select_from(model)) or 0
    return counts


def low_stock(session: Session, threshold: int = 2) -> list[tuple[int, str, int]]:
    """(id, title, stock) of books with at most ``threshold`` copies left, emptiest first."""
    rows = session.execute(
        select(Book.id, Book.title, Book.stock)
        .where(Book.stock <= threshold)
        .order_by(Book.stock, Book.id)
    ).all()
    return [(book_id, title, stock) for book_id, title, stock in rows]


def latest_order(session: Session) -> LatestOrder | None:
    """The newest order; its customer is one lazy load (a single query, not an N+1)."""
    order = session.scalars(select(Order).order_by(Order.placed_at.desc(), Order.id.desc())).first()
    if order is None:
        return None
    customer = order.customer
    return LatestOrder(id=order.id, customer=customer.name, status=order.status)
