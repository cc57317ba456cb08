"""Engines, sessions and SQLite settings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bookshop.db import (
    MEMORY_URL,
    create_schema,
    database_path,
    database_url,
    make_engine,
    make_session_factory,
)
from bookshop.models import Book, Customer
from bookshop.money import format_cents


def test_database_url_accepts_paths_and_urls(tmp_path: Path) -> None:
    assert database_url(tmp_path / "a.db") == f"sqlite:///{tmp_path / 'a.db'}"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_memory_engine_has_no_file() -> None:
    engine = make_engine(MEMORY_URL)
    assert database_path(engine) is None
    engine.dispose()


def test_file_engine_knows_its_file(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "shop.sqlite3")
    assert database_path(engine) == tmp_path / "shop.sqlite3"
    engine.dispose()


def test_foreign_keys_are_enforced(empty_session: Session) -> None:
    empty_session.add(
        Book(
            title="Orphan",
            isbn="9782222222222",
            genre="crime",
            price_cents=100,
            published=2001,
            author_id=12345,
        )
    )
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        empty_session.flush()


def test_attributes_survive_a_commit() -> None:
    engine = make_engine()
    create_schema(engine)
    with make_session_factory(engine)() as session:
        customer = Customer(
            name="Ines Quinn", email="ines@example.com", city="Cork", joined=date(2022, 1, 1)
        )
        session.add(customer)
        session.commit()
        assert "name" in customer.__dict__
    engine.dispose()


def test_create_schema_makes_every_table(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "shop.sqlite3")
    create_schema(engine)
    with engine.connect() as conn:
        tables = (
            conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"))
            .scalars()
            .all()
        )
    engine.dispose()
    assert tables == ["authors", "books", "customers", "order_items", "orders", "reviews"]


@pytest.mark.parametrize(
    ("cents", "shown"), [(0, "0.00 EUR"), (1999, "19.99 EUR"), (-250, "-2.50 EUR")]
)
def test_format_cents(cents: int, shown: str) -> None:
    assert format_cents(cents) == shown
