"""Where a query was built or run: the project frame a lazy load's fix goes to."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devformance_nb.plugin.capture.frames import FrameIndex
from devformance_nb.plugin.capture.querysites import QuerySites

pytestmark = pytest.mark.quick

REPO = Path(__file__).resolve().parent.parent
HERE = "tests/test_querysites.py"


def run_query(sql: str, probe: Callable[[], str]) -> str:
    """A query helper: handed the statement's text by its caller."""
    return probe()


def build(probe: Callable[[], str]) -> str:
    return run_query("SELECT id FROM books WHERE author_id = ?", probe)


def line_of(text: str) -> int:
    lines = Path(__file__).read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.strip().startswith(text))


def test_the_frame_that_handed_the_statement_to_a_helper_is_the_query_site() -> None:
    sites = QuerySites(FrameIndex(str(REPO)))
    found = build(lambda: sites.here(sys._getframe(1)))
    assert found == f"{HERE}:{line_of('return run_query(')} build"
    assert build(lambda: sites.here(sys._getframe(1))) == found  # cached, same answer


def project_function(folder: Path, module: str, source: str) -> Any:
    """The one function ``source`` defines, compiled as ``folder/module`` (a project file)."""
    path = folder / module
    path.write_text(source, encoding="utf-8")
    names: dict[str, Any] = {}
    exec(compile(source, str(path), "exec"), names)
    (function,) = (value for key, value in names.items() if not key.startswith("__"))
    return function


def test_a_helper_with_no_other_project_frame_is_the_site(tmp_path: Path) -> None:
    run = project_function(tmp_path, "app.py", "def run(sql, probe):\n    return probe()\n")
    sites = QuerySites(FrameIndex(str(tmp_path)))
    assert run("SELECT 1", lambda: sites.here(sys._getframe(1))) == "app.py:2 run"


def test_no_project_frame_is_no_site(tmp_path: Path) -> None:
    assert QuerySites(FrameIndex(str(tmp_path))).here(sys._getframe()) == ""


def test_a_mark_names_the_project_frame_calling_into_a_library(tmp_path: Path) -> None:
    # a project function calling into a library's query-making code (here: this test file,
    # outside the root), which asks where it was called from, as Django's managers do
    build = project_function(tmp_path, "views.py", "def build(ask):\n    return ask()\n")
    sites = QuerySites(FrameIndex(str(tmp_path)))
    through = frozenset({__file__})
    # the first time through ``here``, then at once (the function is known not to be a helper)
    first, again = (build(lambda: sites.mark(sys._getframe(), through)) for _ in range(2))
    assert first == again == "views.py:2 build"
    assert build(lambda: sites.here(sys._getframe())) == first


def test_a_query_a_library_makes_for_itself_has_no_mark(tmp_path: Path) -> None:
    # the frame past the query-making code is library code (as a model's save asking a manager
    # for its own insert): no mark, though project code calls that library a frame further
    build = project_function(tmp_path, "views.py", "def build(ask):\n    return ask()\n")
    sites = QuerySites(FrameIndex(str(tmp_path)))
    through = frozenset({"/elsewhere/manager.py"})

    def save() -> str:
        return sites.mark(sys._getframe(), through)

    assert build(save) == ""
    assert build(lambda: sites.here(sys._getframe())) == "views.py:2 build"


def test_a_mark_far_from_any_project_frame_gives_up(tmp_path: Path) -> None:
    sites = QuerySites(FrameIndex(str(tmp_path)))  # nothing here is under this root
    build = project_function(tmp_path, "views.py", "def build(ask):\n    return ask()\n")

    def deep(n: int) -> object:
        return deep(n - 1) if n else sites.mark(sys._getframe(), frozenset({__file__}))

    assert build(lambda: deep(2)) == "views.py:2 build"
    assert build(lambda: deep(20)) == ""
