"""The ``devformance`` marker: a test's own query budget, from the child to the store.

Children run in real pytest (pytester) for the events, and whole runs go through
``run_tests`` with both executors for the store: ``tests.max_queries`` holds the marker's
budget, a replayed run directory keeps it, ``--strict-markers`` accepts the marker, and a bad
marker stops its file with a message naming the test and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.api import facade as api
from devformance_nb.core import events as ev
from devformance_nb.core.eventlog import read_events
from devformance_nb.plugin.marker import problem, written

pytest_plugins = ["pytester"]

BUDGETED = """
import pytest

@pytest.mark.devformance(max_queries=3)
def test_budgeted():
    pass

def test_free():
    pass

@pytest.mark.devformance(max_queries=7)
class TestClass:
    def test_from_the_class(self):
        pass

    @pytest.mark.devformance(max_queries=0)
    def test_closest_wins(self):
        pass
"""

BAD = """
import pytest

def test_fine():
    pass

@pytest.mark.devformance(max_queries="3")
def test_bad_value():
    pass

@pytest.mark.devformance(max_querys=3)
def test_bad_keyword():
    pass
"""


def run_child(pytester: pytest.Pytester, source: str, *args: str) -> tuple[list, int, str]:
    """Run ``source`` as a launched child would; its events, exit status and output."""
    pytester.makepyfile(test_suite=source)
    events_path = pytester.path / "events.jsonl"
    pytester._monkeypatch.setenv("DEVFORMANCE_EVENTS", str(events_path))
    pytester._monkeypatch.setenv("DEVFORMANCE_RUN_ID", "run-1")
    pytester._monkeypatch.setenv("DEVFORMANCE_FILE", "test_suite.py")
    pytester._monkeypatch.setenv(
        "DEVFORMANCE_OPTIONS", json.dumps({"capture_sql": False, "coverage": False})
    )
    result = pytester.runpytest_subprocess("-p", "devformance_nb.plugin", *args)
    output = result.stdout.str() + result.stderr.str()
    return list(read_events(events_path)), int(result.ret), output


def budgets(events: list) -> dict[str, int | None]:
    """Each test's ``max_queries``, as its teardown event carries it."""
    return {
        e.nodeid.split("::", 1)[1]: e.max_queries
        for e in events
        if isinstance(e, ev.TestPhase) and e.phase == "teardown"
    }


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        ((), {"max_queries": "3"}, "whole number of statements, 0 or more"),
        ((), {"max_queries": -1}, "whole number of statements, 0 or more"),
        ((), {"max_queries": 2.5}, "whole number of statements, 0 or more"),
        ((), {"max_queries": True}, "whole number of statements, 0 or more"),
        ((), {"max_querys": 3}, "unknown keyword 'max_querys'; it takes max_queries only"),
        ((3,), {}, "it takes keywords only"),
    ],
)
def test_a_bad_marker_says_how_to_write_it(args: tuple, kwargs: dict, says: str) -> None:
    message = problem(args, kwargs)
    assert says in message
    assert "e.g. @pytest.mark.devformance(max_queries=3)" in message


def test_good_markers_have_no_problem() -> None:
    assert problem((), {"max_queries": 0}) == problem((), {"max_queries": 12}) == ""
    assert problem((), {}) == "", "a bare marker sets no budget"
    assert written((), {"max_queries": "3"}) == "@pytest.mark.devformance(max_queries='3')"


def test_the_teardown_event_carries_the_closest_budget(pytester: pytest.Pytester) -> None:
    events, ret, _ = run_child(pytester, BUDGETED, "--strict-markers")
    assert ret == 0
    assert budgets(events) == {
        "test_budgeted": 3,
        "test_free": None,
        "TestClass::test_from_the_class": 7,
        "TestClass::test_closest_wins": 0,
    }
    others = [e for e in events if isinstance(e, ev.TestPhase) and e.phase != "teardown"]
    assert others and all(e.max_queries is None for e in others), "sent once, at teardown"


def test_a_bad_marker_fails_collection_naming_each_test(pytester: pytest.Pytester) -> None:
    events, ret, output = run_child(pytester, BAD)
    assert ret == 2, "interrupted at collection, as --strict-markers does"
    assert not [e for e in events if isinstance(e, ev.TestPhase)], "no test of the file ran"
    (error,) = [e for e in events if isinstance(e, ev.CollectError)]
    assert error.nodeid == "test_suite.py"
    assert (
        "test_suite.py::test_bad_value: @pytest.mark.devformance(max_queries='3') is not valid: "
        "max_queries must be a whole number of statements, 0 or more, "
        "e.g. @pytest.mark.devformance(max_queries=3)"
    ) in error.message
    assert "test_suite.py::test_bad_keyword: " in error.message
    assert "unknown keyword 'max_querys'" in error.message
    assert "test_fine" not in error.message
    assert "ERROR collecting test_suite.py" in output
    assert "test_suite.py::test_bad_value: @pytest.mark.devformance" in output
    done = events[-1]
    assert isinstance(done, ev.FileDone) and done.counts == {"error": 1}


