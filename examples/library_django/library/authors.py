"""Author pages: every author with their books."""

from __future__ import annotations

from django.db.models import Prefetch

from library.models import Author, Book


def bibliographies() -> dict[str, list[str]]:
    """Each author's titles, oldest first, authors by name.

    Planted N+1: ``author.books`` is a reverse foreign key, queried once per author.
    """
    pages = {}
    for author in Author.objects.order_by("name", "id"):
        pages[author.name] = [book.title for book in author.books.order_by("year", "title")]
    return pages


def bibliographies_eager() -> dict[str, list[str]]:
    """``bibliographies`` with ``prefetch_related``: two queries whatever the author count."""
    books = Prefetch("books", queryset=Book.objects.order_by("year", "title"))
    pages = {}
    for author in Author.objects.order_by("name", "id").prefetch_related(books):
        pages[author.name] = [book.title for book in author.books.all()]
    return pages


def author_of(title: str) -> str:
    """The author's name for one title (a single lazy load: not an N+1)."""
    book = Book.objects.get(title=title)
    return book.author.name
