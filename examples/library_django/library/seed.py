"""Deterministic demo data: a small library for the listings, a large one for the reports."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from library.models import Author, Book, Loan, Member

TODAY = dt.date(2024, 3, 1)
COUNTRIES = ("Chile", "Japan", "Nigeria", "Norway", "Peru")
BATCH = 500


@dataclass(frozen=True)
class Size:
    """How much to seed."""

    authors: int
    books_per_author: int
    members: int
    loans: int


#: 5 authors, 10 books, 4 members, 8 loans of which 6 are overdue on TODAY
SMALL = Size(authors=5, books_per_author=2, members=4, loans=8)
#: enough loans that a scan per book shows (1,000 books, 4,000 loans)
LARGE = Size(authors=100, books_per_author=10, members=250, loans=4_000)


def isbn(number: int) -> str:
    """A made-up ISBN for book ``number``."""
    return f"978-0-{number:06d}-00"


def seed(size: Size) -> None:
    """Insert ``size`` worth of rows (bulk inserts, in batches)."""
    authors = Author.objects.bulk_create(
        [Author(name=f"Author {i:03d}", country=COUNTRIES[i % 5]) for i in range(size.authors)],
        batch_size=BATCH,
    )
    books = Book.objects.bulk_create(
        [
            Book(
                title=f"Book {a:03d}-{b}",
                isbn=isbn(a * size.books_per_author + b),
                year=2000 + (a * 7 + b * 3) % 25,
                author=author,
            )
            for a, author in enumerate(authors)
            for b in range(size.books_per_author)
        ],
        batch_size=BATCH,
    )
    members = Member.objects.bulk_create(
        [Member(name=f"Member {m:03d}", email=f"m{m}@example.org") for m in range(size.members)],
        batch_size=BATCH,
    )
    loans = []
    for n in range(size.loans):
        book = books[(n * 7) % len(books)]
        borrowed = TODAY - dt.timedelta(days=10 + (n * 5) % 60)
        returned = None if n % 4 else borrowed + dt.timedelta(days=7)
        loans.append(
            Loan(
                book=book,
                member=members[n % len(members)],
                isbn=book.isbn,
                borrowed_on=borrowed,
                returned_on=returned,
            )
        )
    Loan.objects.bulk_create(loans, batch_size=BATCH)
