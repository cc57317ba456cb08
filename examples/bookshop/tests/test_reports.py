"""Raw ``sqlite3`` reports (``reviewer_leaderboard`` is a planted slow query)."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from bookshop import reports


def test_reviewer_leaderboard(large_db_path: Path) -> None:
    leaders = reports.reviewer_leaderboard(large_db_path, limit=5)
    assert [(r.customer_id, r.reviews) for r in leaders[:2]] == [(520, 8), (308, 8)]
    assert leaders[0] == reports.Reviewer(520, "Ada Quinn", "Split", 8, 3.5)
    assert [r.reviews for r in leaders] == sorted((r.reviews for r in leaders), reverse=True)


def test_daily_sales_cover_the_year(db_path: Path) -> None:
    days = reports.daily_sales(db_path, date(2024, 1, 1), date(2025, 1, 1))
    assert sum(day.orders for day in days) == 36
    assert [day.day for day in days] == sorted(day.day for day in days)
    assert all(day.copies > 0 and day.revenue_cents > 0 for day in days)


def test_daily_sales_of_an_empty_range(db_path: Path) -> None:
    assert reports.daily_sales(db_path, date(2023, 1, 1), date(2023, 2, 1)) == []


def test_customer_search(db_path: Path) -> None:
    found = reports.customer_search(db_path, "leeds")
    assert found == [
        {
            "id": 9,
            "name": "Hana Jensen",
            "email": "customer9@example.com",
            "city": "Leeds",
            "orders": 4,
        },
    ]


def test_reports_cannot_write(db_path: Path) -> None:
    readonly = pytest.raises(sqlite3.OperationalError, match="readonly")
    with reports.connect(db_path) as conn, readonly:
        conn.execute("UPDATE books SET stock = 0")
