"""The header's file filter: the files a run takes and the rows the table shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from devformance_nb.ui.filters import matches, split_filter

pytestmark = pytest.mark.quick


def test_split_filter(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    assert split_filter("tests *order* , books", tmp_path) == (["tests"], ["*order*", "*books*"])
    assert split_filter("  ", tmp_path) == ([], [])


def test_matches_globs_parts_and_nothing() -> None:
    assert matches("tests/api/test_order.py", "")
    assert matches("tests/api/test_order.py", "web, order")
    assert matches("tests/api/test_order.py", "tests/api/*.py")
    assert matches("tests/api/test_order.py", "./tests/api")
    assert not matches("tests/api/test_order.py", "tests/web/*")
    assert not matches("tests/api/test_order.py", "books")
