"""Load marks: scoped marks nest per thread; a next-SELECT mark waits for a SELECT."""

from __future__ import annotations

import json
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
    assert marks.take("SELECT 1") is None and not marks.active()
    outer = marks.begin("Book.author", 3, '.select_related("author")')
    inner = marks.begin("Author.profile", 1, '.select_related("profile")')
    assert marks.active()
    assert fields(marks.take("SELECT 1"))["relation"] == "Author.profile"
    assert fields(marks.take("UPDATE x SET y = 1"))["relation"] == "Author.profile"
    marks.end(inner)
    assert fields(marks.take("SELECT 1")) == {
        "relation": "Book.author",
        "peers": 3,
        "fix": '.select_related("author")',
    }
    marks.end(outer)
    assert marks.marks == {} and marks.take("SELECT 1") is None


def test_a_next_select_mark_skips_other_statements_and_is_used_once() -> None:
    marks = LoadMarks()
    marks.next_select("Author.books", 4, "fix")
    assert not marks.active()  # not a running load: Django's relation lookup may still mark
    assert marks.take("INSERT INTO books VALUES (1)") is None  # an autoflush first
    assert fields(marks.take("  select * from books"))["peers"] == 4
    assert marks.take("SELECT * FROM books") is None
    marks.next_select("Author.books", 4, "fix")
    marks.forget_next_select()
    assert marks.take("SELECT 1") is None


def test_marks_belong_to_their_thread() -> None:
    marks = LoadMarks()
    marks.begin("Book.author", 2, "fix")
    seen: list[str | None] = []
    worker = threading.Thread(target=lambda: seen.append(marks.take("SELECT 1")))
    worker.start()
    worker.join()
    assert seen == [None]
    assert marks.take("SELECT 1") == encode("Book.author", 2, "fix")
