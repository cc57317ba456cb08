"""Catalogue import, one row at a time: the suite's slow test file (real work, no sleeping)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bookshop.models import Author, Book
from bookshop.seed import supplier_csv
from bookshop.services.importer import import_books, parse_price

FULL_CATALOGUE_ROWS = 7_000


def test_import_a_full_supplier_catalogue(session: Session) -> None:
    result = import_books(session, supplier_csv(FULL_CATALOGUE_ROWS))
    session.commit()
    invalid = FULL_CATALOGUE_ROWS // 50
    assert result.books == FULL_CATALOGUE_ROWS - invalid
    assert len(result.rejected) == invalid
    assert result.rejected[0] == (51, "bad year '19x5'")
    assert session.scalar(select(func.count(Book.id))) == 40 + result.books
    assert session.scalar(select(func.count(Author.id))) == 8 + result.authors


def test_known_and_repeated_isbns_are_rejected(session: Session) -> None:
    text = (
        "isbn,title,author,country,genre,price,stock,published\n"
        "9780000000001,Already Stocked,Ada Berg,Chile,crime,10.00,1,1999\n"
        "9790000000010,Fresh Title,Ada Berg,Chile,crime,10.00,1,1999\n"
        "979-0000000010,Fresh Title Again,Ada Berg,Chile,crime,10.00,1,1999\n"
    )
    result = import_books(session, text)
    assert result.books == 1
    assert result.rejected == [
        (2, "duplicate isbn 9780000000001"),
        (4, "duplicate isbn 9790000000010"),
    ]


def test_invalid_rows_are_reported_with_their_line(session: Session) -> None:
    text = (
        "isbn,title,author,country,genre,price,stock,published\n"
        "9790000000001,Good Book,New Author,Chile,crime,12.50,3,2001\n"
        "12345,Short Isbn,New Author,Chile,crime,12.50,3,2001\n"
        "9790000000002,,New Author,Chile,crime,12.50,3,2001\n"
        "9790000000003,Cheap,New Author,Chile,crime,free,3,2001\n"
        "9790000000004,Lots,New Author,Chile,crime,9.99,many,2001\n"
    )
    result = import_books(session, text)
    assert (result.books, result.authors) == (1, 1)
    assert result.rejected == [
        (3, "bad isbn '12345'"),
        (4, "missing title"),
        (5, "bad price 'free'"),
        (6, "bad stock 'many'"),
    ]


@pytest.mark.parametrize(
    ("text", "cents"), [("12", 1200), ("12.5", 1250), ("0.99", 99), (" 7.05 ", 705)]
)
def test_parse_price(text: str, cents: int) -> None:
    assert parse_price(text) == cents


@pytest.mark.parametrize("text", ["", "1.234", "-3", "1,50", "abc"])
def test_parse_price_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad price"):
        parse_price(text)
