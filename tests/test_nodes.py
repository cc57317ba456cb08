"""Worker identities: each slot's children look like pytest-xdist's worker of that slot."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.api import facade as api
from devformance_nb.core.contract import ENV_CHILD_PID, ENV_WORKER_INPUT
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import TestFile
from devformance_nb.logic.importscan import uses_controller_hooks
from devformance_nb.run.executor import Job
from devformance_nb.run.nodes import NodeController, NodeInputs, local_inputs, xdist_installed


@pytest.mark.quick
def test_a_job_carries_its_slot_like_an_xdist_worker(tmp_path: Path) -> None:
    job = Job(
        "run-1",
        TestFile("tests/test_a.py", tmp_path / "tests" / "test_a.py"),
        tmp_path,
        RunDir(tmp_path / "run"),
        worker=1,
        workers=3,
        worker_input={"workerid": "gw1", "follower_ident": "test_x"},
    )
    env = job.environment()
    assert env["PYTEST_XDIST_WORKER"] == "gw1"
    assert env["PYTEST_XDIST_WORKER_COUNT"] == "3"
    assert env["PYTEST_XDIST_TESTRUNUID"] == "run-1"
    assert json.loads(env[ENV_WORKER_INPUT]) == {"workerid": "gw1", "follower_ident": "test_x"}
    bare = Job("run-1", job.test_file, tmp_path, RunDir(tmp_path / "run"))
    assert ENV_WORKER_INPUT not in bare.environment()  # no xdist: the variables only


@pytest.mark.quick
def test_a_child_pid_in_the_launchers_environment_is_not_passed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # set when the launcher runs inside a child (or after a test used the plugin in-process):
    # passed on, it made every child think it was a nested xdist worker (.gw0 data files)
    monkeypatch.setenv(ENV_CHILD_PID, "1")
    job = Job("run-1", TestFile("t.py", tmp_path / "t.py"), tmp_path, RunDir(tmp_path / "r"))
    assert ENV_CHILD_PID not in job.environment()


@pytest.mark.quick
def test_inputs_per_slot() -> None:
    inputs = NodeInputs([{"workerid": "gw0"}, {"workerid": "gw1"}])
    assert inputs.for_slot(1) == {"workerid": "gw1"}
    assert inputs.for_slot(2) is None and NodeInputs().for_slot(0) is None
    assert NodeInputs(None, ["boom"]).meta() == {"xdist_nodes": ["boom"]}
    assert xdist_installed(sys.executable)  # a test dependency


# two files run at once, each holding a scratch folder named after its worker for as long as
# the other runs; the controller-side hook names a follower database, as SQLAlchemy's does
SHARED = {
    "tests/conftest.py": """
        import os
        import pathlib
        import time

        import pytest

        FOLLOWER = None

        def pytest_configure_node(node):
            node.workerinput["follower_ident"] = "follower_" + node.gateway.id

        def pytest_testnodedown(node, error):
            pathlib.Path("down_" + node.workerinput["follower_ident"]).write_text("")

        def pytest_configure(config):
            global FOLLOWER
            if hasattr(config, "workerinput"):
                FOLLOWER = config.workerinput["follower_ident"]

        @pytest.fixture
        def follower():
            return FOLLOWER

        @pytest.fixture
        def scratch(worker_id, request):
            folder = pathlib.Path(f"scratch_{worker_id}")
            folder.mkdir()  # fails if another file holds the same folder now
            pathlib.Path(f"started_{request.node.name}").write_text("")
            yield folder
            folder.rmdir()

        def wait_for(path):
            deadline = time.monotonic() + 120
            while not pathlib.Path(path).exists():
                assert time.monotonic() < deadline, f"{path} never appeared"
                time.sleep(0.05)
    """,
    "tests/test_one.py": """
        import os
        from conftest import wait_for

        def test_one(scratch, worker_id, follower):
            wait_for("started_test_two")
            assert os.environ["PYTEST_XDIST_WORKER"] == worker_id
            assert os.environ["PYTEST_XDIST_WORKER_COUNT"] == "2"
            assert follower == "follower_" + worker_id
    """,
    "tests/test_two.py": """
        from conftest import wait_for

        def test_two(scratch, worker_id, follower):
            wait_for("started_test_one")
            assert follower == "follower_" + worker_id
    """,
}


@pytest.mark.parametrize("executor", ["forkserver", "spawn"])
def test_two_files_at_once_keep_apart_by_worker_identity(
    make_project: MakeProject, executor: str
) -> None:
    root = make_project(
        {**SHARED, "pyproject.toml": "[tool.pytest.ini_options]\npythonpath=['tests']\n"}
    )
    coverage = executor == "forkserver"
    run = api.run_tests(root=root, workers=2, executor=executor, coverage=coverage)
    assert {f.key: f.status for f in run.files} == {
        "tests/test_one.py": "passed",
        "tests/test_two.py": "passed",
    }, run.summary()
    if coverage:  # a child with a worker identity is no nested xdist worker: no .gw0 suffix
        assert sorted(p.suffix for p in run.run_dir.glob("*.coverage*")) == [".coverage"] * 2
    # the controller took both nodes down when the run ended
    assert sorted(p.name for p in root.glob("down_*")) == ["down_follower_gw0", "down_follower_gw1"]


def test_a_broken_controller_leaves_the_variables_and_says_why(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "tests/conftest.py": """
                def pytest_configure_node(node):
                    node.workerinput["engine"] = object()  # nothing JSON can carry
            """,
            "tests/test_env.py": """
                import os
                def test_env():
                    assert os.environ["PYTEST_XDIST_WORKER"] == "gw0"
            """,
        }
    )
    controller = NodeController(root, sys.executable, 1, "run-x", (), [root / "tests"])
    try:
        inputs = controller.inputs()
    finally:
        controller.close()
    assert inputs.inputs is None
    assert any("workerinput" in problem for problem in inputs.problems), inputs.problems
    assert controller.proc.returncode is not None
    assert not os.path.exists(controller._tmp.name)


@pytest.mark.quick
def test_local_inputs_are_what_xdist_gives_without_hooks() -> None:
    inputs = local_inputs(2, "run-9", ["devformance", "run"])
    assert inputs.for_slot(1) == {
        "workerid": "gw1",
        "workercount": 2,
        "testrunuid": "run-9",
        "mainargv": ["devformance", "run"],
    }


@pytest.mark.quick
def test_controller_hooks_are_found_where_pytest_would_load_them(
    make_project: MakeProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "lib" / "site-packages"
    (site / "hooked").mkdir(parents=True)
    (site / "hooked" / "__init__.py").write_text("")
    (site / "hooked" / "plugin.py").write_text("def pytest_configure_node(node):\n    pass\n")
    monkeypatch.syspath_prepend(os.fspath(site))
    plain = make_project({"tests/conftest.py": "import json\n", "tests/test_a.py": ""})
    assert not uses_controller_hooks(plain, ignore=("pytest_cov",))
    (plain / "tests" / "conftest.py").write_text("pytest_plugins = ['hooked.plugin']\n")
    assert uses_controller_hooks(plain, ignore=("pytest_cov",))  # a plugin the conftest names
    (plain / "tests" / "conftest.py").write_text(
        "def pytest_testnodedown(node, error):\n    pass\n"
    )
    assert uses_controller_hooks(plain, ignore=("pytest_cov",))  # the conftest's own
    # pytest-cov implements one (its controller sets up coverage of the workers)
    (plain / "tests" / "conftest.py").write_text("")
    assert uses_controller_hooks(plain) == (importlib.util.find_spec("pytest_cov") is not None)


def test_without_controller_hooks_no_controller_runs_and_workers_still_have_ids(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(
        {
            "tests/test_id.py": """
                import os

                def test_id(worker_id, testrun_uid, request):
                    assert worker_id == os.environ["PYTEST_XDIST_WORKER"] == "gw0"
                    assert request.config.workerinput["workercount"] == 1
                    assert testrun_uid == os.environ["PYTEST_XDIST_TESTRUNUID"]
            """,
        }
    )
    started: list[object] = []
    monkeypatch.setattr(NodeController, "__init__", lambda *a, **k: started.append(a))
    run = api.run_tests(root=root, workers=1, coverage=True)
    assert run.status == "passed", run.summary()
    assert started == []  # built in the launcher: no extra pytest process
