"""Unused eager load findings: hints and order (pure logic)."""

from __future__ import annotations

from devformance_nb.core.events import EagerUnused
from devformance_nb.logic.eager import eager_order, unused_eager_hint, unused_eager_load


def test_a_finding_keeps_the_event_and_gets_its_hint() -> None:
    event = EagerUnused(
        file="tests/test_a.py",
        nodeid="tests/test_a.py::t",
        phase="call",
        relation="Author.books",
        option="selectinload(Author.books)",
        orm="sqlalchemy",
        count=2,
        caller="app/q.py:3 names",
        stack_hash="abc",
    )
    found = unused_eager_load(event)
    assert (found.relation, found.count, found.caller, found.file) == (
        "Author.books",
        2,
        "app/q.py:3 names",
        "tests/test_a.py",
    )
    assert found.hint.startswith("Author.books is loaded eagerly (selectinload(Author.books))")


def test_django_hints_say_which_name_to_drop_from_which_method() -> None:
    hint = unused_eager_hint("Book.author", '.select_related("author")')
    assert 'drop "author" from .select_related(...)' in hint
    hint = unused_eager_hint("Author.books", '.prefetch_related("books__tags")')
    assert 'drop "books__tags" from .prefetch_related(...)' in hint


def test_findings_are_ordered_by_file_test_and_phase() -> None:
    def make(nodeid: str, phase: str) -> object:
        event = EagerUnused(nodeid=nodeid, phase=phase, relation="A.b", option="x", orm="")
        return unused_eager_load(event)

    found = [make("t.py::b", "call"), make("t.py::a", "teardown"), make("t.py::a", "setup")]
    ordered = sorted(found, key=eager_order)  # type: ignore[arg-type]
    assert [(f.nodeid, f.phase) for f in ordered] == [  # type: ignore[attr-defined]
        ("t.py::a", "setup"),
        ("t.py::a", "teardown"),
        ("t.py::b", "call"),
    ]
