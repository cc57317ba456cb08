"""The deterministic seed data."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from bookshop.models import Author, Book, OrderItem
from bookshop.seed import LARGE, SMALL, build_database, generate, supplier_csv


def test_the_same_seed_gives_the_same_rows() -> None:
    assert generate(SMALL) == generate(SMALL)
    assert generate(SMALL, seed=1)[Book] != generate(SMALL)[Book]


def test_small_seed_has_several_authors_per_page() -> None:
    rows = generate(SMALL)
    assert len(rows[Author]) == SMALL.authors
    assert len({book["author_id"] for book in rows[Book]}) == SMALL.authors


def test_order_items_point_at_existing_books() -> None:
    rows = generate(SMALL)
    book_ids = {book["id"] for book in rows[Book]}
    assert {item["book_id"] for item in rows[OrderItem]} <= book_ids
    assert len({(i["order_id"], i["book_id"]) for i in rows[OrderItem]}) == len(rows[OrderItem])


def test_build_database_reports_counts(tmp_path: Path) -> None:
    counts = build_database(tmp_path / "shop.sqlite3")
    assert counts == {
        "authors": 8,
        "books": 40,
        "customers": 12,
        "orders": 36,
        "order_items": 108,
        "reviews": 120,
    }


def test_large_is_larger() -> None:
    assert LARGE.books > 10 * SMALL.books
    assert LARGE.customers > 10 * SMALL.customers


def test_supplier_csv_has_a_header_and_every_row() -> None:
    rows = list(csv.DictReader(io.StringIO(supplier_csv(120))))
    assert len(rows) == 120
    assert rows[0]["isbn"] == "9790000000000"
    assert [row["published"] for row in rows if not row["published"].isdigit()] == ["19x5", "19x5"]
