"""Real runs on small generated projects: every fault ends cleanly and keeps what it can."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.api import facade as api
from devformance_nb.core.errors import NoTestsFoundError, PathNotFoundError
from devformance_nb.core.rundir import RunDir

PASS = "def test_ok():\n    assert True\n"


def statuses(run: api.Run) -> dict[str, str]:
    return {fs.key: fs.status for fs in run.files}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_crashes_syntax_errors_and_import_errors(make_project: MakeProject, executor: str) -> None:
    root = make_project(
        {
            "tests/test_ok.py": PASS,
            "tests/test_exit.py": "import os\ndef test_x():\n    os._exit(3)\n",
            "tests/test_signal.py": (
                "import os, signal\ndef test_x():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            ),
            "tests/test_syntax.py": "def test_x(:\n",
            "tests/test_import.py": "import not_a_module_xyz\n",
        }
    )
    run = api.run_tests(root=root, workers=2, executor=executor)
    assert statuses(run) == {
        "tests/test_ok.py": "passed",
        "tests/test_exit.py": "crashed",
        "tests/test_signal.py": "crashed",
        "tests/test_syntax.py": "error",
        "tests/test_import.py": "error",
    }
    files = {fs.key: fs for fs in run.files}
    assert "exited with code 3" in files["tests/test_exit.py"].crash
    assert "signal 9" in files["tests/test_signal.py"].crash
    assert "memory" not in files["tests/test_signal.py"].crash, "killed by itself, not for memory"
    assert "SyntaxError" in files["tests/test_syntax.py"].errors[0]
    assert "not_a_module_xyz" in files["tests/test_import.py"].errors[0]
    assert run.status == "failed" and run.exit_code == 1
    rows = {r["file"]: r for r in run_rows(run)}
    assert {key: row["status"] for key, row in rows.items()} == statuses(run)
    assert "exited with code 3" in rows["tests/test_exit.py"]["message"]
    assert "signal 9" in rows["tests/test_signal.py"]["message"]
    assert "SyntaxError" in rows["tests/test_syntax.py"]["message"]
    assert "not_a_module_xyz" in rows["tests/test_import.py"]["message"]
    (stored_run,) = api.open_store(run.db).query(
        "SELECT status, exit_code FROM runs WHERE run_id = ?", [run.id]
    )
    assert stored_run == {"status": "failed", "exit_code": 1}


def run_rows(run: api.Run) -> list[dict]:
    return api.open_store(run.db).query(
        "SELECT * FROM test_files WHERE run_id = ? ORDER BY file", [run.id]
    )


HANG = """
import subprocess, sys, threading
def test_hang(tmp_path):
    sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
    child = subprocess.Popen(sleep)  # in the file's process group
    # in a session of its own: out of reach of a kill of the file's process group, and
    # holding the file's output pipe open
    loose = subprocess.Popen(sleep, start_new_session=True)
    with open({pidfile!r}, "w") as fh:
        fh.write(f"{{child.pid}} {{loose.pid}}")
    print("grandchildren started", flush=True)
    threading.Event().wait()  # forever: only the timeout ends this file
