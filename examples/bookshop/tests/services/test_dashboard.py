"""The dashboard: a loop of different COUNTs and a single lazy load, neither an N+1."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bookshop.services import dashboard


def test_table_counts(session: Session) -> None:
    assert dashboard.table_counts(session) == {
        "authors": 8,
        "books": 40,
        "customers": 12,
        "orders": 36,
        "reviews": 120,
    }


def test_empty_shop_counts_zero(empty_session: Session) -> None:
    assert set(dashboard.table_counts(empty_session).values()) == {0}


def test_low_stock(session: Session) -> None:
    alerts = dashboard.low_stock(session, threshold=1)
    assert [book_id for book_id, _, _ in alerts] == [9, 18, 27, 36, 38]
    assert alerts[-1] == (38, "The Crimson Citadel", 1)


def test_latest_order_names_its_customer(session: Session) -> None:
    latest = dashboard.latest_order(session)
    assert latest == dashboard.LatestOrder(id=32, customer="Elif Ivanova", status="placed")


def test_no_latest_order_in_an_empty_shop(empty_session: Session) -> None:
    assert dashboard.latest_order(empty_session) is None
