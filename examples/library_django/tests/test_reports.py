"""Circulation reports."""

from __future__ import annotations

from library import reports
from library.seed import Size


def test_most_borrowed(large: Size) -> None:
    top = reports.most_borrowed(limit=5)
    assert len(top) == 5
    assert top[0][1] >= top[-1][1] > 0


def test_loans_per_member(small: Size) -> None:
    assert reports.loans_per_member() == {f"Member {m:03d}": 2 for m in range(4)}


def test_member_emails(small: Size) -> None:
    assert reports.member_emails() == [f"m{m}@example.org" for m in range(4)]
