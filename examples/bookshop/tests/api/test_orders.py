"""``GET`` and ``POST /customers/<id>/orders``: eager loading, no N+1."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bookshop import api

NOW = datetime(2025, 3, 1, 12, 0, 0)


def test_order_history_has_lines_and_totals(session: Session) -> None:
    body = api.get_order_history(session, customer_id=1)
    assert [order["id"] for order in body["orders"]] == [2, 26, 1, 3]
    assert [order["total"] for order in body["orders"]] == [
        "199.93 EUR",
        "63.97 EUR",
        "212.90 EUR",
        "162.93 EUR",
    ]
    first_line = body["orders"][0]["lines"][0]
    assert set(first_line) == {"title", "quantity", "total_cents"}


def test_customer_without_orders_has_an_empty_history(empty_session: Session) -> None:
    assert api.get_order_history(empty_session, customer_id=1) == {"customer_id": 1, "orders": []}


def test_post_order_creates_it(session: Session) -> None:
    status, body = api.post_order(session, customer_id=2, quantities={3: 1}, now=NOW)
    assert (status, body) == (201, {"id": 37, "status": "placed"})


def test_post_order_for_an_unknown_customer_is_404(session: Session) -> None:
    status, body = api.post_order(session, customer_id=999, quantities={3: 1}, now=NOW)
    assert status == 404
    assert body == {"error": "no customer 999"}


def test_post_order_with_a_bad_quantity_is_400(session: Session) -> None:
    status, body = api.post_order(session, customer_id=2, quantities={3: -1}, now=NOW)
    assert status == 400
    assert "must be positive" in body["error"]