def test_a_bad_marker_added_after_collection_fails_its_setup(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        if item.name == "test_marked":
            item.add_marker(pytest.mark.devformance(max_queries=-2))
"""
    )
    source = "def test_marked():\n    pass\n\ndef test_other():\n    pass\n"
    events, ret, _ = run_child(pytester, source)
    assert ret == 1
    phases = {(e.nodeid, e.phase): e for e in events if isinstance(e, ev.TestPhase)}
    marked = phases["test_suite.py::test_marked", "setup"]
    assert marked.category == "error"
    assert marked.message == (  # pytest's line for a pytest.fail
        "Failed: test_suite.py::test_marked: "
        "@pytest.mark.devformance(max_queries=-2) is not valid: "
        "max_queries must be a whole number of statements, 0 or more, "
        "e.g. @pytest.mark.devformance(max_queries=3)"
    )
    assert phases["test_suite.py::test_other", "call"].category == "passed"


def test_strict_markers_accept_it_without_the_launcher(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x=BUDGETED)
    pytester._monkeypatch.delenv("DEVFORMANCE_EVENTS", raising=False)
    result = pytester.runpytest_subprocess("-p", "devformance_nb.plugin", "--strict-markers")
    result.assert_outcomes(passed=4)
    listed = pytester.runpytest_subprocess("-p", "devformance_nb.plugin", "--markers")
    assert "@pytest.mark.devformance(max_queries=N)" in listed.stdout.str()


def test_a_run_stores_each_tests_budget_and_replay_keeps_it(
    make_project: MakeProject, tmp_path: Path, executor: str
) -> None:
    root = make_project({"tests/test_budget.py": BUDGETED})
    run = api.run_tests(
        root=root,
        workers=1,
        executor=executor,
        coverage=False,
        pytest_args=["--strict-markers"],
        query_budgets={"tests/*": 20, "tests/test_budget.py::*": 5},
    )
    assert run.status == "passed"
    sql = "SELECT nodeid, max_queries FROM tests WHERE run_id = ? ORDER BY nodeid"
    expected = [
        {"nodeid": "tests/test_budget.py::TestClass::test_closest_wins", "max_queries": 0},
        {"nodeid": "tests/test_budget.py::TestClass::test_from_the_class", "max_queries": 7},
        {"nodeid": "tests/test_budget.py::test_budgeted", "max_queries": 3},
        {"nodeid": "tests/test_budget.py::test_free", "max_queries": None},
    ]
    assert api.open_store(run.db).query(sql, [run.id]) == expected
    # the patterns the gate reads: with the run's settings, in their table order
    (row,) = api.open_store(run.db).query("SELECT config FROM runs WHERE run_id = ?", [run.id])
    stored = json.loads(row["config"])["query_budgets"]
    assert list(stored.items()) == [("tests/*", 20), ("tests/test_budget.py::*", 5)]
    # a run directory loaded later (devformance ingest) keeps the budgets too
    other = tmp_path / "replayed.duckdb"
    api.ingest(run.run_dir, other)
    assert api.open_store(other).query(sql, [run.id]) == expected


def test_query_budgets_from_pyproject_are_stored_with_the_run(make_project: MakeProject) -> None:
    root = make_project(
        {
            "pyproject.toml": (
                "[tool.pytest.ini_options]\n"
                "[tool.devformance]\n"
                'query_budgets = {"tests/api/*" = 12, "tests/test_reports.py::*" = 40}\n'
            ),
            "tests/test_a.py": "def test_a():\n    pass\n",
        }
    )
    run = api.run_tests(root=root, workers=1, executor="spawn", coverage=False)
    (row,) = api.open_store(run.db).query("SELECT config FROM runs WHERE run_id = ?", [run.id])
    assert json.loads(row["config"])["query_budgets"] == {
        "tests/api/*": 12,
        "tests/test_reports.py::*": 40,
    }


def test_a_bad_marker_in_a_run_is_stored_with_its_fix(
    make_project: MakeProject, executor: str
) -> None:
    root = make_project({"tests/test_bad.py": BAD, "tests/test_ok.py": BUDGETED})
    run = api.run_tests(root=root, workers=2, executor=executor, coverage=False)
    status = {fs.key: fs.status for fs in run.files}
    assert status["tests/test_ok.py"] == "passed", "one file's bad marker stops that file only"
    assert status["tests/test_bad.py"] != "passed"
    store = api.open_store(run.db)
    (bad,) = store.query(
        "SELECT status, errors, message FROM test_files WHERE run_id = ? AND file = ?",
        [run.id, "tests/test_bad.py"],
    )
    assert bad["errors"] == 1
    assert (
        "tests/test_bad.py::test_bad_value: @pytest.mark.devformance(max_queries='3') "
        "is not valid: max_queries must be a whole number of statements, 0 or more, "
        "e.g. @pytest.mark.devformance(max_queries=3)"
    ) in bad["message"]
    lines = store.query(
        "SELECT text FROM output_lines WHERE run_id = ? AND file = ?",
        [run.id, "tests/test_bad.py"],
    )
    assert any("test_bad_value: @pytest.mark.devformance" in r["text"] for r in lines)
