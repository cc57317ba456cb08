"""SQLAlchemy 2 ORM scenarios, each labelled with the N+1 findings it must produce."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload

from app import library
from app.labels import label, n_plus_one, unused_eager
from app.models import Author


@label(n_plus_one("author_books", 4, "books", relation="Author.books"))
def test_lazy_collection_in_a_loop(session: Session) -> None:
    assert library.bibliographies(session)["Ann"] == ["Book 1", "Book 2"]


@label()
def test_the_same_loop_with_selectinload(session: Session) -> None:
    assert library.bibliographies_selectin(session)["Dee"] == ["Book 7", "Book 8"]


@label(n_plus_one("book_author", 4, "authors", relation="Book.author"))
def test_lazy_many_to_one_loads_each_author_once(session: Session) -> None:
    # eight books, four authors: the identity map answers the second book of each author
    assert library.bylines(session)[2] == "Book 3 by Bob"


@label()
def test_the_same_loop_with_joinedload(session: Session) -> None:
    assert library.bylines_joined(session)[7] == "Book 8 by Dee"


@label(unused_eager("unread_books", "Author.books"))
def test_a_selectinload_never_read(session: Session) -> None:
    assert library.author_names_loading_books(session) == ["Ann", "Bob", "Cid", "Dee"]


@label(unused_eager("unread_author", "Book.author"))
def test_a_joinedload_never_read(session: Session) -> None:
    assert library.titles_loading_authors(session)[0] == "Book 1"


@label()
def test_an_eager_load_read_on_one_row_is_used(session: Session) -> None:
    # only Ann's books are read: the load was used (the other rows' were not, by chance)
    query = select(Author).options(selectinload(Author.books)).order_by(Author.id)
    assert [b.title for b in session.scalars(query).first().books] == ["Book 1", "Book 2"]


@label()
def test_a_single_lazy_load(session: Session) -> None:
    author = session.get(Author, 3)
    assert author is not None
    assert library.titles(author) == ["Book 5", "Book 6"]


@label(n_plus_one("first_author_books", 1, "books", relation="Author.books"))
def test_a_lazy_load_on_one_row_of_many(session: Session) -> None:
    # not repeated, yet an N+1: the ORM loaded Ann with three other authors
    assert library.first_bibliography(session) == ["Book 1", "Book 2"]


@label()
def test_a_lazy_load_on_the_one_row_of_a_query(session: Session) -> None:
    assert library.lone_bibliography(session, "Bob") == ["Book 3", "Book 4"]


@label(n_plus_one("authors_of", 2, "books", relation="Author.books"))
def test_two_parents_are_already_an_n_plus_one(session: Session) -> None:
    assert library.catalogue(session) == [
        "Ann: Book 1",
        "Ann: Book 2",
        "Bob: Book 3",
        "Bob: Book 4",
    ]


@label(
    n_plus_one("book_cards", 4, "authors", relation="Book.author"),
    n_plus_one("book_cards", 8, "reviews", relation="Book.reviews"),
)
def test_two_lazy_loads_per_row_are_two_findings(session: Session) -> None:
    assert library.book_cards(session)[0] == ("Book 1", "Ann", 3)


@label()
def test_a_loop_issuing_a_different_query_each_time(session: Session) -> None:
    assert library.table_sizes(session) == {"authors": 4, "books": 8, "reviews": 7}


@label()
def test_the_same_query_from_two_call_sites(session: Session) -> None:
    first = library.find_author(session, "Ann")
    session.expunge_all()
    again = session.scalars(select(Author).where(Author.name == "Ann")).first()
    assert first is not None and again is not None and first.id == again.id


@label(
    n_plus_one("every_author", 4, "books", relation="Author.books"),
    n_plus_one("authors_of", 2, "books", relation="Author.books"),
)
def test_one_helper_from_two_loops_is_two_findings(session: Session) -> None:
    authors = select(Author).order_by(Author.id)
    everyone = [library.titles(author) for author in session.scalars(authors)]  # site: every_author
    session.expire_all()
    french = [library.titles(author) for author in library.authors_of(session, "FR")]
    assert len(everyone) == 4 and french == everyone[:2]


@label()
def test_the_identity_map_answers_repeated_gets(session: Session) -> None:
    # the identity map holds objects weakly: keep one, or each get() queries again
    first = session.get(Author, 1)
    assert all(session.get(Author, 1) is first for _ in range(4))


@label()
def test_pagination_with_limit_and_offset(session: Session) -> None:
    assert [len(page) for page in library.pages(session, 3)] == [3, 3, 2]


@label(n_plus_one("author_page", 4, "books"))
def test_one_page_per_parent(session: Session) -> None:
    assert library.first_titles(session)["Bob"] == ["Book 3", "Book 4"]


@label()
def test_keyset_pagination(session: Session) -> None:
    assert [len(page) for page in library.keyset_pages(session, 3)] == [3, 3, 2]


@label(n_plus_one("thread_get", 4, "authors"))
def test_threads_each_loading_one_author(engine: Engine) -> None:
    assert library.author_names_in_threads(engine, [1, 2, 3, 4]) == ["Ann", "Bob", "Cid", "Dee"]


@label()
def test_threads_each_running_a_different_query(engine: Engine) -> None:
    assert library.counts_in_threads(engine) == [4, 8, 7]


@label()
def test_inserts_flushed_one_by_one(session: Session) -> None:
    library.add_reviews(session, [1, 2, 3, 4])
    session.rollback()


@label()
def test_updates_flushed_one_by_one(session: Session) -> None:
    library.rename_books(session, " (2nd edition)")
    session.rollback()
