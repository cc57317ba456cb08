"""Back-office reports in raw SQL through the stdlib ``sqlite3`` module (no SQLAlchemy).

They read the same database file as the application, opening their own connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

DAILY_SALES_SQL = """
SELECT date(o.placed_at) AS day,
       count(DISTINCT o.id) AS orders,
       sum(oi.quantity) AS copies,
       sum(oi.quantity * oi.unit_price_cents) AS revenue_cents
FROM orders AS o
JOIN order_items AS oi ON oi.order_id = o.id
WHERE o.placed_at >= ? AND o.placed_at < ? AND o.status != 'cancelled'
GROUP BY day
ORDER BY day
"""

CUSTOMER_SEARCH_SQL = """
SELECT c.id, c.name, c.email, c.city, count(o.id) AS orders
FROM customers AS c
LEFT JOIN orders AS o ON o.customer_id = c.id
WHERE c.name LIKE ? OR c.email LIKE ? OR c.city LIKE ?
GROUP BY c.id
ORDER BY c.name, c.id
LIMIT ?
"""

# Planted slow query: two correlated subqueries per customer over ``reviews``, whose
# ``customer_id`` has no index, so SQLite scans every review twice for every customer.
REVIEWER_LEADERBOARD_SQL = """
SELECT c.id, c.name, c.city,
       (SELECT count(*) FROM reviews AS r WHERE r.customer_id = c.id) AS reviews,
       (SELECT avg(r.rating) FROM reviews AS r WHERE r.customer_id = c.id) AS average_rating
FROM customers AS c
ORDER BY reviews DESC, average_rating DESC, c.id
LIMIT ?
"""


@dataclass(frozen=True)
class DailySales:
    """Sales of one day."""

    day: date
    orders: int
    copies: int
    revenue_cents: int


@dataclass(frozen=True)
class Reviewer:
    """A customer ranked by how many reviews they wrote."""

    customer_id: int
    name: str
    city: str
    reviews: int
    average_rating: float | None


@contextmanager
def connect(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the database file at ``path``, closed afterwards."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        yield conn
    finally:
        conn.close()


def daily_sales(path: str | Path, start: date, end: date) -> list[DailySales]:
    """Orders, copies and revenue per day in ``[start, end)``, cancelled orders excluded."""
    with connect(path) as conn:
        rows = conn.execute(DAILY_SALES_SQL, (start.isoformat(), end.isoformat())).fetchall()
    return [
        DailySales(date.fromisoformat(day), orders, copies, revenue)
        for day, orders, copies, revenue in rows
    ]


def customer_search(path: str | Path, text: str, limit: int = 20) -> list[dict[str, object]]:
    """Customers whose name, email or city contains ``text``, with their order counts."""
    pattern = f"%{text.strip()}%"
    with connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(CUSTOMER_SEARCH_SQL, (pattern, pattern, pattern, limit)).fetchall()
    return [dict(row) for row in rows]


def reviewer_leaderboard(path: str | Path, limit: int = 10) -> list[Reviewer]:
    """The customers who wrote the most reviews (ties: higher average rating first)."""
    with connect(path) as conn:
        rows = conn.execute(REVIEWER_LEADERBOARD_SQL, (limit,)).fetchall()
    return [
        Reviewer(customer_id, name, city, reviews, None if avg is None else round(avg, 2))
        for customer_id, name, city, reviews, avg in rows
    ]
