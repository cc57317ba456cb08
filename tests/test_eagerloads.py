"""The unread eager loads of a test: loads, reads and what is left (pure logic)."""

from __future__ import annotations

from devformance_nb.plugin.capture.eagerloads import EagerLoad, EagerLoads
from devformance_nb.plugin.capture.stacks import Site


class Author:
    pass


class Editor(Author):
    pass


class Book:
    pass


def load(model: type, attribute: str, stack: str = "s1", phase: str = "call") -> EagerLoad:
    relation = f"{model.__name__}.{attribute}"
    site = Site(f"app/q.py:{len(stack)} f", "app/db.py:1 run", stack)
    return EagerLoad(model, attribute, relation, f"selectinload({relation})", "sqlalchemy",
                     site, "t.py::test", phase)  # fmt: skip


def test_a_load_read_on_any_row_of_its_class_is_used() -> None:
    eager = EagerLoads()
    eager.loaded(load(Author, "books"))
    eager.loaded(load(Book, "author"))
    eager.read(Editor(), "books")  # a subclass's row
    eager.read(Book(), "title")  # another attribute
    eager.read(Author(), "author")  # another class
    assert [u.load.relation for u in eager.take()] == ["Book.author"]
    assert eager.take() == [] and eager.pending == []


def test_a_read_before_the_load_leaves_it_unread() -> None:
    eager = EagerLoads()
    eager.read(Author(), "books")
    eager.loaded(load(Author, "books"))
    assert [u.load.relation for u in eager.take()] == ["Author.books"]


def test_unread_loads_are_counted_per_stack_and_phase() -> None:
    eager = EagerLoads()
    for _ in range(3):
        eager.loaded(load(Author, "books"))
    eager.loaded(load(Author, "books", stack="s2"))
    eager.loaded(load(Author, "books", phase="setup"))
    taken = [(u.load.site.stack_hash, u.load.phase, u.count) for u in eager.take()]
    assert taken == [("s1", "call", 3), ("s2", "call", 1), ("s1", "setup", 1)]
