"""The Dask executor on a real ``distributed.LocalCluster``: two worker processes, one thread each.

Every run here is a real one: pytest children started by Dask tasks on the workers, their
output and events streamed back through Dask's event topics, the run recorded in DuckDB.
"""

from __future__ import annotations

import os
import shutil
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import distributed
import pytest
from conftest import BOOKSHOP, MakeProject
from fakes import Recorder

from devformance_nb.api import facade as api
from devformance_nb.cli import main as cli_main
from devformance_nb.core import events as ev
from devformance_nb.core.errors import ClusterUnreachableError
from devformance_nb.core.rundir import RunDir
from devformance_nb.run.executor import descendants
from devformance_nb.ui.liveview import LiveRunView

#: how long a condition may take to come true before a test gives up on it
DEADLINE = 120.0


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with distributed.Client(cluster) as the_client:
        yield the_client
    cluster.close()


def until(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it is true (its value) or fail after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its parent does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def children_of(markers: list[Path]) -> list[int]:
    """The pids the gated tests wrote (each child's own, forked or spawned on its worker)."""
    return [int(m.read_text()) for m in markers if m.exists() and m.read_text()]


def gated_test(gate: Path, marker: Path) -> str:
    """A test that writes its pid to ``marker`` and waits for ``gate`` to exist."""
    return textwrap.dedent(
        f"""
        import os, pathlib, time

        def test_waits_for_the_gate():
            pathlib.Path({os.fspath(marker)!r}).write_text(str(os.getpid()))
            while not pathlib.Path({os.fspath(gate)!r}).exists():
                time.sleep(0.05)
        """
    )


def kill_worker_running(run: api.Run, key: str, client: Any) -> None:
    """SIGKILL the worker process running file ``key`` (its child, forked from the worker's warm
    server or spawned by it, is not the worker's own pid: ask the worker)."""
    address = until(lambda: run.state.file(key).worker_address, f"{key} placed on a worker")
    pid = client.run(os.getpid, workers=[address])[address]
    os.kill(pid, signal.SIGKILL)


def copy_bookshop(target: Path, settings: str = "") -> Path:
    shutil.copytree(BOOKSHOP, target, ignore=shutil.ignore_patterns(".devformance", "__pycache__"))
    if settings:
        pyproject = target / "pyproject.toml"
        text = pyproject.read_text(encoding="utf-8")
        pyproject.write_text(text.replace("[tool.devformance]", f"[tool.devformance]\n{settings}"))
    return target


def per_file(run: api.Run) -> dict[str, tuple[str, dict[str, int], int]]:
    return {fs.key: (fs.status, dict(fs.counts), fs.queries) for fs in run.files}


@pytest.fixture(scope="module")
def bookshop_local(tmp_path_factory: pytest.TempPathFactory) -> api.Run:
    root = copy_bookshop(tmp_path_factory.mktemp("local") / "bookshop")
    return api.run_tests(root=root, executor="forkserver", workers=2, store=False)


@pytest.mark.parametrize(("ship", "warm"), [("auto", True), ("archive", True), ("auto", False)])
def test_the_bookshop_on_dask_equals_the_local_run(
    tmp_path: Path, client: Any, bookshop_local: api.Run, ship: str, warm: bool
) -> None:
    settings = f'dask_ship = "{ship}"\ndask_warm = {str(warm).lower()}'
    root = copy_bookshop(tmp_path / "bookshop", settings)
    (root / ".ruff_cache").mkdir(
        exist_ok=True
    )  # a cache the archive leaves out (not in a clean clone)
    (root / ".ruff_cache" / "CACHEDIR.TAG").write_text(
        "Signature: 8a477f597d28d172789f06886806bc55"
    )
    run = api.run_tests(root=root, client=client, db=tmp_path / "dask.duckdb")
    assert run.status == "passed" == bookshop_local.status
    assert per_file(run) == per_file(bookshop_local)
    assert run.state.coverage == pytest.approx(bookshop_local.state.coverage)
    assert run.state.executor == "dask" and run.state.workers == 2
    note = run.state.meta["executor_note"]
    if ship == "archive":
        assert "zip archive" in note and "left out: .ruff_cache" in note
    else:
        assert "shared filesystem" in note
    # each file's row names the worker that ran it; the local run's has none
    rows = api.open_store(tmp_path / "dask.duckdb").query(
        "SELECT file, worker_address, queries FROM test_files WHERE run_id = ?", [run.id]
    )
    workers = set(client.nthreads())
    assert {row["worker_address"] for row in rows} <= workers
    assert {row["file"]: row["queries"] for row in rows} == {
        key: queries for key, (_, _, queries) in per_file(bookshop_local).items()
    }
    assert all(not fs.worker_address for fs in bookshop_local.files)
    # what each child read came back too (change-based selection needs it): as the local run's
    local_dir, dask_dir = RunDir.at(bookshop_local.run_dir), RunDir.at(run.run_dir)
    for fs in run.files:
        read = dask_dir.reads_path(fs.key).read_text().splitlines()
        assert sorted(read) == sorted(local_dir.reads_path(fs.key).read_text().splitlines())
    # the run directory alone rebuilds the same rows: events, samples, coverage all came back
    columns = "file, status, tests, queries, worker_address, coverage_percent, peak_rss"
    api.ingest(run.run_dir, db=tmp_path / "again.duckdb")
    live, again = (
        api.open_store(tmp_path / name).query(f"SELECT {columns} FROM test_files ORDER BY file")
        for name in ("dask.duckdb", "again.duckdb")
    )
    assert again == live


def test_an_archive_ships_the_project_without_what_it_leaves_out(
    make_project: MakeProject, tmp_path: Path, client: Any
) -> None:
    here = tmp_path / "project"  # where make_project writes it: the launcher's root
    root = make_project(
        {
            "pyproject.toml": (
                "[tool.pytest.ini_options]\npythonpath = ['.']\n"
                "[tool.coverage.run]\nsource = ['app']\n"
                "[tool.devformance]\ndask_ship = 'archive'\n"
            ),
            "app/__init__.py": "def double(x):\n    return 2 * x\n\ndef never():\n    return 0\n",
            ".git/HEAD": "ref: refs/heads/main\n",
            ".venv/pyvenv.cfg": "home = /usr/bin\n",
            ".venv/lib/big.py": "x = 1\n",
            # a tests folder inside a virtualenv-looking folder still goes: it holds tests
            "suite/pyvenv.cfg": "home = /usr/bin\n",
            "suite/test_app.py": (
                "import os, pathlib\nfrom app import double\n\n"
                "def test_runs_on_a_copy():\n"
                f"    assert pathlib.Path.cwd() != pathlib.Path({os.fspath(here)!r})\n"
                "    assert not os.path.exists('.git') and not os.path.exists('.venv')\n"
                "    assert double(2) == 4\n"
            ),
        }
    )
    # pytest itself skips a folder holding pyvenv.cfg: the file is named to run it
    run = api.run_tests(root / "suite" / "test_app.py", root=root, client=client, store=False)
    assert run.status == "passed", [fs.crash or fs.errors for fs in run.files]
    note = run.state.meta["executor_note"]
    assert "zip archive" in note
    assert ".git" in note and "virtualenvs (.venv)" in note and "suite" not in note
    (fs,) = run.files
    assert fs.coverage_info is not None and fs.coverage_info.result is not None
    assert [f.source_file for f in fs.coverage_info.result.files] == ["app/__init__.py"]
    assert run.state.coverage == pytest.approx(100 * 3 / 4)  # never() is not run


def test_output_reaches_the_observers_while_the_file_runs(
    make_project: MakeProject, tmp_path: Path, client: Any
) -> None:
    gate, marker = tmp_path / "gate", tmp_path / "started"
    root = make_project({"tests/test_gated.py": gated_test(gate, marker)})
    recorder = Recorder()
    run = api.start_run(root=root, client=client, observers=[recorder], store=False)
    try:
        until(
            lambda: any(
                isinstance(e, ev.Output) and "test session starts" in e.text
                for e in list(recorder.events)
            ),
            "the file's first output lines",
        )
        assert "file_finished" not in recorder.kinds(), "the gate is shut: it is still running"
        until(lambda: marker.exists(), "the test to start")
        placed = until(
            lambda: [e for e in list(recorder.events) if isinstance(e, ev.FilePlaced)],
            "the file's placement on a worker",
        )
        assert placed[0].address in client.nthreads()
    finally:
        gate.touch()
        run.wait(DEADLINE)
    assert run.status == "passed"
    assert recorder.kinds("tests/test_gated.py")[-1] == "file_finished"


def test_the_live_view_shows_a_dask_files_output_while_it_runs_and_names_its_worker(
    make_project: MakeProject, tmp_path: Path, client: Any
) -> None:
    gate, marker = tmp_path / "gate", tmp_path / "started"
    root = make_project({"tests/test_gated.py": gated_test(gate, marker)})
    view = LiveRunView(root=root, client=client, db=tmp_path / "view.duckdb")
    run = view.start()
    try:
        pane = until(lambda: view.pane_for("tests/test_gated.py"), "the file's pane")
        until(lambda: marker.exists(), "the test to start")
        # the pane's terminal gets pytest's header while the gate holds the file open
        until(
            lambda: "test session starts" in str(pane.pane.outputs),
            "the file's output in its pane",
        )
        assert view.running and run.state.file("tests/test_gated.py").status == "running"
        address = until(lambda: run.state.file("tests/test_gated.py").worker_address, "a worker")
        until(lambda: f"on Dask worker {address}" in pane.head.value, "the worker in the pane")
        assert address in client.nthreads()
    finally:
        gate.touch()
        run.wait(DEADLINE)
    assert run.status == "passed" and run.state.executor == "dask"


def test_a_worker_killed_mid_file_crashes_that_file_only(
    make_project: MakeProject, tmp_path: Path, client: Any
) -> None:
    gate, marker = tmp_path / "gate", tmp_path / "started"
    root = make_project(
        {
            "tests/test_doomed.py": gated_test(gate, marker),
            "tests/test_fine.py": "def test_fine():\n    assert True\n",
            "tests/test_fine_too.py": "def test_fine():\n    assert True\n",
        }
    )
    run = api.start_run(root=root, client=client, store=False)
    try:
        until(marker.exists, "the doomed test to start")
        kill_worker_running(run, "tests/test_doomed.py", client)
        run.wait(DEADLINE)
    finally:
        gate.touch()  # a rerun Dask might have started must never hang
    files = {fs.key: fs for fs in run.files}
    assert files["tests/test_doomed.py"].status == "crashed"
    assert files["tests/test_fine.py"].status == "passed"
    assert files["tests/test_fine_too.py"].status == "passed"
    assert run.status == "failed"
    log = RunDir.at(run.run_dir).log_path("tests/test_doomed.py").read_text()
    assert "left the cluster while it ran this file" in log
    assert "left the cluster" in files["tests/test_doomed.py"].crash
    until(lambda: not any(map(alive, children_of([marker]))), "the doomed child to be gone")
    until(lambda: len(client.nthreads()) == 2, "the nanny to bring the worker back")


def test_a_retry_runs_the_file_again_and_records_it_once(
    make_project: MakeProject, tmp_path: Path, client: Any
) -> None:
    gate, marker = tmp_path / "gate", tmp_path / "started"
    body = gated_test(gate, marker).replace(
        "def test_waits_for_the_gate():",
        "def test_first():\n    pass\n\ndef test_waits_for_the_gate():",
    )
    root = make_project(
        {
            "pyproject.toml": "[tool.pytest.ini_options]\n[tool.devformance]\ndask_retries = 1\n",
            "tests/test_retried.py": body,
        }
    )
    run = api.start_run(root=root, client=client, store=False)
    until(marker.exists, "the first attempt")
    marker.unlink()
    kill_worker_running(run, "tests/test_retried.py", client)
    until(marker.exists, "the second attempt")
    gate.touch()
    run.wait(DEADLINE)
    (fs,) = run.files
    assert fs.status == "passed"
    assert fs.counts == {"passed": 2} and fs.done == 2, "the dead attempt's tests never count"
    until(lambda: len(client.nthreads()) == 2, "the nanny to bring the worker back")


def test_stop_cancels_the_tasks_and_kills_the_children(
    make_project: MakeProject, tmp_path: Path, client: Any
) -> None:
    gate = tmp_path / "gate"
    files = {
        f"tests/test_wait_{n}.py": gated_test(gate, tmp_path / f"started-{n}") for n in range(4)
    }
    root = make_project(files)
    run = api.start_run(root=root, client=client, store=False)
    try:
        markers = lambda: sorted(tmp_path.glob("started-*"))  # noqa: E731
        until(lambda: len(children_of(markers())) == 2, "two files to be running")
        assert all(map(alive, children_of(markers())))
        run.stop()
        run.wait(DEADLINE)
        assert run.status == "stopped"
        statuses = sorted(fs.status for fs in run.files)
        assert statuses == ["not_run", "not_run", "stopped", "stopped"]
        until(lambda: not any(map(alive, children_of(markers()))), "every child to be killed")
        assert len(markers()) == 2, "no file started after the stop"
    finally:
        gate.touch()


def test_an_unreachable_scheduler_is_refused_before_anything_runs(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project({"tests/test_a.py": "def test_a():\n    pass\n"})
    with pytest.raises(ClusterUnreachableError, match="could not reach the Dask scheduler"):
        api.run_tests(root=root, scheduler="tcp://127.0.0.1:1")
    assert not (root / ".devformance").exists(), "no run, no store"
    code = cli_main(["run", "--root", str(root), "--scheduler", "tcp://127.0.0.1:1"])
    assert code == ClusterUnreachableError.exit_code
    assert "dask scheduler" in capsys.readouterr().err


def test_without_a_client_a_local_cluster_is_made_and_closed(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": "def test_a():\n    pass\n"})
    before = set(descendants(os.getpid()))
    run = api.run_tests(root=root, executor="dask", workers=1, store=False)
    assert run.status == "passed"
    (fs,) = run.files
    assert fs.worker_address.startswith("tcp://") and fs.pid > 0
    until(lambda: set(descendants(os.getpid())) <= before, "the run's cluster to be closed")
