"""SQL capture wired into the real plugin, in a real pytest child (pytester)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devformance_nb.core import events as ev
from devformance_nb.core.eventlog import read_events

pytest_plugins = ["pytester"]

CONFTEST = """
import sqlite3
import pytest

DB = sqlite3.connect(":memory:", check_same_thread=False)
DB.execute("CREATE TABLE t (x)")

@pytest.fixture
def db():
    DB.execute("INSERT INTO t VALUES (1)")
    yield DB
    DB.execute("DELETE FROM t")
"""

SUITE = """
import sys

def test_count(db):
    assert db.execute("SELECT count(*) FROM t").fetchone() == (1,)

def test_sqlalchemy_stays_unimported():
    assert "sqlalchemy" not in sys.modules
"""


def run_child(pytester: pytest.Pytester, tmp_path: Path, options: dict[str, Any]) -> list[ev.Event]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_shop=SUITE)
    events_path = tmp_path / "events.jsonl"
    pytester._monkeypatch.setenv("DEVFORMANCE_EVENTS", str(events_path))
    pytester._monkeypatch.setenv("DEVFORMANCE_RUN_ID", "run-1")
    pytester._monkeypatch.setenv("DEVFORMANCE_FILE", "test_shop.py")
    options = {"root": str(pytester.path), **options}
    pytester._monkeypatch.setenv("DEVFORMANCE_OPTIONS", json.dumps(options))
    result = pytester.runpytest_subprocess("-p", "devformance_nb.plugin")
    assert result.ret == 0, result.stdout.str()
    found = list(read_events(events_path))
    assert all(isinstance(event, ev.Event) for event in found)
    return [event for event in found if isinstance(event, ev.Event)]


def test_statements_of_every_phase(pytester: pytest.Pytester, tmp_path: Path) -> None:
    found = run_child(pytester, tmp_path, {})
    queries = [e for e in found if isinstance(e, ev.Query)]
    node = "test_shop.py::test_count"
    assert [(q.sql.split()[0], q.nodeid, q.phase, q.caller) for q in queries] == [
        ("CREATE", "", "collect", "conftest.py:5 <module>"),
        ("INSERT", node, "setup", "conftest.py:9 db"),
        ("SELECT", node, "call", "test_shop.py:4 test_count"),
        ("DELETE", node, "teardown", "conftest.py:11 db"),
    ]
    assert all(q.run_id == "run-1" and q.file == "test_shop.py" for q in queries)
    assert [q.qseq for q in queries] == [1, 2, 3, 4]
    assert all(q.params is None for q in queries)
    seqs = [e.seq for e in found]
    assert seqs == sorted(seqs)
    call = next(e for e in found if isinstance(e, ev.TestPhase) and e.phase == "call")
    assert queries[2].seq < call.seq  # a phase's statements come before its report


def test_params_when_the_project_opts_in(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_params="""
        import sqlite3

        def test_secret():
            sqlite3.connect(":memory:").execute("SELECT ?", ("s3cret",))
        """
    )
    found = run_child(pytester, tmp_path, {"capture_params": True})
    params = [e.params for e in found if isinstance(e, ev.Query) and e.sql == "SELECT ?"]
    assert params == ["('s3cret',)"]


def test_no_statements_when_capture_is_off(pytester: pytest.Pytester, tmp_path: Path) -> None:
    found = run_child(pytester, tmp_path, {"capture_sql": False})
    assert not any(isinstance(e, ev.Query) for e in found)
    assert any(isinstance(e, ev.FileDone) for e in found)


def test_a_tests_locals_are_freed_when_it_returns(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """The stack walk keeps the running test's frame for its statements; once the phase ends
    the test's locals are the test's again (a connection it relied on closing, here an object
    whose weak reference the next test checks)."""
    pytester.makepyfile(
        test_locals="""
        import gc, sqlite3, weakref

        REFS = []

        class Marker:
            pass

        def test_sends_statements():
            marker = Marker()
            REFS.append(weakref.ref(marker))
            db = sqlite3.connect(":memory:")
            for _ in range(3):
                db.execute("SELECT 1")

        def test_its_locals_are_gone():
            gc.collect()
            assert REFS[0]() is None
        """
    )
    events_path = tmp_path / "events.jsonl"
    pytester._monkeypatch.setenv("DEVFORMANCE_EVENTS", str(events_path))
    pytester._monkeypatch.setenv("DEVFORMANCE_OPTIONS", json.dumps({"root": str(pytester.path)}))
    result = pytester.runpytest_subprocess("-p", "devformance_nb.plugin")
    assert result.ret == 0, result.stdout.str()
    queries = [e for e in read_events(events_path) if isinstance(e, ev.Query)]
    assert [q.caller for q in queries] == ["test_locals.py:13 test_sends_statements"] * 3
    assert len({q.stack_hash for q in queries}) == 1
