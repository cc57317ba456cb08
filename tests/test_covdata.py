"""Reading coverage data through coverage's API: per source file, per test file, the run total."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from covdriver import child_env, run_children
from coverage import CoverageData

from devformance_nb.run import covdata
from devformance_nb.store import rows as store_rows

CALC = """\
def add(a, b):
    return a + b


def sign(x):
    if x > 0:
        return 1
    if x < 0:
        return -1
    return 0
"""
# statements: 1, 2, 5, 6, 7, 8, 9, 10


def project(root: Path, files: dict[str, str]) -> Path:
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


def lines_data(path: Path, lines: dict[Path, list[int]], context: str | None = None) -> Path:
    """A real coverage data file holding ``lines`` (written through CoverageData)."""
    data = CoverageData(basename=str(path))
    if context is not None:
        data.set_context(context)
    data.add_lines({str(f): found for f, found in lines.items()})
    data.write()
    return path


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return project(tmp_path / "project", {"shop/__init__.py": "", "shop/calc.py": CALC})


def coverage_cli(*args: str, cwd: Path, data_file: Path) -> str:
    env = {**child_env({}, cwd / "unused.json"), "COVERAGE_FILE": str(data_file)}
    proc = subprocess.run(
        [sys.executable, "-m", "coverage", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def test_one_test_file(shop: Path, tmp_path: Path) -> None:
    calc = shop / "shop" / "calc.py"
    data = lines_data(tmp_path / "a.coverage", {calc: [1, 2, 5, 6, 7, 8]})
    result = covdata.read_test_file(data, shop)
    (row,) = result.files
    assert row.source_file == "shop/calc.py"
    assert (row.statements, row.covered, row.excluded) == (8, 6, 0)
    assert row.missing_lines == (9, 10)
    assert row.missing == "9-10"
    assert row.percent == 75.0
    assert row.branches is None
    assert result.total == covdata.CoverageTotal(files=1, statements=8, covered=6, percent=75.0)
    assert result.data_files == [str(data)] and not result.skipped and not result.notes


def test_the_run_total_is_the_union_and_matches_coverage_combine(
    shop: Path, tmp_path: Path
) -> None:
    calc, init = shop / "shop" / "calc.py", shop / "shop" / "__init__.py"
    a = lines_data(tmp_path / "a.coverage", {calc: [1, 2, 5], init: []})
    b = lines_data(tmp_path / "b.coverage", {calc: [1, 5, 6, 7]})
    result = covdata.read_union([a, b], shop)
    assert [(f.source_file, f.covered, f.missing) for f in result.files] == [
        ("shop/__init__.py", 0, ""),
        ("shop/calc.py", 5, "8-10"),
    ]
    combined = tmp_path / "combined.coverage"
    coverage_cli("combine", "--keep", str(a), str(b), cwd=shop, data_file=combined)
    total = coverage_cli("report", "--format=total", "--precision=6", cwd=shop, data_file=combined)
    assert result.percent == pytest.approx(float(total), abs=1e-6)
    assert result.percent == pytest.approx(62.5)


@pytest.mark.quick
@pytest.mark.parametrize(
    ("missing", "statements", "expected"),
    [
        ([], [1, 2, 3], ""),
        ([2], [1, 2, 3], "2"),
        ([2, 3], [1, 2, 3, 4], "2-3"),
        ([2, 6], [1, 2, 6, 7], "2-6"),  # no statement between 2 and 6: one range
        ([2, 6], [1, 2, 4, 6], "2, 6"),
        ([1, 2, 5, 9], [1, 2, 3, 5, 9], "1-2, 5-9"),
    ],
)
def test_compact_lines(missing: list[int], statements: list[int], expected: str) -> None:
    assert covdata.compact_lines(missing, statements) == expected


def test_unusable_data_files_are_skipped_with_a_reason(shop: Path, tmp_path: Path) -> None:
    good = lines_data(tmp_path / "good.coverage", {shop / "shop" / "calc.py": [1, 2]})
    empty = tmp_path / "empty.coverage"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.coverage"
    garbage.write_bytes(b"this is not a database" * 100)
    crashed = tmp_path / "crashed.coverage"  # never written
    result = covdata.read_union([good, empty, garbage, crashed], shop)
    assert result.data_files == [str(good)]
    reasons = {Path(s.data_file).name: s.reason for s in result.skipped}
    assert reasons["empty.coverage"].startswith("the coverage data file is empty")
    assert reasons["garbage.coverage"].startswith("unreadable coverage data")
    assert reasons["crashed.coverage"].startswith("no coverage data (the child crashed")
    assert result.total is not None and result.total.covered == 2
    note = covdata.summary_note(result)
    assert note.startswith("1 of 4 test files contributed; ")
    assert store_rows.coverage_columns(result)["coverage_test_files"] == 1


@pytest.mark.quick
def test_nothing_readable_gives_no_total(tmp_path: Path) -> None:
    result = covdata.read_union([tmp_path / "missing.coverage"], tmp_path)
    assert (result.total, result.percent, result.files) == (None, None, [])
    assert store_rows.coverage_columns(result, expected_files=3)["coverage_note"].startswith(
        "0 of 3 test files contributed"
    )


@pytest.mark.quick
def test_the_childs_own_reason_wins_and_one_reason_is_said_once(tmp_path: Path) -> None:
    paths = [tmp_path / "a.coverage", tmp_path / "b.coverage"]
    message = "coverage is off: the coverage configuration in .coveragerc is broken: ..."
    result = covdata.read_union(paths, tmp_path, reasons={str(p): message for p in paths})
    assert [s.reason for s in result.skipped] == [message, message]
    assert covdata.summary_note(result) == f"0 of 2 test files contributed; {message} (2 files)"


def test_a_deleted_source_file_is_left_out_with_a_note(shop: Path, tmp_path: Path) -> None:
    gone = project(shop, {"shop/old.py": "X = 1\n"}) / "shop" / "old.py"
    data = lines_data(tmp_path / "a.coverage", {shop / "shop" / "calc.py": [1], gone: [1]})
    gone.unlink()
    result = covdata.read_test_file(data, shop)
    assert [f.source_file for f in result.files] == ["shop/calc.py"]
    assert result.notes == ["shop/old.py was measured but no longer exists; left out"]


def test_branch_data_and_line_data_do_not_mix(shop: Path, tmp_path: Path) -> None:
    calc = str(shop / "shop" / "calc.py")
    arcs = CoverageData(basename=str(tmp_path / "arcs.coverage"))
    arcs.add_arcs({calc: [(-1, 1), (1, 5), (5, -1)]})
    arcs.write()
    lines = lines_data(tmp_path / "lines.coverage", {Path(calc): [1]})
    result = covdata.read_union([tmp_path / "arcs.coverage", lines], shop)
    assert result.data_files == [str(tmp_path / "arcs.coverage")]
    assert result.skipped[0].reason.startswith("cannot combine: Can't combine statement")
    assert result.total is not None and result.total.branches is not None


def test_contexts_say_which_tests_ran_a_line(shop: Path, tmp_path: Path) -> None:
    calc = shop / "shop" / "calc.py"
    path = tmp_path / "a.coverage"
    data = CoverageData(basename=str(path))
    for context, found in [("", [1, 5]), ("t.py::test_a", [2]), ("t.py::test_b", [2, 6, 7])]:
        data.set_context(context)
        data.add_lines({str(calc): found})
    data.write()
    result = covdata.read_test_file(path, shop, contexts=True)
    assert result.contexts == [
        ("shop/calc.py", 2, "t.py::test_a"),
        ("shop/calc.py", 2, "t.py::test_b"),
        ("shop/calc.py", 6, "t.py::test_b"),
        ("shop/calc.py", 7, "t.py::test_b"),
    ]
    rows = store_rows.context_rows(result, "r1", "t.py")
    assert rows[0] == {
        "run_id": "r1",
        "test_file": "t.py",
        "source_file": "shop/calc.py",
        "line": 2,
        "context": "t.py::test_a",
    }


def test_rows_for_the_store(shop: Path, tmp_path: Path) -> None:
    calc, init = shop / "shop" / "calc.py", shop / "shop" / "__init__.py"
    init.write_text("X = 1\n")
    data = lines_data(tmp_path / "a.coverage", {calc: [1, 2], init: []})
    result = covdata.read_test_file(data, shop)
    files = store_rows.source_file_rows(result, "r1")
    assert [(r["run_id"], r["source_file"], r["covered"]) for r in files] == [
        ("r1", "shop/__init__.py", 0),
        ("r1", "shop/calc.py", 2),
    ]
    assert files[1]["missing_lines"] == [5, 6, 7, 8, 9, 10]
    by_test = store_rows.by_test_file_rows(result, "r1", "tests/test_calc.py")
    assert [r["source_file"] for r in by_test] == ["shop/calc.py"]  # no row for 0 covered
    assert by_test[0]["test_file"] == "tests/test_calc.py"
    columns = store_rows.coverage_columns(result)
    assert columns["coverage_percent"] == pytest.approx(2 / 9 * 100)
    assert (columns["coverage_statements"], columns["coverage_covered"]) == (9, 2)
    assert columns["coverage_note"] is None


BRANCHY = {
    "pyproject.toml": """\
        [tool.pytest.ini_options]
        pythonpath = ["."]
        [tool.coverage.run]
        source = ["shop"]
        branch = true
        """,
    "shop/__init__.py": "",
    "shop/calc.py": CALC,
    "shop/admin.py": "def never():\n    return 42\n",
    "tests/test_add.py": "from shop.calc import add\n\ndef test_add():\n    assert add(1, 2)\n",
    "tests/test_sign.py": "from shop.calc import sign\n\ndef test_pos():\n    assert sign(3)\n",
}
NEGATIVE = "from shop.calc import sign\n\ndef test_neg():\n    assert sign(-3) == -1\n"


def test_children_with_branches_match_coverage_and_a_new_test_raises_the_total(
    tmp_path: Path,
) -> None:
    root = project(tmp_path / "project", BRANCHY)
    files = ["tests/test_add.py", "tests/test_sign.py"]
    first = run_children(root, files, tmp_path / "run1")
    assert all(run.returncode == 0 for run in first.values())
    data_files = sorted((tmp_path / "run1").glob("*.coverage"))
    before = covdata.read_union(data_files, root)
    combined = tmp_path / "combined.coverage"
    coverage_cli("combine", "--keep", *map(str, data_files), cwd=root, data_file=combined)
    total = coverage_cli("report", "--format=total", "--precision=6", cwd=root, data_file=combined)
    assert before.percent == pytest.approx(float(total), abs=1e-6)
    calc = next(f for f in before.files if f.source_file == "shop/calc.py")
    assert calc.branches == 4 and calc.partial_branches == 1
    assert calc.missing_branches == "6->8, 8->9, 8->10"  # line 8 never ran: both exits missing
    admin = next(f for f in before.files if f.source_file == "shop/admin.py")
    assert (admin.covered, admin.missing) == (0, "1-2")

    # the second run: the same files again (their data would not change) plus a new test
    project(root, {"tests/test_neg.py": NEGATIVE})
    second = run_children(root, ["tests/test_neg.py"], tmp_path / "run2")
    assert second["tests/test_neg.py"].returncode == 0
    new_data = tmp_path / "run2" / "tests__test_neg.coverage"
    after = covdata.read_union([*data_files, new_data], root)
    assert before.percent is not None and after.percent is not None
    assert after.percent > before.percent
    alone = covdata.read_test_file(new_data, root)
    assert alone.percent is not None and alone.percent < after.percent


def test_reads_in_two_threads_never_build_asts_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPython 3.11 can break its AST construction when two threads parse at once, which lost
    a file's coverage under load: reader threads take turns, so a parse never overlaps another.
    """
    import threading

    root = project(
        tmp_path / "project", {f"shop/m{i}.py": CALC for i in range(2)} | {"shop/__init__.py": ""}
    )
    data = [
        lines_data(tmp_path / f"{i}.coverage", {root / "shop" / f"m{i}.py": [1, 2, 5]})
        for i in range(2)
    ]
    inside: list[str] = []
    overlaps: list[list[str]] = []
    second = threading.Event()
    waited: list[bool] = []
    original = ast.parse

    def parse(*args: object, **kwargs: object) -> object:
        inside.append(threading.current_thread().name)
        if len(inside) > 1:
            overlaps.append(list(inside))
            second.set()
        elif not waited:  # the first parse waits (with a deadline) for the other thread's
            waited.append(True)
            second.wait(timeout=2)
        try:
            return original(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            inside.remove(threading.current_thread().name)

    monkeypatch.setattr(ast, "parse", parse)
    results: dict[int, covdata.CoverageResult] = {}

    def read(i: int) -> None:
        results[i] = covdata.read_test_file(data[i], root)

    threads = [threading.Thread(target=read, args=(i,), name=f"reader-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert overlaps == []
    assert [results[i].files[0].covered for i in range(2)] == [3, 3]


def test_held_data_answers_every_query_on_one_connection(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """coverage.py connects again for each query made outside one: a test file's 150 sources
    would open its data file 150 times."""
    import sqlite3

    calc = shop / "shop" / "calc.py"
    path = lines_data(tmp_path / "a.coverage", {calc: [1, 2, 5]})
    (data,), _ = covdata.load_parts(str(path))
    opened: list[object] = []
    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: opened.append(a) or connect(*a, **k))
    with covdata.held(data):
        answers = [sorted(data.lines(str(calc)) or []) for _ in range(5)]
    assert answers == [[1, 2, 5]] * 5
    assert len(opened) <= 1


def test_a_union_of_many_data_files_keeps_few_open(shop: Path, tmp_path: Path) -> None:
    """A run's total reads every child's data file (thousands in a big suite): each is open
    only while it is read, so a low open-files limit is never reached."""
    import resource

    calc = shop / "shop" / "calc.py"
    paths = [lines_data(tmp_path / f"{i}.coverage", {calc: [1, 2, 5]}) for i in range(150)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 60, hard))
    try:
        total = covdata.read_union(paths, shop)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(total.data_files) == 150 and not total.skipped
    assert total.files[0].covered == 3