"""
#: generous for the file that must pass on a loaded machine; the hanging one never ends
TIMEOUT = 12


def test_timeout_kills_the_file_and_its_grandchildren(
    make_project: MakeProject, tmp_path: Path, executor: str
) -> None:
    pidfile = tmp_path / "grandchild.pid"
    root = make_project(
        {"tests/test_hang.py": HANG.format(pidfile=str(pidfile)), "tests/test_ok.py": PASS}
    )
    run = api.start_run(
        root=root, workers=2, timeout=TIMEOUT, executor=executor, pytest_args=["-s"]
    )
    run.wait(timeout=600)  # the hang never ends by itself: the run ends through the timeout
    assert run.done
    assert statuses(run) == {"tests/test_hang.py": "timeout", "tests/test_ok.py": "passed"}
    grandchildren = [int(pid) for pid in pidfile.read_text().split()]
    deadline = time.monotonic() + 60
    try:
        while any(map(pid_alive, grandchildren)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in grandchildren if pid_alive(pid)] == []
    finally:  # never leave one behind, even when the launcher did
        for pid in grandchildren:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert (
        f"timed out after {TIMEOUT} s"
        in {fs.key: fs for fs in run.files}["tests/test_hang.py"].crash
    )
    store = api.open_store(run.db)
    rows = {r["file"]: r for r in run_rows(run)}
    assert {key: row["status"] for key, row in rows.items()} == statuses(run)
    assert f"timed out after {TIMEOUT} s" in rows["tests/test_hang.py"]["message"]
    # what the hanging file printed before the timeout is stored with it
    lines = store.query(
        "SELECT text FROM output_lines WHERE run_id = ? AND file = 'tests/test_hang.py'",
        [run.id],
    )
    assert any("grandchildren started" in line["text"] for line in lines)


def test_stop_in_the_middle_keeps_finished_files(make_project: MakeProject, executor: str) -> None:
    root = make_project(
        {
            "tests/test_1_quick.py": PASS,
            "tests/test_2_hang.py": "import time\ndef test_hang():\n    time.sleep(600)\n",
            "tests/test_3_never.py": PASS,
        }
    )
    run = api.start_run(root=root, workers=1, executor=executor)
    deadline = time.monotonic() + 60
    hang = None
    while time.monotonic() < deadline:
        hang = run.state.files.get("tests/test_2_hang.py")
        if hang is not None and hang.status == "running" and hang.collected:
            break
        time.sleep(0.05)
    assert hang is not None and hang.pid is not None
    run.stop()
    run.stop()  # twice is harmless
    run.wait(60)
    assert run.done
    assert statuses(run) == {
        "tests/test_1_quick.py": "passed",
        "tests/test_2_hang.py": "stopped",
        "tests/test_3_never.py": "not_run",
    }
    assert run.status == "stopped" and run.exit_code == 2
    assert not pid_alive(hang.pid)
    stored = api.open_store(run.db).query("SELECT status FROM runs WHERE run_id = ?", [run.id])
    assert stored == [{"status": "stopped"}]
    assert [(r["file"], r["status"]) for r in run_rows(run)] == [
        ("tests/test_1_quick.py", "passed"),
        ("tests/test_2_hang.py", "stopped"),
    ]


NOISY = """
import sys
def test_noise():
    sys.stdout.buffer.write(b"bad bytes \\xff\\xfe here\\n")
    sys.stdout.buffer.write(b"y" * (10 * 1024 * 1024) + b"\\n")
    print("after the long line")
"""


def test_invalid_utf8_and_a_10mb_line(make_project: MakeProject, executor: str) -> None:
    root = make_project({"tests/test_noise.py": NOISY})
    run = api.run_tests(root=root, workers=1, pytest_args=["-s"], executor=executor)
    assert statuses(run) == {"tests/test_noise.py": "passed"}
    store = api.open_store(run.db)
    texts = [
        r["text"]
        for r in store.query(
            "SELECT text FROM output_lines WHERE run_id = ? ORDER BY line", [run.id]
        )
    ]
    # with -s the first write shares a line with pytest's progress output
    assert any(t.endswith("bad bytes \ufffd\ufffd here") for t in texts)
    assert "after the long line" in texts
    long_line = next(t for t in texts if t.startswith("yyyy"))
    assert "truncated" in long_line and len(long_line) < 20_000
    log = Path(run_rows(run)[0]["log_path"]).read_bytes()
    assert b"y" * (10 * 1024 * 1024) in log  # the full line stays on disk


def test_missing_path_and_empty_folder(make_project: MakeProject) -> None:
    root = make_project({"tests/test_ok.py": PASS, "docs/readme.txt": "hi\n"})
    with pytest.raises(PathNotFoundError):
        api.run_tests(["nope"], root=root)
    with pytest.raises(NoTestsFoundError):
        api.run_tests(["docs"], root=root)
    assert not (root / ".devformance" / "devformance.duckdb").exists()


DIES_AFTER_SQL = """
import ctypes, os, signal, sqlite3

def test_first():
    assert True

def test_dies():
    db = sqlite3.connect(":memory:")
    for n in range({n}):
        db.execute("SELECT ?", (n,))
    print("about to die", flush=True)
    {death}
