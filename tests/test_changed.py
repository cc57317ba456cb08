"""Change-based selection on real runs: ``run_tests(changed=True)`` and ``devformance run
--changed`` on generated projects with real pytest children and a real store
(store/selection.py, run/selectdata.py, plugin/reads.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.api.facade import Run, run_tests
from devformance_nb.store.database import Store

ORDERS = """\
RATE = 2


def total(n):
    return n * RATE


def discount(n):
    return n - 1
"""

PROJECT = {
    "pyproject.toml": """\
        [tool.pytest.ini_options]
        testpaths = ["tests"]
        [tool.coverage.run]
        source = ["app"]
        """,
    "app/__init__.py": "",
    "app/orders.py": ORDERS,
    "data/greeting.txt": "hello\n",
    "tests/conftest.py": "",
    "tests/test_total.py": """\
        from app.orders import total

        def test_total():
            assert total(2) == 4
        """,
    "tests/test_discount.py": """\
        from app.orders import discount

        def test_discount():
            assert discount(2) == 1
        """,
    "tests/test_data.py": """\
        from pathlib import Path

        def test_greeting():
            path = Path(__file__).parent.parent / "data" / "greeting.txt"
            assert path.read_text().strip() == "hello"
        """,
    "tests/test_plain.py": """\
        import sqlite3

        def test_plain():
            assert sqlite3.connect(":memory:").execute("SELECT 1").fetchone() == (1,)
        """,
}
ALL = ["tests/test_data.py", "tests/test_discount.py", "tests/test_plain.py", "tests/test_total.py"]


def ran(run: Run) -> dict[str, str]:
    """The files the run ran, each with the reason it ran."""
    assert run.selection is not None
    return {d.file: d.reason for d in run.selection.decisions if d.run}


def changed(root: Path, executor: str = "spawn", **kw: object) -> Run:
    return run_tests(root=root, executor=executor, changed=True, **kw)  # type: ignore[arg-type]


@pytest.fixture
def project(make_project: MakeProject) -> Path:
    root = make_project(PROJECT)
    first = run_tests(root=root, executor="spawn")
    assert first.status == "passed"
    return root


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_nothing_changed_runs_nothing_and_carries_every_file(project: Path) -> None:
    run = changed(project)
    assert ran(run) == {}
    store = Store(project / ".devformance" / "devformance.duckdb")
    first = store.query("SELECT run_id FROM runs ORDER BY started LIMIT 1")[0]["run_id"]
    files = store.query(
        "SELECT file, status, carried_from, tests FROM test_files WHERE run_id = ? ORDER BY file",
        [run.id],
    )
    assert [f["file"] for f in files] == ALL
    assert all(f["carried_from"] == first and f["status"] == "passed" for f in files)
    tests = store.query(
        "SELECT nodeid, outcome, carried_from FROM tests WHERE run_id = ?", [run.id]
    )
    assert len(tests) == 4 and all(t["carried_from"] == first for t in tests)
    row = store.query(
        "SELECT status, files, tests, passed, selection FROM runs WHERE run_id = ?", [run.id]
    )[0]
    assert row == {
        "status": "passed",
        "files": 4,
        "tests": 4,
        "passed": 4,
        "selection": f"changed since run {first}",
    }


def test_a_function_change_runs_only_the_file_that_executed_it(
    project: Path, executor: str
) -> None:
    edit(project, "app/orders.py", "return n - 1", "return n - 2")
    run = changed(project, executor)
    reasons = ran(run)
    assert list(reasons) == ["tests/test_discount.py"]
    assert reasons["tests/test_discount.py"].startswith("app/orders.py:9 changed, executed by")
    assert run.status == "failed"
    # the store after --changed holds every file: the one run, the others carried
    store = Store(project / ".devformance" / "devformance.duckdb")
    rows = store.query(
        "SELECT file, status, carried_from, selected_because FROM test_files"
        " WHERE run_id = ? ORDER BY file",
        [run.id],
    )
    assert [r["file"] for r in rows] == ALL
    by_file = {r["file"]: r for r in rows}
    assert by_file["tests/test_discount.py"]["carried_from"] is None
    assert by_file["tests/test_discount.py"]["status"] == "failed"
    assert (
        by_file["tests/test_discount.py"]["selected_because"] == reasons["tests/test_discount.py"]
    )
    assert all(by_file[f]["carried_from"] for f in ALL if f != "tests/test_discount.py")
    # what compare reads stays whole: the carried file's statements, the coverage union
    first = store.query("SELECT run_id FROM runs ORDER BY started LIMIT 1")[0]["run_id"]
    count = "SELECT count(*) AS n FROM queries WHERE run_id = ? AND file = 'tests/test_plain.py'"
    assert store.query(count, [run.id]) == store.query(count, [first]) == [{"n": 1}]
    totals = "SELECT coverage_statements, coverage_covered FROM runs WHERE run_id = ?"
    assert store.query(totals, [run.id]) == store.query(totals, [first])
    lines = "SELECT source_file, covered FROM coverage_files WHERE run_id = ? ORDER BY 1"
    assert store.query(lines, [run.id]) == store.query(lines, [first])
    # a failed file runs again next time, whatever changed
    again = changed(project)
    assert ran(again) == {"tests/test_discount.py": f"failed in run {run.id}"}


def test_a_data_file_read_by_one_file_runs_only_that_file(project: Path, executor: str) -> None:
    (project / "data" / "greeting.txt").write_text("bye\n")
    run = changed(project, executor)
    assert ran(run) == {
        "tests/test_data.py": "data/greeting.txt changed, opened by this file in run "
        + run.selection.decisions[0].reason.rsplit(" ", 1)[-1]  # type: ignore[union-attr]
    }
    assert run.status == "failed"


def test_moving_code_runs_nothing_a_module_level_change_runs_its_importers(
    project: Path,
) -> None:
    edit(project, "app/orders.py", "RATE = 2\n", "# the rate\nRATE = 2\n\n")
    assert ran(changed(project)) == {}
    edit(project, "app/orders.py", "RATE = 2", "RATE = 3")
    reasons = ran(changed(project))
    assert sorted(reasons) == ["tests/test_discount.py", "tests/test_total.py"]
    assert all(r.startswith("app/orders.py:1-") for r in reasons.values())


@pytest.mark.parametrize(
    ("rel", "text"),
    [("tests/conftest.py", "X = 1\n"), ("pyproject.toml", "[tool.devformance]\nworkers = 2\n")],
)
def test_a_change_every_file_depends_on_runs_them_all(project: Path, rel: str, text: str) -> None:
    with open(project / rel, "a") as f:
        f.write(text)
    reasons = ran(changed(project))
    assert sorted(reasons) == ALL
    assert all(r == f"{rel} changed (affects every file)" for r in reasons.values())


def test_a_new_test_file_and_the_test_file_itself(project: Path) -> None:
    (project / "tests" / "test_new.py").write_text("def test_new():\n    assert True\n")
    edit(project, "tests/test_plain.py", "SELECT 1", "SELECT 1 AS one")
    reasons = ran(changed(project))
    assert reasons == {
        "tests/test_new.py": "new: no recorded run of this file",
        "tests/test_plain.py": "tests/test_plain.py changed (the test file itself)",
    }


def test_a_renamed_function_and_a_deleted_line(project: Path) -> None:
    edit(project, "app/orders.py", "return n * RATE", "result = n * RATE\n    return result")
    assert list(ran(changed(project))) == ["tests/test_total.py"]
    edit(
        project, "app/orders.py", "    result = n * RATE\n    return result", "    return n * RATE"
    )
    assert list(ran(changed(project))) == ["tests/test_total.py"]
    edit(project, "app/orders.py", "def discount(n):", "def reduce(n):")
    edit(project, "tests/test_discount.py", "discount", "reduce")
    # a rename changes the module's names: every file that imported the module runs
    reasons = ran(changed(project))
    assert sorted(reasons) == ["tests/test_discount.py", "tests/test_total.py"]
    assert reasons["tests/test_total.py"].startswith("app/orders.py:1-")


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_since_a_git_revision(project: Path) -> None:
    git(project, "init", "-q")
    (project / ".gitignore").write_text(".devformance/\n")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "base")
    edit(project, "app/orders.py", "return n * RATE", "return n * RATE * 1")
    (project / "data" / "greeting.txt").write_text("bye\n")
    run = run_tests(root=project, executor="spawn", since="HEAD")
    assert run.selection is not None and run.selection.basis == "changed since git revision HEAD"
    reasons = ran(run)
    assert sorted(reasons) == ["tests/test_data.py", "tests/test_total.py"]
    assert reasons["tests/test_total.py"].startswith("app/orders.py:5 changed")


def test_the_command_prints_why(project: Path) -> None:
    edit(project, "app/orders.py", "return n * RATE", "return n * RATE + 0")
    done = subprocess.run(
        [sys.executable, "-m", "devformance_nb.cli", "run", "--changed", "--executor", "spawn"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "TERM": "dumb"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "  run    tests/test_total.py: app/orders.py:5 changed, executed by" in done.stdout
    assert "3 of 4 files not run" in done.stdout
    # the live total is the file run now; the stored one, carried files included, the suite's
    assert "(the file run now, not the carried ones" in done.stdout
    store = Store(project / ".devformance" / "devformance.duckdb")
    full, now = (r["coverage_percent"] for r in store.query(
        "SELECT coverage_percent FROM runs ORDER BY started"))  # fmt: skip
    assert full == pytest.approx(now)
    assert f"devformance: coverage with the carried files: {now:.1f}% of" in done.stdout


def test_an_installed_package_runs_every_file(make_project: MakeProject, tmp_path: Path) -> None:
    # the children's own interpreter: a venv seeing this one's packages, whose site-packages
    # the test can add a distribution to (never this interpreter's own)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        check=True,
    )
    python = str(venv / "bin" / "python")
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([python, "-c", ask], capture_output=True, text=True).stdout.strip())
    ours = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True).stdout
    (site / "ours.pth").write_text(f"import site; site.addsitedir({ours.strip()!r})\n")
    root = make_project(PROJECT)
    assert run_tests(root=root, executor="spawn", python=python).status == "passed"
    assert ran(changed(root, python=python)) == {}  # nothing changed yet

    (site / "fakedist-1.0.dist-info").mkdir()  # pip install fakedist, as far as we look
    reasons = ran(changed(root, python=python))
    assert sorted(reasons) == ALL
    assert set(reasons.values()) == {"the installed packages changed (affects every file)"}


def test_crashed_timed_out_and_flaky_files_run_again(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(
        {
            **PROJECT,
            ".gitignore": ".devformance/\n",
            "tests/test_flaky.py": """\
                import os

                def test_flaky():
                    assert os.environ.get("DEVFORMANCE_TEST_FLAKY") != "fail"
                """,
            "tests/test_crash.py": """\
                import os

                def test_crash():
                    if os.environ.get("DEVFORMANCE_TEST_CRASH"):
                        os._exit(70)  # the child dies mid-test
                """,
            "tests/test_hang.py": """\
                import os
                import threading

                def test_hang():
                    if os.environ.get("DEVFORMANCE_TEST_CRASH"):
                        threading.Event().wait()  # until the timeout kills it
                """,
        }
    )
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    monkeypatch.setenv("DEVFORMANCE_TEST_FLAKY", "fail")
    first = run_tests(root=root, executor="spawn")
    assert first.state.file("tests/test_flaky.py").status == "failed"
    monkeypatch.delenv("DEVFORMANCE_TEST_FLAKY")
    monkeypatch.setenv("DEVFORMANCE_TEST_CRASH", "1")
    second = run_tests(root=root, executor="spawn", timeout=5)
    assert second.state.file("tests/test_flaky.py").status == "passed"  # flaky on this commit
    assert second.state.file("tests/test_crash.py").status == "crashed"
    assert second.state.file("tests/test_hang.py").status == "timeout"
    monkeypatch.delenv("DEVFORMANCE_TEST_CRASH")
    assert ran(changed(root)) == {
        "tests/test_crash.py": f"crashed in run {second.id}",
        "tests/test_flaky.py": "flaky (passed and failed on one commit)",
        "tests/test_hang.py": f"timed out in run {second.id}",
    }
