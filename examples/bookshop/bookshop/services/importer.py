"""Catalogue import from a supplier's CSV file, one row at a time.

Every valid row is inserted and flushed on its own so that a database error can be reported
with the CSV line it came from. That is correct but slow for big files (one INSERT and one
flush per row, no bulk insert): the import test is the suite's slow test file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bookshop.models import Author, Book

COLUMNS = ("isbn", "title", "author", "country", "genre", "price", "stock", "published")


@dataclass
class ImportResult:
    """What an import did: counts of new rows and the rejected lines with reasons."""

    books: int = 0
    authors: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def parse_price(text: str) -> int:
    """``"12.50"`` -> ``1250`` cents; raises ValueError on anything else."""
    whole, _, part = text.strip().partition(".")
    if not whole.isdigit() or (part and (not part.isdigit() or len(part) > 2)):
        raise ValueError(f"bad price {text!r}")
    return int(whole) * 100 + int(part.ljust(2, "0") or 0)


def _check(row: dict[str, str]) -> str | None:
    """Why ``row`` cannot be imported, or None if it can."""
    for column in COLUMNS:
        if not (row.get(column) or "").strip():
            return f"missing {column}"
    isbn = row["isbn"].replace("-", "")
    if not (isbn.isdigit() and len(isbn) == 13):
        return f"bad isbn {row['isbn']!r}"
    if not row["stock"].isdigit():
        return f"bad stock {row['stock']!r}"
    if not (row["published"].isdigit() and 1450 <= int(row["published"]) <= 2100):
        return f"bad year {row['published']!r}"
    try:
        parse_price(row["price"])
    except ValueError as error:
        return str(error)
    return None


def import_books(session: Session, csv_text: str) -> ImportResult:
    """Import the books in ``csv_text`` (header row: ``COLUMNS``); the caller commits.

    Unknown authors are created; rows with a known ISBN or invalid fields are rejected.
    """
    result = ImportResult()
    authors = {author.name: author for author in session.scalars(select(Author))}
    known_isbns = set(session.scalars(select(Book.isbn)))
    reader = csv.DictReader(io.StringIO(csv_text))
    for line, row in enumerate(reader, start=2):
        problem = _check(row)
        isbn = (row.get("isbn") or "").replace("-", "")
        if problem is None and isbn in known_isbns:
            problem = f"duplicate isbn {isbn}"
        if problem is not None:
            result.rejected.append((line, problem))
            continue
        name = row["author"].strip()
        author = authors.get(name)
        if author is None:
            author = Author(name=name, country=row["country"].strip())
            session.add(author)
            session.flush()
            authors[name] = author
            result.authors += 1
        session.add(
            Book(
                isbn=isbn,
                title=row["title"].strip(),
                genre=row["genre"].strip().lower(),
                price_cents=parse_price(row["price"]),
                stock=int(row["stock"]),
                published=int(row["published"]),
                author_id=author.id,
            )
        )
        session.flush()
        known_isbns.add(isbn)
        result.books += 1
    return result
