"""Source files parsed once for every coverage report while unchanged (run.covparse)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_covdata import CALC, lines_data, project

from devformance_nb.run import covdata


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return project(tmp_path / "project", {"shop/__init__.py": "", "shop/calc.py": CALC})


def test_a_source_file_is_parsed_once_while_unchanged(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coverage.parser import PythonParser

    parsed: list[str] = []
    original = PythonParser.parse_source

    def counting(self: PythonParser) -> None:
        parsed.append(str(self.filename))
        original(self)

    monkeypatch.setattr(PythonParser, "parse_source", counting)
    trees: list[str] = []  # every ast.parse
    build = ast.parse
    monkeypatch.setattr(ast, "parse", lambda *a, **k: trees.append("") or build(*a, **k))
    calc = shop / "shop" / "calc.py"
    first = lines_data(tmp_path / "a.coverage", {calc: [1, 2, 5, 6, 7, 8]})
    second = lines_data(tmp_path / "b.coverage", {calc: [1, 2]})
    assert covdata.read_test_file(first, shop).files[0].covered == 6
    built = len(trees)
    assert covdata.read_test_file(second, shop).files[0].covered == 2
    assert parsed.count(str(calc)) == 1  # the second report reused the parse
    assert len(trees) == built  # no tree built again either
    # an edited file is parsed again: its statements changed
    calc.write_text(CALC + "\n\ndef extra():\n    return 2\n", encoding="utf-8")
    (row,) = covdata.read_test_file(second, shop).files
    assert (row.statements, row.covered) == (10, 2)
    assert parsed.count(str(calc)) == 2
