"""Source files parsed once for every coverage report while unchanged (run.covparse)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_covdata import CALC, lines_data, project

from devformance_nb.run import covdata, covparse


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


def test_an_analysis_is_made_once_for_the_same_lines_of_an_unchanged_source(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most test files run the same (import-time) lines of most sources: each distinct set
    is analysed once, and its row equals the one a fresh analysis gives."""
    import coverage

    made: list[object] = []
    original = coverage.Coverage._analyze

    def counting(self: coverage.Coverage, *args: object, **kwargs: object) -> object:
        made.append(args[0])
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(coverage.Coverage, "_analyze", counting)
    calc = shop / "shop" / "calc.py"
    same = [lines_data(tmp_path / f"{i}.coverage", {calc: [1, 2, 5]}) for i in range(3)]
    other = lines_data(tmp_path / "other.coverage", {calc: [1, 2, 5, 6, 7, 8]})
    rows = [covdata.read_test_file(path, shop).files for path in same]
    assert len(made) == 1  # three reports, one analysis
    assert rows[0] == rows[1] == rows[2] and rows[0][0].covered == 3
    (changed,) = covdata.read_test_file(other, shop).files
    assert len(made) == 2 and changed.covered == 6  # other lines: analysed
    # the kept answer is the fresh one: with the cache emptied, the same rows come back
    monkeypatch.setattr(covparse, "_ANALYSES", {})
    assert covdata.read_test_file(same[0], shop).files == rows[0]
    assert len(made) == 3
    # an edit changes the source's key: analysed again, with its new statements
    calc.write_text(CALC + "\n\ndef extra():\n    return 2\n", encoding="utf-8")
    (edited,) = covdata.read_test_file(same[1], shop).files
    assert len(made) == 4 and edited.statements == 10
