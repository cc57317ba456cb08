"""Lending and the overdue notices."""

from __future__ import annotations

import datetime as dt

from library import loans
from library.models import Book, Loan, Member
from library.seed import TODAY, Size

OVERDUE = [
    "Member 003 <m3@example.org>: 978-0-000009-00 since 2024-01-16",
    "Member 002 <m2@example.org>: 978-0-000002-00 since 2024-01-21",
    "Member 001 <m1@example.org>: 978-0-000005-00 since 2024-01-26",
    "Member 003 <m3@example.org>: 978-0-000001-00 since 2024-02-05",
]


def test_overdue_notices_name_each_member(small: Size) -> None:
    assert loans.overdue_notices(TODAY) == OVERDUE


def test_overdue_notices_eager(small: Size) -> None:
    assert loans.overdue_notices_eager(TODAY) == OVERDUE


def test_one_overdue_loan(small: Size) -> None:
    assert loans.overdue_notices(TODAY - dt.timedelta(days=19)) == OVERDUE[:1]


def test_borrow_and_give_back(small: Size) -> None:
    member = Member.objects.get(name="Member 000")
    book = Book.objects.get(title="Book 004-1")
    before = loans.loans_of(member)
    loan = loans.borrow(book, member, TODAY)
    assert loans.loans_of(member) == before + 1
    loans.give_back(loan, TODAY + dt.timedelta(days=3))
    assert Loan.objects.get(pk=loan.pk).returned_on == TODAY + dt.timedelta(days=3)


def test_borrow_a_pile_of_books(small: Size) -> None:
    member = Member.objects.get(name="Member 001")
    books = list(Book.objects.filter(year__lt=2010).order_by("title"))
    made = loans.borrow_all(books, member, TODAY)
    assert len(made) == len(books) == 5
    assert loans.loans_of(member) == 5 + 2  # two loans were out already


def test_nothing_overdue_on_the_first_day(small: Size) -> None:
    assert loans.overdue_notices(TODAY - dt.timedelta(days=60)) == []
