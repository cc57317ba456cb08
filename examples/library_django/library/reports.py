"""Circulation reports."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from library.models import Book, Loan, Member


def most_borrowed(limit: int = 10) -> list[tuple[str, int]]:
    """Titles by how often they were lent, most first.

    Planted slow query: the count is a correlated subquery per book over ``loans.isbn``,
    which has no index, so the database scans every loan once per book.
    """
    times = (
        Loan.objects.filter(isbn=OuterRef("isbn"))
        .order_by()
        .values("isbn")
        .annotate(n=Count("id"))
        .values("n")
    )
    rows = (
        Book.objects.annotate(
            times=Coalesce(Subquery(times[:1]), Value(0), output_field=IntegerField())
        )
        .order_by("-times", "title")
        .values_list("title", "times")[:limit]
    )
    return list(rows)


def loans_per_member() -> dict[str, int]:
    """How many loans each member ever had (one GROUP BY query)."""
    rows = Member.objects.annotate(n=Count("loans")).order_by("name").values_list("name", "n")
    return dict(rows)


def member_emails() -> list[str]:
    """Every member's e-mail address, streamed in chunks.

    ``iterator()`` reads through a server-side cursor on PostgreSQL (a named psycopg cursor
    that Django makes itself): devformance's Django adapter records that statement.
    """
    emails = Member.objects.order_by("id").values_list("email", flat=True)
    return list(emails.iterator(chunk_size=100))
