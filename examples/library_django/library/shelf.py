"""The "new arrivals" shelf, rendered with a Django template."""

from __future__ import annotations

from collections.abc import Iterable

from django.template import Context, Engine

from library.models import Book

SHELF = Engine().from_string(
    "{% for book in books %}{{ book.title }} ({{ book.year }}) by {{ book.author.name }}\n"
    "{% endfor %}"
)


def render_shelf(books: Iterable[Book]) -> str:
    """The shelf text for ``books``; the template reads ``book.author.name`` for each."""
    return SHELF.render(Context({"books": books}))


def new_arrivals(since: int) -> str:
    """Books from ``since`` on, newest first.

    Planted N+1: the template touches ``book.author`` per book, and the queryset does not
    load it, so rendering issues one author query per book.
    """
    return render_shelf(Book.objects.filter(year__gte=since).order_by("-year", "title"))


def new_arrivals_eager(since: int) -> str:
    """``new_arrivals`` with ``select_related("author")``: one query."""
    books = Book.objects.filter(year__gte=since).order_by("-year", "title")
    return render_shelf(books.select_related("author"))
