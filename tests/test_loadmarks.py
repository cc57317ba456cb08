"""Load marks: they nest, end, and belong to the thread that set them."""

from __future__ import annotations

import json
import sys
import threading

import pytest

from devformance_nb.plugin.capture.loadmarks import LoadMarks, encode

pytestmark = pytest.mark.quick


def fields(encoded: str | None) -> dict[str, object]:
    assert encoded is not None
    loaded: dict[str, object] = json.loads("{" + encoded + "}")
    return loaded


def test_scoped_marks_nest_and_end() -> None:
    marks = LoadMarks()
    assert marks.take() is None and not marks.active()
    outer = marks.begin("Book.author", 3, '.select_related("author")')
    inner = marks.begin("Author.profile", 1, '.select_related("profile")')
    assert marks.active()
    assert fields(marks.take())["relation"] == "Author.profile"
    marks.end(inner)
    assert fields(marks.take()) == {
        "relation": "Book.author",
        "peers": 3,
        "fix": '.select_related("author")',
    }
    marks.end(outer)
    assert marks.marks == {} and marks.take() is None


def test_marks_belong_to_their_thread() -> None:
    marks = LoadMarks()
    marks.begin("Book.author", 2, "fix")
    seen: list[str | None] = []
    worker = threading.Thread(target=lambda: seen.append(marks.take()))
    worker.start()
    worker.join()
    assert seen == [None]
    assert marks.take() == encode("Book.author", 2, "fix")


def test_a_mark_ends_where_it_began_even_if_greenlet_is_imported_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import greenlet

    marks = LoadMarks()
    monkeypatch.delitem(sys.modules, "greenlet")
    token = marks.begin("Book.author", 2, "fix")
    monkeypatch.setitem(sys.modules, "greenlet", greenlet)  # the load imported it
    assert marks.take() is None  # a key with the greenlet now
    marks.end(token)
    assert marks.marks == {}
