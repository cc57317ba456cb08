"""Author pages (the lazy version is a planted N+1)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bookshop.services import authors


def test_author_pages_list_every_bibliography(session: Session) -> None:
    pages = authors.author_pages(session)
    assert [page.name for page in pages] == sorted(page.name for page in pages)
    assert sum(len(page.titles) for page in pages) == 40
    kowalski = next(page for page in pages if page.name == "Elif Kowalski")
    assert len(kowalski.titles) == 11
    assert len(kowalski.genres) >= 3


def test_one_country_has_one_author(session: Session) -> None:
    # the lazy pages again, but one author means one lazy load: not an N+1
    (page,) = authors.author_pages(session, country="Nigeria")
    assert (page.name, len(page.titles)) == ("Dmitri Dunne", 4)


def test_eager_author_pages_of_one_country(session: Session) -> None:
    pages = authors.author_pages_eager(session, country="Japan")
    assert [(page.id, page.name, page.country) for page in pages] == [(2, "Chiara Okafor", "Japan")]
    assert len(pages[0].titles) == 5


def test_prolific_authors(session: Session) -> None:
    ranking = authors.prolific_authors(session, min_books=5)
    assert ranking[0] == ("Elif Kowalski", 11)
    assert all(count >= 5 for _, count in ranking)
    assert len(ranking) == 4
