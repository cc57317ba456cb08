"""The analysis functions on a real history: four runs of the bookshop demo (tests/history.py).

Expected frames come from planted.json, the demo's README and the edits of each
step (an N+1 fixed, one introduced, a slow query and a flaky test added), not
from the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from conftest import MakeProject

from devformance_nb import analysis
from devformance_nb.api.facade import run_tests
from devformance_nb.core.errors import RunNotFoundError

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]  # the session's bookshop history: db, facts


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def _check(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    got = actual[list(expected.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_selectors(db: Path, facts: Facts) -> None:
    base, fix, regress, flaky = facts.ids
    assert analysis.select_runs(db, "all") == [base, fix, regress, flaky]
    assert analysis.select_runs(db, "latest") == [flaky]
    assert analysis.select_runs(db, "previous") == [regress]
    assert analysis.select_runs(db, "latest~3") == [base]
    assert (
        analysis.select_runs(db, "last:2") == analysis.select_runs(db, "last 2") == [regress, flaky]
    )
    assert analysis.select_runs(db, "branch:main") == [base, fix, regress]
    assert analysis.select_runs(db, "branch:main:1") == [regress]
    assert analysis.select_runs(db, "branch:feature") == [flaky]
    assert analysis.select_runs(db, ["latest", base]) == [base, flaky]
    assert analysis.select_runs(db, fix[:-2]) == [fix]  # a unique prefix
    for bad in ("latest~4", "branch:nope", "no-such-run"):
        with pytest.raises(RunNotFoundError):
            analysis.select_runs(db, bad)


def test_runs_overview(db: Path, facts: Facts) -> None:
    commits = [r.git_commit for r in facts.history.runs]
    tests, files = facts.baseline_tests, facts.baseline_files
    n_plus_one = len(facts.planted["n_plus_one"])
    slow = len(facts.planted["slow_queries"])
    expected = _frame(
        [
            {"run_id": run, "status": status, "git_branch": branch, "git_commit": commit,
             "files": f, "tests": t, "failed": failed, "n_plus_one": n1, "slow_queries": s}
            for run, status, branch, commit, f, t, failed, n1, s in zip(
                facts.ids,
                ["passed", "passed", "passed", "failed"],
                ["main", "main", "main", "feature"],
                commits,
                [files, files + 1, files + 2, files + 2],  # test_stock.py, test_housekeeping.py
                [tests, tests + 1, tests + 3, tests + 3],  # one test, then two more
                [0, 0, 0, 1],  # the flag file fails the housekeeping test
                [n_plus_one, n_plus_one - 1, n_plus_one, n_plus_one],
                [slow, slow, slow + 1, slow + 1],  # the stock reorder report
                strict=True,
            )
        ]
    )  # fmt: skip
    overview = analysis.runs_overview(db, "all")
    _check(overview, expected)
    assert commits[2] == commits[3] and len(set(commits)) == 3
    assert (overview["coverage_percent"] > 0).all() and (overview["queries"] > 0).all()
    assert list(analysis.runs_overview(db, "latest")["run_id"]) == [facts.run("flaky")]


def test_slowest_queries_are_the_planted_ones(db: Path, facts: Facts) -> None:
    planted = {(facts.caller(p), (p["nodeid"],)) for p in facts.planted["slow_queries"]}
    new = (facts.new_slow_caller, ("tests/test_reports.py::test_stock_reorder_list",))
    top = analysis.slowest_queries(db, "latest", limit=3)
    assert {(r.call_site, tuple(r.tests)) for r in top.itertuples()} == planted | {new}
    assert list(top["count"]) == list(top["slow_count"]) == [1, 1, 1]
    assert list(top["n_call_sites"]) == [1, 1, 1] and list(top["statement_type"]) == ["SELECT"] * 3
    assert (top["max_ms"] >= facts.planted["settings"]["slow_query_ms"]).all()
    assert top["max_ms"].is_monotonic_decreasing
    assert ((top["p50_ms"] <= top["p95_ms"]) & (top["p95_ms"] <= top["max_ms"])).all()
    tables = {facts.caller(p): sorted(p["tables"]) for p in facts.planted["slow_queries"]}
    for row in top.itertuples():
        if row.call_site in tables:
            assert sorted(row.tables) == tables[row.call_site]

    history = analysis.slowest_queries(db, "all", limit=3)
    counts = {r.call_site: (r.count, r.runs) for r in history.itertuples()}
    assert counts == {**{c: (4, 4) for c, _ in planted}, facts.new_slow_caller: (2, 2)}
    by_total = analysis.slowest_queries(db, "all", limit=5, by="total")
    assert by_total["total_ms"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="by must be one of"):
        analysis.slowest_queries(db, by="median")


def test_n_plus_one_hotspots(db: Path, facts: Facts) -> None:
    base, _, regress, flaky = facts.ids
    rows = []
    for p in facts.planted["n_plus_one"]:
        fixed = p is facts.fixed_n_plus_one or p == facts.fixed_n_plus_one
        seen = 1 if fixed else 4
        rows.append(
            {"site": facts.site(p), "caller": facts.caller(p), "table_name": p["table"],
             "runs": seen, "findings": seen, "queries": p["count"] * seen,
             "max_count": p["count"], "tests": [p["nodeid"]], "first_seen_run": base,
             "last_seen_run": base if fixed else flaky, "open": not fixed}
        )  # fmt: skip
    authors = facts.n_plus_one("books", "author_pages")["count"]  # one SELECT per author
    rows.append(
        {"site": "bookshop/services/authors.py author_pages_eager",
         "caller": facts.new_n_plus_one_caller, "table_name": "books", "runs": 2, "findings": 2,
         "queries": 2 * authors, "max_count": authors,
         "tests": ["tests/api/test_catalog.py::test_authors_with_their_titles"],
         "first_seen_run": regress, "last_seen_run": flaky, "open": True}
    )  # fmt: skip
    expected = _frame(sorted(rows, key=lambda r: (-int(r["queries"]), str(r["site"]))))  # type: ignore[call-overload]
    hotspots = analysis.n_plus_one_hotspots(db, "all")
    _check(hotspots, expected)
    # every planted N+1 of the bookshop is a lazy load: the ORM names it and its exact loader
    for relation, hint in zip(hotspots["relation"], hotspots["hint"], strict=True):
        assert relation and f"load({relation}))" in hint, (relation, hint)
    assert hotspots["example_sql"].str.startswith("SELECT").all()
    # only the latest run: the fixed one is gone, everything open
    latest = analysis.n_plus_one_hotspots(db, "latest")
    assert set(latest["site"]) == set(expected["site"][expected["open"]])
    assert latest["open"].all()


def _counts(df: pd.DataFrame, run: str, key: str) -> dict[str, int]:
    rows = df[df["run_id"] == run]
    return dict(zip(rows[key], rows["queries"], strict=True))


def test_query_counts_per_test_move_with_the_fixes(db: Path, facts: Facts) -> None:
    df = analysis.query_counts_per_test(db, "all")
    base, fix, regress, flaky = (_counts(df, r, "nodeid") for r in facts.ids)
    listed = facts.fixed_n_plus_one["nodeid"]
    one_book = "tests/services/test_catalog.py::test_one_book_of_a_genre_loads_one_author"
    eager = "tests/api/test_catalog.py::test_authors_with_their_titles"
    authors = facts.n_plus_one("books", "author_pages")["count"]
    # the fix: the authors are joined in, so the lazy loads go (8 in the listing, 1 for one book)
    assert {k: fix[k] - base[k] for k in base if fix[k] != base[k]} == {
        listed: -facts.fixed_n_plus_one["count"],
        one_book: -1,
    }
    assert set(fix) - set(base) == {f"{facts.stock_test_file}::test_post_order_beyond_stock_is_409"}
    # the regression: one SELECT per author instead of selectinload's single IN query
    assert {k: regress[k] - fix[k] for k in fix if regress[k] != fix[k]} == {eager: authors - 1}
    assert set(regress) - set(fix) == {
        facts.flaky_test,
        "tests/test_reports.py::test_stock_reorder_list",
    }
    assert flaky == regress  # same commit, same statements
    assert (df["query_ms"] >= 0).all()


def test_query_counts_per_file(db: Path, facts: Facts) -> None:
    df = analysis.query_counts_per_file(db, "all")
    base, fix = _counts(df, facts.run("baseline"), "file"), _counts(df, facts.run("fix"), "file")
    lazy_loads = facts.fixed_n_plus_one["count"] + 1
    assert {k: fix[k] - base[k] for k in base if fix[k] != base[k]} == {
        facts.fixed_n_plus_one["test_file"]: -lazy_loads
    }
    latest = df[df["run_id"] == facts.run("flaky")].set_index("file")
    for p in facts.planted["n_plus_one"]:
        if p != facts.fixed_n_plus_one:
            assert latest.loc[p["test_file"], "n_plus_one"] >= 1
    for p in facts.planted["slow_queries"]:
        assert latest.loc[p["test_file"], "slow_queries"] >= 1
    assert latest.loc["tests/test_housekeeping.py", "status"] == "failed"


def test_slowest_tests_and_files(db: Path, facts: Facts) -> None:
    files = analysis.slowest_files(db, "all", limit=3)
    assert files.loc[0, "file"] == facts.planted["slow_test_file"]
    assert list(files.columns) == [
        "file", "runs", "median_s", "mean_s", "min_s", "max_s", "latest_s", "latest_status",
    ]  # fmt: skip
    assert files.loc[0, "runs"] == 4 and files["median_s"].is_monotonic_decreasing
    tests = analysis.slowest_tests(db, "all", limit=5)
    assert tests.loc[0, "nodeid"] == facts.planted["slow_test"]
    assert tests.loc[0, "file"] == facts.planted["slow_test_file"]
    assert ((tests["min_s"] <= tests["median_s"]) & (tests["median_s"] <= tests["max_s"])).all()

    durations = analysis.durations_per_test(db, "latest")
    assert len(durations) == facts.baseline_tests + 3
    assert set(durations["outcome"]) == {"passed", "failed"}
    assert (durations["duration_s"] >= 0).all()
    per_file = analysis.durations_per_file(db, "all")
    assert len(per_file) == 4 * facts.baseline_files + 1 + 2 + 2


def test_coverage_over_runs(db: Path, facts: Facts) -> None:
    total = analysis.coverage_over_runs(db, "all")
    assert list(total["run_id"]) == facts.ids
    uncovered = [u for u in facts.planted["uncovered"] if not u.get("whole_module")]
    branch_lines = sum(len(u["lines"]) for u in uncovered)  # what test_stock.py covers
    base, fix, regress, flaky = total.to_dict("records")
    assert fix["covered"] - base["covered"] == branch_lines
    assert fix["statements"] == base["statements"]  # the fix keeps one statement
    assert regress["missing"] == fix["missing"]  # the new code is all covered
    assert regress["statements"] > fix["statements"]
    assert flaky["covered"] == regress["covered"]
    for row in (base, fix, regress):
        assert row["percent"] == pytest.approx(100 * row["covered"] / row["statements"])


def test_coverage_per_file(db: Path, facts: Facts) -> None:
    df = analysis.coverage_per_file(db, "all")
    base = df[df["run_id"] == facts.run("baseline")].set_index("source_file")
    fix = df[df["run_id"] == facts.run("fix")].set_index("source_file")
    expected_missing: dict[str, list[int]] = {}
    for u in facts.planted["uncovered"]:
        if not u.get("whole_module"):
            expected_missing.setdefault(u["module"], []).extend(u["lines"])
    partial = base[(base["percent"] < 100) & (base["percent"] > 0)]
    assert {f: sorted(r) for f, r in partial["missing_lines"].items()} == {
        m: sorted(lines) for m, lines in expected_missing.items()
    }
    whole = [u["module"] for u in facts.planted["uncovered"] if u.get("whole_module")]
    for frame in (base, fix):
        assert list(frame.index[frame["percent"] == 0]) == whole
        assert (frame.loc[whole, "covered"] == 0).all()
        assert (frame.loc[whole, "missing_count"] == frame.loc[whole, "statements"]).all()
    assert list(fix.index[fix["percent"] < 100]) == whole
    assert set(fix.index) == set(base.index)


def test_coverage_contribution(db: Path, facts: Facts) -> None:
    df = analysis.coverage_contribution(db, facts.run("fix")).set_index("test_file")
    uncovered = [u for u in facts.planted["uncovered"] if not u.get("whole_module")]
    stock = df.loc[facts.stock_test_file]
    assert stock["unique"] == sum(len(u["lines"]) for u in uncovered)
    assert stock["unique_in"] == sorted({u["module"] for u in uncovered})
    total = analysis.coverage_over_runs(db, facts.run("fix")).loc[0, "statements"]
    assert stock["unique_percent"] == pytest.approx(100 * stock["unique"] / total)
    assert len(df) == facts.baseline_files + 1
    assert (df["unique"] <= df["covered"]).all()
    baseline = analysis.coverage_contribution(db, facts.run("baseline"))
    assert facts.stock_test_file not in set(baseline["test_file"])


def test_flaky_tests(db: Path, facts: Facts) -> None:
    expected = _frame(
        [
            {"nodeid": facts.flaky_test, "file": "tests/test_housekeeping.py",
             "git_commit": facts.history.runs[2].git_commit, "runs": 2, "passed": 1, "failed": 1,
             "outcomes": ["failed", "passed"], "branches": ["feature", "main"],
             "latest_run": facts.run("flaky"), "latest_outcome": "failed"}
        ]
    )  # fmt: skip
    flaky = analysis.flaky_tests(db, "all")
    _check(flaky, expected)
    assert facts.flag in flaky.loc[0, "failure"]
    assert analysis.flaky_tests(db, "branch:main").empty  # one outcome per commit there


def test_failures(db: Path, facts: Facts) -> None:
    failing = analysis.failures(db, "latest")
    assert list(failing["nodeid"]) == [facts.flaky_test]
    assert list(failing["status"]) == ["failed"]
    assert "AssertionError" in failing.loc[0, "message"]
    assert facts.flag in failing.loc[0, "output"]
    assert analysis.failures(db, "previous").empty


def test_carried_copies_are_marked_and_not_counted_as_measurements(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = ['tests']\n",
            "tests/test_a.py": "def test_a():\n    assert True\n",
            "tests/test_b.py": "def test_b():\n    assert True\n",
        }
    )
    full = run_tests(root=root, executor="spawn")
    edit = root / "tests" / "test_a.py"
    edit.write_text(edit.read_text() + "\n\ndef test_a2():\n    assert 1\n")
    selected = run_tests(root=root, executor="spawn", changed=True)
    db = root / ".devformance" / "devformance.duckdb"
    # per run: every file of both runs, the carried one marked with the run that ran it
    per_file = analysis.durations_per_file(db, "all")
    marks = {
        (r.run_id, r.file): None if pd.isna(r.carried_from) else r.carried_from
        for r in per_file.itertuples()
    }
    assert marks == {
        (full.id, "tests/test_a.py"): None,
        (full.id, "tests/test_b.py"): None,
        (selected.id, "tests/test_a.py"): None,
        (selected.id, "tests/test_b.py"): full.id,
    }
    per_test = analysis.durations_per_test(db, "all")
    assert per_test.loc[per_test["run_id"] == selected.id, "carried_from"].notna().sum() == 1
    # over runs: test_b ran once, test_a twice; its copy is not a second measurement
    files = analysis.slowest_files(db, "all").set_index("file")["runs"].to_dict()
    assert files == {"tests/test_a.py": 2, "tests/test_b.py": 1}
    tests = analysis.slowest_tests(db, "all").set_index("nodeid")["runs"].to_dict()
    assert tests == {"tests/test_a.py::test_a": 2, "tests/test_a.py::test_a2": 1,
                     "tests/test_b.py::test_b": 1}  # fmt: skip
    usage = analysis.resource_usage(db, "all").set_index("file")["runs"].to_dict()
    assert usage == {"tests/test_a.py": 2, "tests/test_b.py": 1}
