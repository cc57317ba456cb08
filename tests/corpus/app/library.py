"""ORM code paths of the library app: the slow ways and the fixed ways.

A ``# site: NAME`` comment marks the line that issues a repeated statement, or, for an ORM lazy
load, the line that ran the query the parents came from (where the loader option goes); labels
refer to it.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from app.models import Author, Book, Review


def bibliographies(session: Session) -> dict[str, list[str]]:
    """Each author's titles: one query for the authors, then one per author (N+1)."""
    out = {}
    for author in session.scalars(select(Author).order_by(Author.id)):  # site: author_books
        out[author.name] = [book.title for book in author.books]
    return out


def bibliographies_selectin(session: Session) -> dict[str, list[str]]:
    """The same with selectinload: two queries whatever the number of authors."""
    query = select(Author).options(selectinload(Author.books)).order_by(Author.id)
    return {a.name: [b.title for b in a.books] for a in session.scalars(query)}


def author_names_loading_books(session: Session) -> list[str]:
    """Every author's name, their books loaded eagerly for nothing: an unused eager load."""
    query = select(Author).options(selectinload(Author.books)).order_by(Author.id)
    authors = session.scalars(query).all()  # site: unread_books
    return [author.name for author in authors]


def titles_loading_authors(session: Session) -> list[str]:
    """Every title, each book's author joined in and never read: an unused eager load."""
    query = select(Book).options(joinedload(Book.author)).order_by(Book.id)
    return [book.title for book in session.scalars(query).unique()]  # site: unread_author


def first_bibliography(session: Session) -> list[str]:
    """The first author's titles, taken from the list of every author: one lazy load, on one
    row of a multi-row result (the ORM knows the other rows would each load theirs)."""
    authors = session.scalars(select(Author).order_by(Author.id)).all()  # site: first_author_books
    return [book.title for book in authors[0].books]


def lone_bibliography(session: Session, name: str) -> list[str]:
    """One author's titles, the author found by a query of its own: one row, one lazy load."""
    author = session.scalars(select(Author).where(Author.name == name)).one()
    return [book.title for book in author.books]


def bylines(session: Session) -> list[str]:
    """ "Title by Author" for every book: a lazy many-to-one load per distinct author."""
    out = []
    for book in session.scalars(select(Book).order_by(Book.id)):  # site: book_author
        author = book.author
        out.append(f"{book.title} by {author.name}")
    return out


def bylines_joined(session: Session) -> list[str]:
    """The same with joinedload: one query."""
    query = select(Book).options(joinedload(Book.author)).order_by(Book.id)
    return [f"{book.title} by {book.author.name}" for book in session.scalars(query)]


def authors_of(session: Session, country: str) -> list[Author]:
    """The authors of one country."""
    query = select(Author).where(Author.country == country)
    return list(session.scalars(query))  # site: authors_of


def titles(author: Author) -> list[str]:
    """An author's titles (a lazy load the first time)."""
    return [book.title for book in author.books]


def catalogue(session: Session) -> list[str]:
    """Every author's titles through two helper layers (the lazy load is two calls deep)."""
    return [line for author in authors_of(session, "FR") for line in _entries(author)]


def _entries(author: Author) -> list[str]:
    return [f"{author.name}: {title}" for title in titles(author)]


def book_cards(session: Session) -> list[tuple[str, str, int]]:
    """Title, author and review count per book: two lazy loads per book, at two lines."""
    cards = []
    for book in session.scalars(select(Book).order_by(Book.id)):  # site: book_cards
        name = book.author.name
        reviews = book.reviews
        cards.append((book.title, name, len(reviews)))
    return cards


def table_sizes(session: Session) -> dict[str, int]:
    """Row counts of every table: a loop, but a different statement each time."""
    sizes = {}
    for model in (Author, Book, Review):
        sizes[model.__tablename__] = session.scalar(select(func.count()).select_from(model))
    return sizes


def find_author(session: Session, name: str) -> Author | None:
    """One author by name."""
    return session.scalars(select(Author).where(Author.name == name)).first()


def pages(session: Session, size: int) -> list[list[str]]:
    """Every title, a page at a time (LIMIT/OFFSET) until a page comes back empty."""
    out: list[list[str]] = []
    while True:
        query = select(Book.title).order_by(Book.id).limit(size).offset(len(out) * size)
        page = list(session.scalars(query))
        if not page:
            return out
        out.append(page)


def first_titles(session: Session) -> dict[str, list[str]]:
    """Each author's first two titles: one page per author (a per-parent page is an N+1)."""
    out = {}
    for author in session.scalars(select(Author).order_by(Author.id)).all():
        query = select(Book.title).where(Book.author_id == author.id).order_by(Book.id)
        out[author.name] = list(session.scalars(query.limit(2).offset(0)))  # site: author_page
    return out


def keyset_pages(session: Session, size: int) -> list[list[int]]:
    """Every book id, a page at a time after the last id seen (keyset pagination)."""
    out: list[list[int]] = []
    last = 0
    while True:
        query = select(Book.id).where(Book.id > last).order_by(Book.id).limit(size)
        page = list(session.scalars(query))
        if not page:
            return out
        out.append(page)
        last = page[-1]


def author_names_in_threads(engine: Engine, ids: list[int]) -> list[str]:
    """Each author's name looked up by a thread of its own, each with its own session."""
    names: dict[int, str] = {}

    def look_up(author_id: int) -> None:
        with Session(engine) as session:
            author = session.get(Author, author_id)  # site: thread_get
            names[author_id] = author.name if author else ""

    threads = [threading.Thread(target=look_up, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [names[i] for i in ids]


def counts_in_threads(engine: Engine) -> list[int]:
    """A different count per thread (no statement repeats)."""
    results: list[int] = []

    def count(model: type[Author] | type[Book] | type[Review]) -> None:
        with Session(engine) as session:
            results.append(session.scalar(select(func.count()).select_from(model)) or 0)

    for model in (Author, Book, Review):
        thread = threading.Thread(target=count, args=(model,))
        thread.start()
        thread.join()
    return results


def add_reviews(session: Session, stars: list[int]) -> None:
    """New reviews of book 8, one flush per review (INSERTs: never an N+1).

    Ids are given: the seed rows took theirs explicitly, so a server's sequence is still at 1.
    """
    for offset, value in enumerate(stars):
        session.add(Review(id=100 + offset, stars=value, book_id=8))
        session.flush()


def rename_books(session: Session, suffix: str) -> None:
    """One UPDATE per book, from one line (writes: never an N+1)."""
    for book in session.scalars(select(Book).order_by(Book.id)):
        book.title = book.title + suffix
        session.flush()
