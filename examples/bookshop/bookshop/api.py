"""JSON-ready handlers of the shop's web API (framework-free: they take a Session).

They use the eager-loading services, so none of them has an N+1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bookshop.money import format_cents
from bookshop.services import authors, catalog, orders

Json = dict[str, Any]


def get_catalog(session: Session, genre: str | None = None, limit: int = 20) -> Json:
    """``GET /books``: a page of the catalogue."""
    books = catalog.list_books_eager(session, genre=genre, limit=limit)
    return {"genre": genre, "count": len(books), "books": [asdict(book) for book in books]}


def get_book(session: Session, book_id: int) -> tuple[int, Json]:
    """``GET /books/<id>``: (HTTP status, body)."""
    page = catalog.book_detail(session, book_id)
    if page is None:
        return 404, {"error": f"no book {book_id}"}
    return 200, asdict(page)


def get_authors(session: Session, country: str | None = None) -> Json:
    """``GET /authors``: every author with their titles."""
    pages = authors.author_pages_eager(session, country=country)
    return {"authors": [asdict(page) for page in pages]}


def get_order_history(session: Session, customer_id: int) -> Json:
    """``GET /customers/<id>/orders``: the customer's orders with lines and totals."""
    summaries = orders.order_summaries_eager(session, customer_id)
    return {
        "customer_id": customer_id,
        "orders": [
            {
                "id": summary.id,
                "placed_at": summary.placed_at.isoformat(),
                "status": summary.status,
                "lines": [asdict(line) for line in summary.lines],
                "total": format_cents(summary.total_cents),
            }
            for summary in summaries
        ],
    }


def post_order(
    session: Session, customer_id: int, quantities: Mapping[int, int], now: datetime | None = None
) -> tuple[int, Json]:
    """``POST /customers/<id>/orders``: place and commit an order; (HTTP status, body)."""
    try:
        order = orders.place_order(session, customer_id, quantities, now=now)
    except orders.OutOfStockError as error:
        session.rollback()
        return 409, {"error": str(error), "available": error.available}
    except LookupError as error:
        session.rollback()
        return 404, {"error": str(error)}
    except ValueError as error:
        session.rollback()
        return 400, {"error": str(error)}
    session.commit()
    return 201, {"id": order.id, "status": order.status}
