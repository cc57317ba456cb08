"""The ORM models and their relationships, on an empty database."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bookshop.models import Author, Book, Customer, Order, OrderItem, Review


def _shop(session: Session) -> tuple[Author, Book, Customer]:
    author = Author(name="Mei Fujita", country="Japan", born=1971)
    book = Book(
        title="Salt Harbour",
        isbn="9781111111111",
        genre="travel",
        price_cents=1450,
        stock=3,
        published=2019,
        author=author,
    )
    customer = Customer(
        name="Omar Novak", email="omar@example.com", city="Graz", joined=date(2023, 5, 1)
    )
    session.add_all([author, book, customer])
    session.flush()
    return author, book, customer


def test_books_belong_to_their_author(empty_session: Session) -> None:
    author, book, _ = _shop(empty_session)
    empty_session.commit()
    empty_session.expunge_all()
    loaded = empty_session.get(Author, author.id)
    assert loaded is not None
    assert [b.isbn for b in loaded.books] == [book.isbn]


def test_an_order_keeps_its_items(empty_session: Session) -> None:
    _, book, customer = _shop(empty_session)
    order = Order(customer=customer, placed_at=datetime(2024, 6, 1, 10, 30))
    order.items.append(OrderItem(book=book, quantity=2, unit_price_cents=book.price_cents))
    empty_session.add(order)
    empty_session.commit()
    assert order.status == "placed"
    assert order.items[0].order_id == order.id
    assert customer.orders == [order]


def test_deleting_an_order_deletes_its_items(empty_session: Session) -> None:
    _, book, customer = _shop(empty_session)
    order = Order(customer=customer, placed_at=datetime(2024, 6, 1, 10, 30))
    order.items.append(OrderItem(book=book, quantity=1, unit_price_cents=900))
    empty_session.add(order)
    empty_session.flush()
    empty_session.delete(order)
    empty_session.flush()
    assert empty_session.scalar(select(func.count(OrderItem.id))) == 0


def test_a_review_links_book_and_customer(empty_session: Session) -> None:
    _, book, customer = _shop(empty_session)
    review = Review(book=book, customer=customer, rating=4, created_at=datetime(2024, 2, 2))
    empty_session.add(review)
    empty_session.flush()
    assert review.body == ""
    assert book.reviews == [review]


def test_isbns_are_unique(empty_session: Session) -> None:
    author, book, _ = _shop(empty_session)
    empty_session.add(
        Book(
            title="Copy",
            isbn=book.isbn,
            genre="travel",
            price_cents=100,
            published=2020,
            author=author,
        )
    )
    with pytest.raises(IntegrityError):
        empty_session.flush()


def test_reprs_name_the_row(empty_session: Session) -> None:
    author, book, customer = _shop(empty_session)
    assert repr(author) == f"Author(id={author.id}, name='Mei Fujita')"
    assert repr(book) == f"Book(id={book.id}, title='Salt Harbour')"
    assert repr(customer) == f"Customer(id={customer.id}, email='omar@example.com')"
