"""Lending: borrowing, returning, and the overdue notices."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import QuerySet

from library.models import Book, Loan, Member

LOAN_DAYS = 21


def borrow(book: Book, member: Member, on: dt.date) -> Loan:
    """Lend ``book`` to ``member`` from ``on`` (in a transaction: a savepoint inside tests)."""
    with transaction.atomic():
        return Loan.objects.create(book=book, member=member, isbn=book.isbn, borrowed_on=on)


def borrow_all(books: list[Book], member: Member, on: dt.date) -> list[Loan]:
    """Lend every book of ``books`` to ``member``, each in its own transaction."""
    return [borrow(book, member, on) for book in books]


def give_back(loan: Loan, on: dt.date) -> Loan:
    """Mark ``loan`` returned on ``on``."""
    loan.returned_on = on
    loan.save(update_fields=["returned_on"])
    return loan


def _overdue(today: dt.date) -> QuerySet[Loan]:
    cutoff = today - dt.timedelta(days=LOAN_DAYS)
    return Loan.objects.filter(returned_on__isnull=True, borrowed_on__lt=cutoff).order_by(
        "borrowed_on", "id"
    )


def overdue_notices(today: dt.date) -> list[str]:
    """One line per loan out for longer than ``LOAN_DAYS``, naming the member.

    Planted N+1: ``loan.member`` is a forward foreign key loaded lazily, one query per loan.
    """
    notices = []
    for loan in _overdue(today):
        member = loan.member
        notices.append(f"{member.name} <{member.email}>: {loan.isbn} since {loan.borrowed_on}")
    return notices


def overdue_notices_eager(today: dt.date) -> list[str]:
    """``overdue_notices`` with ``select_related("member")``: one query."""
    notices = []
    for loan in _overdue(today).select_related("member"):
        member = loan.member
        notices.append(f"{member.name} <{member.email}>: {loan.isbn} since {loan.borrowed_on}")
    return notices


def loans_of(member: Member) -> int:
    """How many books ``member`` has out right now."""
    return Loan.objects.filter(member=member, returned_on__isnull=True).count()