"""

DEATHS = {
    "tests/test_exit.py": "os._exit(3)",
    "tests/test_sigkill.py": "os.kill(os.getpid(), signal.SIGKILL)",
    "tests/test_segfault.py": "ctypes.string_at(0)",
}


def test_what_a_child_recorded_before_it_died_is_stored(
    make_project: MakeProject, executor: str
) -> None:
    n = 50
    root = make_project(
        {key: DIES_AFTER_SQL.format(n=n, death=death) for key, death in DEATHS.items()}
    )
    run = api.run_tests(
        root=root, workers=2, executor=executor, capture_sql=True, pytest_args=["-s"]
    )
    assert statuses(run) == dict.fromkeys(DEATHS, "crashed")
    store = api.open_store(run.db)
    assert {r["file"]: r["status"] for r in run_rows(run)} == statuses(run)
    for key in DEATHS:
        lines = store.query(
            "SELECT text FROM output_lines WHERE run_id = ? AND file = ? ORDER BY line",
            [run.id, key],
        )
        assert any(line["text"].endswith("about to die") for line in lines), key
        queries = store.query(
            "SELECT nodeid, phase, sql, qseq FROM queries WHERE run_id = ? AND file = ? "
            "ORDER BY qseq",
            [run.id, key],
        )
        assert [(q["nodeid"], q["phase"], q["sql"]) for q in queries] == [
            (f"{key}::test_dies", "call", "SELECT ?")
        ] * n, key
        assert [q["qseq"] for q in queries] == list(range(1, n + 1))
        tests = store.query(
            "SELECT nodeid FROM tests WHERE run_id = ? AND file = ? AND outcome = 'passed'",
            [run.id, key],
        )
        assert [t["nodeid"] for t in tests] == [f"{key}::test_first"], key
        # the crash names the test that was running, and a segfault keeps its traceback
        (message,) = [r["message"] for r in run_rows(run) if r["file"] == key]
        assert f"while {key}::test_dies was running" in message, message
        if key == "tests/test_segfault.py":
            assert "(SIGSEGV)" in message and "Fatal Python error: Segmentation fault" in message
            assert re.search(r'File ".*test_segfault\.py", line 12 in test_dies', message)
            assert "Extension modules" not in message
        # the dead child's mapped events file was sealed: no unwritten room left in it
        events = RunDir.at(run.run_dir).events_path(key).read_bytes()
        assert events.endswith(b"\n") and b"\0" not in events, key


UNENCODABLE = """
import os, sqlite3

def test_odd_text():
    db = sqlite3.connect(":memory:")
    try:
        db.execute("SELECT '\\ud800'")  # sqlite3 cannot encode it either
    except UnicodeEncodeError:
        pass
    db.execute("SELECT 'after'")
    os.write(1, b"bad bytes \\xff\\xfe here\\n")
"""


def test_text_utf8_cannot_encode_is_stored_replaced(
    make_project: MakeProject, executor: str
) -> None:
    root = make_project(
        {
            "pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-s"\n',  # output as is
            "tests/test_odd.py": UNENCODABLE,
        }
    )
    run = api.run_tests(root=root, workers=1, executor=executor, capture_sql=True)
    assert statuses(run) == {"tests/test_odd.py": "passed"}
    store = api.open_store(run.db)
    queries = store.query("SELECT sql FROM queries WHERE run_id = ? ORDER BY qseq", [run.id])
    assert [q["sql"] for q in queries] == ["SELECT '?'", "SELECT 'after'"]
    lines = store.query("SELECT text FROM output_lines WHERE run_id = ?", [run.id])
    assert any("bad bytes \ufffd\ufffd here" in line["text"] for line in lines)


SAME_NAME = """
import sqlite3

def test_{folder}():
    sqlite3.connect(":memory:").execute("SELECT '{folder}'")
    print("output of {folder}")
"""


def test_one_basename_in_two_folders_keeps_two_files(
    make_project: MakeProject, tmp_path: Path, executor: str
) -> None:
    keys = {folder: f"tests/{folder}/test_same.py" for folder in ("alpha", "beta")}
    root = make_project({key: SAME_NAME.format(folder=f) for f, key in keys.items()})
    run = api.run_tests(
        root=root, workers=2, executor=executor, capture_sql=True, pytest_args=["-s"]
    )
    assert statuses(run) == dict.fromkeys(keys.values(), "passed")
    rows = run_rows(run)
    assert len({Path(r["log_path"]) for r in rows}) == 2  # each its own log
    copy = tmp_path / "copy.duckdb"
    api.ingest(run.run_dir, copy)  # the run directory keeps them apart too
    for store in (api.open_store(run.db), api.open_store(copy)):
        for folder, key in keys.items():
            other = "beta" if folder == "alpha" else "alpha"
            tests = store.query("SELECT nodeid, outcome FROM tests WHERE file = ?", [key])
            assert tests == [{"nodeid": f"{key}::test_{folder}", "outcome": "passed"}]
            sql = store.query("SELECT nodeid, sql FROM queries WHERE file = ?", [key])
            assert sql == [{"nodeid": f"{key}::test_{folder}", "sql": f"SELECT '{folder}'"}]
            text = "\n".join(
                r["text"]
                for r in store.query("SELECT text FROM output_lines WHERE file = ?", [key])
            )
            assert f"output of {folder}" in text and f"output of {other}" not in text
