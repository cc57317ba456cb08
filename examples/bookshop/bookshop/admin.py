"""Maintenance tasks run by hand from a shell. No test calls (or imports) this module.

Planted coverage gap: every line here is uncovered.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bookshop.models import Book, Customer, Order, OrderItem


def reprice_genre(session: Session, genre: str, percent: int) -> int:
    """Change every price in ``genre`` by ``percent`` (e.g. -10); returns the books changed."""
    if not -90 <= percent <= 300:
        raise ValueError(f"refusing a {percent}% price change")
    result = session.execute(
        update(Book)
        .where(Book.genre == genre)
        .values(price_cents=Book.price_cents * (100 + percent) / 100)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def purge_cancelled_orders(session: Session, older_than_days: int = 365) -> int:
    """Delete cancelled orders (and their items) older than the given age."""
    cutoff = datetime.now() - timedelta(days=older_than_days)
    ids = list(
        session.scalars(
            select(Order.id).where(Order.status == "cancelled", Order.placed_at < cutoff)
        )
    )
    if not ids:
        return 0
    session.execute(delete(OrderItem).where(OrderItem.order_id.in_(ids)))
    session.execute(delete(Order).where(Order.id.in_(ids)))
    return len(ids)


def anonymise_customer(session: Session, customer_id: int) -> None:
    """Replace a customer's personal data (a data-protection request)."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    customer.name = "Former customer"
    customer.email = f"deleted-{customer_id}@invalid"
    customer.city = ""


def export_customers(session: Session) -> str:
    """All customers as CSV text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "email", "city", "joined"])
    for customer in session.scalars(select(Customer).order_by(Customer.id)):
        writer.writerow(
            [customer.id, customer.name, customer.email, customer.city, customer.joined]
        )
    return out.getvalue()


def vacuum(path: str | Path) -> int:
    """Compact the database file; returns the bytes saved."""
    before = Path(path).stat().st_size
    conn = sqlite3.connect(path)
    try:
        conn.execute("VACUUM")
    finally:
        conn.close()
    return before - Path(path).stat().st_size
