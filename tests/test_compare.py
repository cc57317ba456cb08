"""compare_runs and `devformance compare` on the real bookshop history (tests/history.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from conftest import MakeProject

from devformance_nb.analysis.compare import REGRESSION_COLUMNS, compare_runs
from devformance_nb.api import facade as api

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]  # the session's bookshop history: db, facts


def _changed(df: pd.DataFrame, column: str, key: str) -> dict[str, float]:
    moved = df[df[column].notna() & (df[column] != 0)]
    return dict(zip(moved[key], moved[column], strict=True))


def test_the_fix_is_reported_and_is_no_regression(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db, facts.run("baseline"), facts.run("fix"))
    fixed = facts.fixed_n_plus_one
    assert cmp.fixed_n_plus_one[["caller", "table_name", "queries", "tests"]].to_dict(
        "records"
    ) == [
        {
            "caller": facts.caller(fixed),
            "table_name": fixed["table"],
            "queries": fixed["count"],
            "tests": [fixed["nodeid"]],
        }
    ]
    assert cmp.new_n_plus_one.empty and cmp.newly_failing.empty
    assert cmp.new_slow_queries.empty
    assert _changed(cmp.query_changes, "queries_delta", "nodeid") == {
        fixed["nodeid"]: -fixed["count"],
        "tests/services/test_catalog.py::test_one_book_of_a_genre_loads_one_author": -1,
    }
    covered = {u["module"] for u in facts.planted["uncovered"] if not u.get("whole_module")}
    moved = cmp.coverage_changes[cmp.coverage_changes["delta"] != 0]
    assert set(moved["source_file"]) == covered
    assert (moved["delta"] > 0).all() and (moved["percent_b"] == 100).all()
    assert cmp.coverage_delta is not None and cmp.coverage_delta > 0
    assert cmp.regressions().empty
    assert list(cmp.regressions().columns) == REGRESSION_COLUMNS
    assert list(cmp.runs["run_id"]) == [cmp.a, cmp.b]


def test_a_new_n_plus_one_and_slow_query_are_regressions(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db, facts.run("fix"), facts.run("regress"))
    authors = facts.n_plus_one("books", "author_pages")["count"]
    assert cmp.new_n_plus_one[["caller", "table_name", "queries", "tests"]].to_dict("records") == [
        {
            "caller": facts.new_n_plus_one_caller,
            "table_name": "books",
            "queries": authors,
            "tests": ["tests/api/test_catalog.py::test_authors_with_their_titles"],
        }
    ]
    assert cmp.fixed_n_plus_one.empty
    assert list(cmp.new_slow_queries["call_site"]) == [facts.new_slow_caller]
    assert cmp.new_slow_queries["max_ms_a"].isna().all()  # never ran before
    regressions = cmp.regressions()
    assert list(regressions["kind"]) == ["new N+1", "new slow query"]
    assert list(regressions["subject"]) == [facts.new_n_plus_one_caller, facts.new_slow_caller]


def test_a_test_failing_on_a_commit_it_passed_on_is_flaky_reported_never_failing(
    db: Path, facts: Facts
) -> None:
    cmp = compare_runs(db, facts.run("regress"), facts.run("flaky"))
    failing = cmp.newly_failing[["nodeid", "outcome_b", "outcome_a", "flaky"]]
    assert failing.to_dict("records") == [
        {"nodeid": facts.flaky_test, "outcome_b": "failed", "outcome_a": "passed", "flaky": True}
    ]
    assert cmp.coverage_delta == 0
    assert cmp.regressions().empty  # the same commit passed it: the change under test did not
    assert cmp.notices().to_dict("records") == [
        {
            "kind": "flaky test",
            "subject": facts.flaky_test,
            "detail": "failed in b; passed and failed on one commit",
        }
    ]


def test_a_newly_failing_test_is_a_regression(make_project: MakeProject, tmp_path: Path) -> None:
    db, a, b = _two_runs(
        make_project,
        tmp_path,
        {"tests/test_ok.py": OK_FILE},
        {
            "tests/test_ok.py": OK_FILE.replace(
                "def test_two():\n    pass", "def test_two():\n    assert 0"
            )
        },
    )
    cmp = compare_runs(db, a, b)
    assert cmp.regressions().to_dict("records") == [
        {
            "kind": "newly failing",
            "subject": "tests/test_ok.py::test_two",
            "detail": "failed (was passed)",
        }
    ]
    assert cmp.notices().empty  # no git commit here: nothing can be called flaky


def test_coverage_drop_counts_beyond_the_allowed_points(db: Path, facts: Facts) -> None:
    back = compare_runs(db, facts.run("fix"), facts.run("baseline"))  # the fix undone
    drop = -(back.coverage_delta or 0)
    assert drop > 0
    kinds = list(back.regressions(max_coverage_drop=0)["kind"])
    assert kinds == ["new N+1", "coverage down"]
    assert list(back.regressions(max_coverage_drop=drop + 0.01)["kind"]) == ["new N+1"]
    assert list(back.regressions(max_coverage_drop=drop - 0.01)["kind"]) == kinds


def test_a_baseline_knows_what_at_least_half_of_its_runs_had(db: Path, facts: Facts) -> None:
    main = [facts.run(step) for step in ("baseline", "fix", "regress")]
    cmp = compare_runs(db, "branch:main:last:5", facts.run("flaky"))
    assert cmp.base == tuple(main) and cmp.a == facts.run("regress")
    # regress's N+1 and slow query are in one of three base runs: not yet the base's
    assert list(cmp.new_n_plus_one["caller"]) == [facts.new_n_plus_one_caller]
    assert list(cmp.new_slow_queries["call_site"]) == [facts.new_slow_caller]
    assert cmp.fixed_n_plus_one.empty  # list_books' N+1 was in one of three as well
    assert list(cmp.runs["run_id"]) == [*main, facts.run("flaky")]
    half = compare_runs(db, main[1:], facts.run("flaky"))  # in one of two: known
    assert half.new_n_plus_one.empty and half.new_slow_queries.empty


def test_selectors_default_to_previous_and_latest(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db)
    assert (cmp.a, cmp.b) == (facts.run("regress"), facts.run("flaky"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devformance_nb.cli", "compare", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_compare_reports_the_fix_and_exits_0(db: Path, facts: Facts) -> None:
    proc = _cli(facts.run("baseline"), facts.run("fix"), "--db", str(db))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fixed N+1: 1" in proc.stdout
    assert facts.caller(facts.fixed_n_plus_one) in proc.stdout
    assert proc.stdout.rstrip().endswith("regressions: 0")


def test_cli_compare_reports_a_new_n_plus_one_and_exits_1(db: Path, facts: Facts) -> None:
    proc = _cli(facts.run("fix"), facts.run("regress"), "--db", str(db))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "new N+1: 1" in proc.stdout
    assert f"new N+1: {facts.new_n_plus_one_caller}" in proc.stdout
    assert "regressions: 2" in proc.stdout


def test_cli_compare_max_coverage_drop(db: Path, facts: Facts) -> None:
    # the fix undone, with the N+1 it re-introduces: coverage alone decides nothing
    proc = _cli(facts.run("fix"), facts.run("baseline"), "--db", str(db))
    assert proc.returncode == 1 and "coverage down" in proc.stdout
    proc = _cli(
        facts.run("fix"), facts.run("baseline"), "--db", str(db), "--max-coverage-drop", "5"
    )
    assert proc.returncode == 1 and "coverage down" not in proc.stdout


def test_cli_compare_unknown_run_is_a_usage_error(db: Path) -> None:
    proc = _cli("no-such-run", "latest", "--db", str(db))
    assert proc.returncode not in (0, 1)
    assert "no run matching 'no-such-run'" in proc.stderr


#: run first in the subprocess: the notebook extra's packages cannot be imported, as after a
#: bare ``pip install devformance_nb`` (a finder that says "not installed" for each of them)
_WITHOUT_NOTEBOOK_EXTRA = """
import importlib.abc, sys
ABSENT = {"altair", "ipywidgets", "IPython", "vl_convert"}
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Absent())
for name in list(sys.modules):
    if name.partition(".")[0] in ABSENT:
        del sys.modules[name]
