"""compare_runs and `devformance compare` on the real bookshop history (tests/history.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from devformance_nb.analysis.compare import REGRESSION_COLUMNS, compare_runs

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


def test_a_newly_failing_test_is_a_regression(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db, facts.run("regress"), facts.run("flaky"))
    failing = cmp.newly_failing[["nodeid", "outcome_b", "outcome_a"]].to_dict("records")
    assert failing == [{"nodeid": facts.flaky_test, "outcome_b": "failed", "outcome_a": "passed"}]
    assert cmp.coverage_delta == 0
    assert cmp.regressions().to_dict("records") == [
        {"kind": "newly failing", "subject": facts.flaky_test, "detail": "failed (was passed)"}
    ]


def test_coverage_drop_counts_beyond_the_allowed_points(db: Path, facts: Facts) -> None:
    back = compare_runs(db, facts.run("fix"), facts.run("baseline"))  # the fix undone
    drop = -(back.coverage_delta or 0)
    assert drop > 0
    kinds = list(back.regressions(max_coverage_drop=0)["kind"])
    assert kinds == ["new N+1", "coverage down"]
    assert list(back.regressions(max_coverage_drop=drop + 0.01)["kind"]) == ["new N+1"]
    assert list(back.regressions(max_coverage_drop=drop - 0.01)["kind"]) == kinds


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
