"""Checkout, cancellation and a customer's order history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from bookshop.models import Book, Customer, Order, OrderItem


class OutOfStockError(Exception):
    """Raised when an order asks for more copies than are in stock."""

    def __init__(self, book_id: int, wanted: int, available: int) -> None:
        super().__init__(f"book {book_id}: {wanted} wanted, {available} in stock")
        self.book_id = book_id
        self.wanted = wanted
        self.available = available


@dataclass(frozen=True)
class OrderLine:
    """One book of an order."""

    title: str
    quantity: int
    total_cents: int


@dataclass(frozen=True)
class OrderSummary:
    """An order with its lines and total."""

    id: int
    placed_at: datetime
    status: str
    lines: tuple[OrderLine, ...]

    @property
    def total_cents(self) -> int:
        """Sum of the line totals."""
        return sum(line.total_cents for line in self.lines)


def place_order(
    session: Session,
    customer_id: int,
    quantities: Mapping[int, int],
    now: datetime | None = None,
) -> Order:
    """Create an order of ``quantities`` (book id -> copies) and take the copies from stock.

    The caller commits. Raises LookupError for an unknown customer or book, ValueError for a
    bad quantity and OutOfStockError when a book has too few copies.
    """
    if not quantities:
        raise ValueError("an order needs at least one book")
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    books = {book.id: book for book in session.scalars(select(Book).where(Book.id.in_(quantities)))}
    missing = sorted(set(quantities) - set(books))
    if missing:
        raise LookupError(f"no books {missing}")
    for book_id, quantity in quantities.items():
        book = books[book_id]
        if quantity < 1:
            raise ValueError(f"quantity of book {book_id} must be positive, got {quantity}")
        if book.stock < quantity:
            available = max(book.stock, 0)
            raise OutOfStockError(book_id, quantity, available)
    order = Order(customer_id=customer.id, placed_at=now or datetime.now(), status="placed")
    for book_id, quantity in quantities.items():
        book = books[book_id]
        book.stock -= quantity
        order.items.append(
            OrderItem(book_id=book_id, quantity=quantity, unit_price_cents=book.price_cents)
        )
    session.add(order)
    session.flush()
    return order


def cancel_order(session: Session, order_id: int) -> int:
    """Cancel a placed order and put its copies back in stock; returns the copies restored."""
    order = session.get(Order, order_id)
    if order is None:
        raise LookupError(f"no order {order_id}")
    if order.status != "placed":
        raise ValueError(f"order {order_id} is {order.status}; only placed orders can be cancelled")
    lines = session.execute(
        select(OrderItem.book_id, OrderItem.quantity).where(OrderItem.order_id == order_id)
    ).all()
    wanted = {book_id: quantity for book_id, quantity in lines}
    for book in session.scalars(select(Book).where(Book.id.in_(wanted))):
        book.stock += wanted[book.id]
    order.status = "cancelled"
    session.flush()
    return sum(wanted.values())


def _summary(order: Order, lines: list[OrderLine]) -> OrderSummary:
    return OrderSummary(
        id=order.id, placed_at=order.placed_at, status=order.status, lines=tuple(lines)
    )


def order_summaries(session: Session, customer_id: int) -> list[OrderSummary]:
    """A customer's orders, oldest first, with their lines.

    Planted N+1 (twice): ``order.items`` issues one SELECT on ``order_items`` per order, and
    ``item.book`` one SELECT on ``books`` per book not yet in the session.
    """
    stmt = select(Order).where(Order.customer_id == customer_id).order_by(Order.placed_at, Order.id)
    summaries = []
    for order in session.scalars(stmt).all():
        lines = []
        for item in order.items:
            book = item.book
            total = item.quantity * item.unit_price_cents
            lines.append(OrderLine(book.title, item.quantity, total))
        summaries.append(_summary(order, lines))
    return summaries


def order_summaries_eager(session: Session, customer_id: int) -> list[OrderSummary]:
    """Same result as ``order_summaries`` in three queries (``selectinload`` twice)."""
    stmt = (
        select(Order)
        .options(selectinload(Order.items).selectinload(OrderItem.book))
        .where(Order.customer_id == customer_id)
        .order_by(Order.placed_at, Order.id)
    )
    return [
        _summary(
            order,
            [
                OrderLine(item.book.title, item.quantity, item.quantity * item.unit_price_cents)
                for item in order.items
            ],
        )
        for order in session.scalars(stmt).all()
    ]
