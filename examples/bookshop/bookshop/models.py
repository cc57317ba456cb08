"""ORM models: authors write books, customers place orders of books and review them.

Every relationship keeps SQLAlchemy's default lazy ("select") loading, so touching an
unloaded relationship issues one SELECT. Two foreign keys deliberately have no index:
``order_items.book_id`` (see ``bookshop.services.analytics.bestsellers``) and
``reviews.customer_id`` (see ``bookshop.reports.reviewer_leaderboard``).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of the bookshop schema."""


class Author(Base):
    """A writer; has many books."""

    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(60))
    born: Mapped[int | None]

    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")

    def __repr__(self) -> str:
        return f"Author(id={self.id!r}, name={self.name!r})"


class Book(Base):
    """A title in the catalogue, with its price (in cents) and stock."""

    __tablename__ = "books"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    isbn: Mapped[str] = mapped_column(String(20), unique=True)
    genre: Mapped[str] = mapped_column(String(40), index=True)
    price_cents: Mapped[int]
    stock: Mapped[int] = mapped_column(default=0)
    published: Mapped[int]
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"), index=True)

    author: Mapped[Author] = relationship(back_populates="books")
    reviews: Mapped[list[Review]] = relationship(back_populates="book", order_by="Review.id")

    def __repr__(self) -> str:
        return f"Book(id={self.id!r}, title={self.title!r})"


class Customer(Base):
    """Somebody who buys and reviews books."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    city: Mapped[str] = mapped_column(String(80))
    joined: Mapped[date]

    orders: Mapped[list[Order]] = relationship(back_populates="customer", order_by="Order.id")
    reviews: Mapped[list[Review]] = relationship(back_populates="customer")

    def __repr__(self) -> str:
        return f"Customer(id={self.id!r}, email={self.email!r})"


class Review(Base):
    """A customer's 1-5 star rating of a book. ``customer_id`` has no index (see reports)."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    rating: Mapped[int]
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]

    book: Mapped[Book] = relationship(back_populates="reviews")
    customer: Mapped[Customer] = relationship(back_populates="reviews")


class Order(Base):
    """One checkout by a customer; ``status`` is placed, shipped or cancelled."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    placed_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(20), default="placed")

    customer: Mapped[Customer] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.id", cascade="all, delete-orphan"
    )


class OrderItem(Base):
    """One line of an order. ``book_id`` has no index: the analytics reports pay for it."""

    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"))
    quantity: Mapped[int]
    unit_price_cents: Mapped[int]

    order: Mapped[Order] = relationship(back_populates="items")
    book: Mapped[Book] = relationship()


ALL_MODELS: tuple[type[Base], ...] = (Author, Book, Customer, Review, Order, OrderItem)
