"""Prices are stored as integer cents; this formats them for people."""

from __future__ import annotations


def format_cents(cents: int, currency: str = "EUR") -> str:
    """``1999`` -> ``"19.99 EUR"``; negative amounts keep their sign."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d} {currency}"