"""


def test_compare_needs_only_the_bare_package(db: Path, facts: Facts) -> None:
    code = _WITHOUT_NOTEBOOK_EXTRA + (
        "import devformance_nb.compare\n"
        "from devformance_nb.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "unwanted = ('devformance_nb.charts', 'devformance_nb.cli.report', *ABSENT)\n"
        "print('loaded:', sorted(m for m in sys.modules if m.startswith(unwanted)))\n"
        "sys.exit(code)\n"
    )
    args = ["compare", facts.run("fix"), facts.run("regress"), "--db", str(db)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"run {facts.run('regress')} against run {facts.run('fix')}" in proc.stdout
    assert f"new N+1: {facts.new_n_plus_one_caller}" in proc.stdout
    assert "regressions: 2" in proc.stdout
    assert "loaded: []" in proc.stdout, "nothing of the notebook extra, the charts or the report"
    assert "Traceback" not in proc.stderr


def test_report_without_the_notebook_extra_still_names_the_fix(db: Path, tmp_path: Path) -> None:
    code = _WITHOUT_NOTEBOOK_EXTRA + (
        "from devformance_nb.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    args = ["report", "--html", str(tmp_path / "r.html"), "--db", str(db)]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "needs the notebook extra (altair is missing)" in proc.stderr
    assert "pip install 'devformance_nb[notebook]'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r.html").exists()


# File-level regressions, on small generated projects run twice into one store: a file that
# cannot be collected has no test rows, so only its file row tells that it broke.

OK_FILE = "def test_one():\n    pass\n\ndef test_two():\n    pass\n"


def _two_runs(
    make_project: MakeProject, tmp_path: Path, before: dict[str, str], after: dict[str, str]
) -> tuple[Path, str, str]:
    """Run ``before``, then the project with ``after``'s files (None: deleted), into one store.

    Returns the store and both run ids. An empty ``after`` value deletes the file.
    """
    db = tmp_path / "two.duckdb"
    root = make_project(before)
    first = api.run_tests(root=root, db=db, workers=2, coverage=False)
    for rel, source in after.items():
        if source:
            (root / rel).write_text(source, encoding="utf-8")
        else:
            (root / rel).unlink()
    second = api.run_tests(root=root, db=db, workers=2, coverage=False)
    assert first.store_error is None and second.store_error is None
    return db, first.id, second.id


def test_a_file_that_stops_importing_is_a_regression(
    make_project: MakeProject, tmp_path: Path
) -> None:
    db, a, b = _two_runs(
        make_project,
        tmp_path,
        {"tests/test_ok.py": OK_FILE, "tests/test_lib.py": OK_FILE, "tests/test_exit.py": OK_FILE},
        {
            "tests/test_lib.py": "import not_a_module_xyz\n" + OK_FILE,
            # the crash ends the file in its first test: the second one never runs
            "tests/test_exit.py": "import os\n\ndef test_one():\n    os._exit(3)\n"
            + "\ndef test_two():\n    pass\n",
        },
    )
    cmp = compare_runs(db, a, b)
    # the crashing test has a row (error); the file that cannot be imported has none at all
    assert list(cmp.newly_failing["nodeid"]) == ["tests/test_exit.py::test_one"]
    broken = cmp.broken_files[["file", "status_a", "status_b", "missing_tests"]]
    assert broken.to_dict("records") == [
        {"file": "tests/test_exit.py", "status_a": "passed", "status_b": "crashed",
         "missing_tests": 1},
        {"file": "tests/test_lib.py", "status_a": "passed", "status_b": "error",
         "missing_tests": 2},
    ]  # fmt: skip
    assert cmp.missing_tests.empty  # a broken file's lost tests are counted in its own row
    regressions = cmp.regressions()
    broken_rows = regressions[regressions["kind"] == "broken file"]
    assert list(regressions["kind"]) == ["newly failing", "broken file", "broken file"]
    assert list(broken_rows["subject"]) == ["tests/test_exit.py", "tests/test_lib.py"]
    exit_detail, lib_detail = broken_rows["detail"]
    assert exit_detail.startswith("crashed (was passed)") and "1 tests of a not run" in exit_detail
    assert lib_detail.startswith("error (was passed)") and "not_a_module_xyz" in lib_detail
    assert "2 tests of a not run" in lib_detail

    proc = _cli(a, b, "--db", str(db))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "broken files: 2" in proc.stdout and "missing tests: 0" in proc.stdout
    assert "  broken file: tests/test_lib.py  error (was passed)" in proc.stdout
    assert "regressions: 3" in proc.stdout
    back = _cli(b, a, "--db", str(db))  # fixed again: nothing is broken
    assert back.returncode == 0 and back.stdout.rstrip().endswith("regressions: 0"), back.stdout


def test_missing_tests_count_but_a_deleted_file_does_not(
    make_project: MakeProject, tmp_path: Path
) -> None:
    db, a, b = _two_runs(
        make_project,
        tmp_path,
        {
            "tests/test_kept.py": OK_FILE,
            "tests/test_gone.py": OK_FILE,
            "tests/test_was_broken.py": "import not_a_module_xyz\n",
        },
        {
            "tests/test_kept.py": "def test_one():\n    pass\n",  # test_two is gone
            "tests/test_gone.py": "",  # the whole file deleted
            "tests/test_new.py": "def test_new(:\n",  # a new file that cannot be collected
            "tests/test_was_broken.py": "import not_a_module_either\n",
        },
    )
    cmp = compare_runs(db, a, b)
    missing = cmp.missing_tests[["nodeid", "outcome_a", "file_status_b"]]
    assert missing.to_dict("records") == [
        {"nodeid": "tests/test_kept.py::test_two", "outcome_a": "passed", "file_status_b": "passed"}
    ]
    # broken before and after is no regression; a new broken file is (there was nothing before)
    assert list(cmp.broken_files["file"]) == ["tests/test_new.py"]
    assert cmp.regressions().to_dict("records") == [
        {"kind": "broken file", "subject": "tests/test_new.py",
         "detail": cmp.regressions()["detail"][0]},
        {"kind": "missing test", "subject": "tests/test_kept.py::test_two",
         "detail": "passed in a, absent from b (tests/test_kept.py passed)"},
    ]  # fmt: skip
    assert cmp.regressions()["detail"][0].startswith("error (was absent): ")
    assert "SyntaxError" in cmp.regressions()["detail"][0]
