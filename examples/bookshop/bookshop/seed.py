"""Deterministic seed data in two sizes, written with chunked bulk inserts.

The same ``size`` and ``seed`` always give the same rows (ids included), so tests can rely on
exact values. ``SMALL`` is for ordinary tests; ``LARGE`` is big enough for the analytics
reports to show their cost.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from bookshop.db import create_schema, make_engine, make_session_factory
from bookshop.models import Author, Base, Book, Customer, Order, OrderItem, Review


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: rows per INSERT batch: keeps every single statement short (a few ms), far below the
#: slow-query threshold even on a busy machine
CHUNK_ROWS = 200
GENRES = ("fantasy", "crime", "history", "poetry", "science", "travel", "romance", "cooking")
COUNTRIES = ("Ireland", "Chile", "Japan", "Nigeria", "Canada", "Poland", "India", "Norway")
CITIES = ("Leeds", "Lyon", "Porto", "Graz", "Tartu", "Cork", "Turku", "Split", "Ghent")
FIRST = _words(
    "Ada Bruno Chiara Dmitri Elif Farah Goran Hana Ines Jonas Kemi Liam Mei Nadia Omar "
    "Priya Quentin Rosa Sven Tomas"
)
LAST = _words(
    "Achebe Berg Costa Dunne Eriksen Fujita Garcia Horvat Ivanova Jensen Kowalski Lindqvist "
    "Moreau Novak Okafor Petrov Quinn Rossi"
)
ADJECTIVES = _words(
    "Silent Crimson Hidden Last Northern Broken Golden Distant Winter Hollow Salt Paper "
    "Iron Velvet Burning Quiet Lost Seventh"
)
NOUNS = _words(
    "Harbour Garden Archive Lantern Orchard River Cartographer Kingdom Lighthouse Atlas "
    "Tide Orchestra Meridian Citadel Almanac Forest"
)
EPOCH = datetime(2024, 1, 1, 9, 0, 0)


@dataclass(frozen=True)
class SeedSize:
    """How many rows of each kind to create."""

    authors: int
    books: int
    customers: int
    orders: int
    max_items_per_order: int
    reviews: int


SMALL = SeedSize(authors=8, books=40, customers=12, orders=36, max_items_per_order=4, reviews=120)
LARGE = SeedSize(
    authors=120, books=1_200, customers=1_400, orders=1_650, max_items_per_order=4, reviews=2_100
)
SIZES = {"small": SMALL, "large": LARGE}


def generate(size: SeedSize, seed: int = 2024) -> dict[type[Base], list[dict[str, Any]]]:
    """The rows of every table as plain dicts, in insertion order."""
    rng = random.Random(seed)
    authors = [
        {
            "id": i,
            "name": f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}",
            "country": COUNTRIES[i % len(COUNTRIES)],
            "born": 1930 + rng.randrange(70) if i % 5 else None,
        }
        for i in range(1, size.authors + 1)
    ]
    books = [
        {
            "id": i,
            "title": f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}",
            "isbn": f"978{i:010d}",
            "genre": GENRES[i % len(GENRES)],
            "price_cents": 499 + 100 * rng.randrange(30),
            "stock": rng.randrange(0, 40) if i % 9 else 0,
            "published": 1950 + rng.randrange(75),
            "author_id": 1 + rng.randrange(size.authors),
        }
        for i in range(1, size.books + 1)
    ]
    customers = [
        {
            "id": i,
            "name": f"{FIRST[(i * 3) % len(FIRST)]} {LAST[i % len(LAST)]}",
            "email": f"customer{i}@example.com",
            "city": CITIES[i % len(CITIES)],
            "joined": date(2020, 1, 1) + timedelta(days=rng.randrange(1_400)),
        }
        for i in range(1, size.customers + 1)
    ]
    orders: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for i in range(1, size.orders + 1):
        orders.append(
            {
                "id": i,
                # the first customer always has a few orders to summarise
                "customer_id": 1 if i <= 3 else 1 + rng.randrange(size.customers),
                "placed_at": EPOCH + timedelta(minutes=rng.randrange(60 * 24 * 365)),
                "status": "shipped" if i % 4 else "placed",
            }
        )
        count = 2 + rng.randrange(size.max_items_per_order - 1)
        for book_id in rng.sample(range(1, size.books + 1), count):
            items.append(
                {
                    "id": len(items) + 1,
                    "order_id": i,
                    "book_id": book_id,
                    "quantity": 1 + rng.randrange(3),
                    "unit_price_cents": books[book_id - 1]["price_cents"],
                }
            )
    reviews = [
        {
            "id": i,
            "book_id": 1 + rng.randrange(size.books),
            "customer_id": 1 + rng.randrange(size.customers),
            "rating": 1 + rng.randrange(5),
            "body": rng.choice(("Loved it.", "Slow start.", "Would reread.", "Not for me.")),
            "created_at": EPOCH + timedelta(hours=rng.randrange(24 * 365)),
        }
        for i in range(1, size.reviews + 1)
    ]
    return {
        Author: authors,
        Book: books,
        Customer: customers,
        Order: orders,
        OrderItem: items,
        Review: reviews,
    }


def supplier_csv(rows: int, seed: int = 7, first_isbn: int = 9_790_000_000_000) -> str:
    """A supplier's catalogue file for ``bookshop.services.importer``: ``rows`` books by a
    few dozen authors (some new to the shop), with every 50th line invalid."""
    rng = random.Random(seed)
    lines = ["isbn,title,author,country,genre,price,stock,published"]
    for i in range(rows):
        author = f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}"
        price = f"{5 + rng.randrange(40)}.{rng.choice(('00', '50', '99'))}"
        year = "19x5" if i % 50 == 49 else str(1950 + rng.randrange(75))
        lines.append(
            f"{first_isbn + i},The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)},{author},"
            f"{rng.choice(COUNTRIES)},{rng.choice(GENRES)},{price},{rng.randrange(25)},{year}"
        )
    return "\n".join(lines) + "\n"


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def seed_database(session: Session, size: SeedSize = SMALL, seed: int = 2024) -> dict[str, int]:
    """Insert the generated rows (the caller commits); returns row counts per table."""
    counts: dict[str, int] = {}
    for model, rows in generate(size, seed).items():
        table = Base.metadata.tables[model.__tablename__]
        for chunk in _chunks(rows, CHUNK_ROWS):
            session.execute(insert(table), list(chunk))
        counts[model.__tablename__] = len(rows)
    return counts


def build_database(path: str | Path, size: SeedSize = SMALL, seed: int = 2024) -> dict[str, int]:
    """Create the schema in the SQLite file at ``path`` and seed it; returns row counts."""
    engine = make_engine(path)
    try:
        create_schema(engine)
        with make_session_factory(engine)() as session:
            counts = seed_database(session, size, seed)
            session.commit()
    finally:
        engine.dispose()
    return counts
