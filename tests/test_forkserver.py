"""The fork-server executor: children as isolated as spawn's, from a warm server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.api import facade as api
from devformance_nb.core import events as ev
from devformance_nb.core.errors import DiscoveryError
from devformance_nb.core.eventlog import read_events
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import Discovery, TestFile
from devformance_nb.run.executor import Job
from devformance_nb.run.forkproject import known_failures
from devformance_nb.run.forkserver import (
    ForkServer,
    ForkServerExecutor,
    shared_executor,
)

PASSING = "def test_ok():\n    pass\n"

STATE = {
    "app/__init__.py": "",
    "app/registry.py": "ITEMS = []\n",
    "tests/conftest.py": "import app.registry\n",
    "tests/test_1_writes.py": """
        import os
        import app.registry
        def test_write():
            app.registry.ITEMS.append("from test 1")
            os.environ["LEAKED_BY_TEST_1"] = "yes"
    """,
    "tests/test_2_reads.py": """
        import os
        import app.registry
        def test_clean_module_state():
            assert app.registry.ITEMS == []
        def test_clean_environment():
            assert "LEAKED_BY_TEST_1" not in os.environ
    """,
}


def test_children_do_not_share_module_state_or_environment(make_project: MakeProject) -> None:
    root = make_project(
        {**STATE, "pyproject.toml": "[tool.pytest.ini_options]\npythonpath=['.']\n"}
    )
    for coverage in (False, True):  # conftest preloaded in the server, or loaded per child
        run = api.run_tests(root=root, workers=1, executor="forkserver", coverage=coverage)
        assert {fs.key: fs.status for fs in run.files} == {
            "tests/test_1_writes.py": "passed",
            "tests/test_2_reads.py": "passed",
        }, run.summary()
        # the server imported the plugin before pytest's rewriter: no warning in any log
        for log in run.run_dir.glob("*.log"):
            assert "PytestAssertRewriteWarning" not in log.read_text(), log.read_text()
    assert "LEAKED_BY_TEST_1" not in os.environ


def test_the_server_is_reused_until_the_project_changes(make_project: MakeProject) -> None:
    root = make_project(
        {"tests/conftest.py": "X = 1\n", "tests/test_a.py": "def test_a():\n    pass\n"}
    )
    python = os.environ.get("PYTHON", "") or __import__("sys").executable
    executor = shared_executor(root, python, [], False)
    assert shared_executor(root, python, [], False) is executor
    try:
        api.run_tests(root=root, workers=1, executor="forkserver", coverage=False)
        first = executor._server
        assert first is not None and first.alive()
        api.run_tests(root=root, workers=1, executor="forkserver", coverage=False)
        assert executor._server is first  # warm server kept across runs
        conftest = root / "tests" / "conftest.py"
        conftest.write_text("X = 2\n")
        os.utime(conftest, (conftest.stat().st_atime, conftest.stat().st_mtime + 5))
        run = api.run_tests(root=root, workers=1, executor="forkserver", coverage=False)
        assert run.status == "passed"
        assert executor._server is not first and not first.alive()  # restarted on the change
    finally:
        executor.shutdown()


def test_preloaded_project_modules_keep_their_import_time_coverage(
    make_project: MakeProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With coverage on, the server measures from before its first import: a preloaded
    project module is imported once, there, and its import-time lines count in every file."""
    imports = tmp_path / "imports.log"
    monkeypatch.setenv("IMPORTS_LOG", str(imports))
    test = """
        from app.mod import used

        def test_used():
            assert used() == 1
    """
    root = make_project(
        {
            "pyproject.toml": (
                "[tool.pytest.ini_options]\npythonpath=['.']\n"
                "[tool.devformance]\npreload = ['app.mod', 'json']\n"
            ),
            "app/__init__.py": "",
            "app/mod.py": """
                import os

                with open(os.environ["IMPORTS_LOG"], "a") as log:
                    log.write(f"{os.getpid()}\\n")
                VALUE = 1

                def used():
                    return VALUE

                def unused():
                    return 0
            """,
            "tests/test_a.py": test,
            "tests/test_b.py": test,
        }
    )
    covered = {}
    for name in ("spawn", "forkserver"):
        imports.write_text("")
        run = api.run_tests(root=root, workers=2, executor=name)
        covered[name] = api.open_store(run.db).query(
            "SELECT test_file, covered, missing_lines FROM coverage_by_test_file "
            "WHERE run_id = ? AND source_file = 'app/mod.py' ORDER BY test_file",
            [run.id],
        )
        imported = imports.read_text().split()
        # spawn: each child imports it; the warm server: once, for both children
        assert len(imported) == (2 if name == "spawn" else 1), imported
    # import-time lines (the import, the with block, VALUE, both defs) and used()'s body
    assert covered["forkserver"] == covered["spawn"]
    assert [(row["test_file"], row["covered"]) for row in covered["spawn"]] == [
        ("tests/test_a.py", 7),
        ("tests/test_b.py", 7),
    ]


def test_is_project_module(tmp_path: Path) -> None:
    from devformance_nb.run.forkserve import is_project_module

    assert not is_project_module("json", os.fspath(tmp_path))
    assert not is_project_module("pytest", os.fspath(tmp_path))
    assert not is_project_module("no_such_module_anywhere", os.fspath(tmp_path))
    assert is_project_module("devformance_nb.plugin", os.fspath(Path(api.__file__).parent.parent))


def test_a_request_of_several_megabytes_forks_its_child(
    make_project: MakeProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 4 << 20
    root = make_project(
        {
            "tests/test_big.py": f"""
                import os
                def test_big_environment():
                    assert os.environ["DEVFORMANCE_TEST_BIG"] == "z" * {size}
            """,
        }
    )
    server = ForkServer(root, sys.executable, {"preload": [], "coverage": False, "root": str(root)})
    try:
        # only the request carries it: an exec'd process could not take a 4 MB variable
        monkeypatch.setenv("DEVFORMANCE_TEST_BIG", "z" * size)
        run_dir = RunDir(tmp_path / "run")
        run_dir.create()
        key = "tests/test_big.py"
        job = Job("run-big", TestFile(key, root / key), root, run_dir)
        child = server.fork(job)
        output = b""
        while chunk := os.read(child.output_fd(), 65536):
            output += chunk
        assert child.wait(60) == 0, output.decode("utf-8", "replace")
        child.close()
        done = [e for e in read_events(job.events_path) if isinstance(e, ev.FileDone)]
        assert [d.exitstatus for d in done] == [0]
        assert b"1 passed" in output
    finally:
        server.close()


FAITHFUL = {
    # an installed library whose pytest plugin binds to its configuration module at import, the
    # way SQLAlchemy's does: to the copy a conftest's bootstrap installed, if it ran first
    "site-packages/fakeorm/__init__.py": "",
    "site-packages/fakeorm/testing/__init__.py": "",
    "site-packages/fakeorm/testing/plugin/__init__.py": "",
    "site-packages/fakeorm/testing/plugin/plugin_base.py": "configured = []\n",
    "site-packages/fakeorm/testing/plugin/pytestplugin.py": """
        try:
            import fakeorm_plugin_base as plugin_base
        except ImportError:
            from fakeorm.testing.plugin import plugin_base

        def pytest_configure(config):
            plugin_base.configured.append(config.rootpath.name)
    """,
    "app/__init__.py": "",
    "app/backends.py": "CONFIGURED = []\n",
    "tests/conftest.py": """
        import importlib.util
        import os
        import sys

        import app.backends

        # the bootstrap: load the plugin's configuration module under its own name first
        folder = importlib.util.find_spec("fakeorm").submodule_search_locations[0]
        path = os.path.join(folder, "testing", "plugin", "plugin_base.py")
        spec = importlib.util.spec_from_file_location("fakeorm_plugin_base", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["fakeorm_plugin_base"] = module
        spec.loader.exec_module(module)

        from fakeorm.testing.plugin.pytestplugin import *  # noqa: F403

        def pytest_sessionstart(session):
            app.backends.CONFIGURED.append("sqlite")

        def pytest_generate_tests(metafunc):
            # tests generated from state a plugin set up at configure time
            if "backend" in metafunc.fixturenames:
                metafunc.parametrize("backend", list(app.backends.CONFIGURED))
    """,
    "tests/test_backends.py": """
        import sys
        import app.backends

        def test_configured_once(backend):
            assert app.backends.CONFIGURED == [backend] == ["sqlite"]

        def test_plugin_bound_to_the_bootstrapped_module():
            assert sys.modules["fakeorm_plugin_base"].configured == ["project"]
    """,
}


def test_children_start_as_a_fresh_pytest_would(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(
        {**FAITHFUL, "pyproject.toml": "[tool.pytest.ini_options]\npythonpath=['.']\n"}
    )
    monkeypatch.setenv("PYTHONPATH", os.fspath(root / "site-packages"))
    plain = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 0 and "2 passed" in plain.stdout, plain.stdout
    for executor, coverage in (("forkserver", False), ("forkserver", True), ("spawn", False)):
        run = api.run_tests(root=root, workers=1, executor=executor, coverage=coverage)
        assert [(f.status, f.counts) for f in run.files] == [("passed", {"passed": 2})], (
            executor,
            coverage,
            run.summary(),
            [f.key for f in run.files],
        )


HALF_IMPORTED = {
    # an installed library whose optional part fails to import the first time and "works" the
    # second, because the first attempt left a module behind (sqlalchemy.ext.asyncio without
    # greenlet did this): plain pytest reports the import error; so must every child
    "site-packages/halflib/__init__.py": "",
    "site-packages/halflib/state.py": "LOADED = True\n",
    "site-packages/halflib/optional.py": """
        import sys
        if "halflib.state" not in sys.modules:
            import halflib.state
            raise ImportError("halflib.optional needs a dependency that is not installed")
    """,
    "app/__init__.py": "",
    "app/uses.py": "import halflib.optional\n",
    "tests/test_uses.py": """
        import app.uses
        def test_uses():
            pass
    """,
}


def test_an_import_that_failed_in_the_server_fails_in_each_child_too(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(
        {**HALF_IMPORTED, "pyproject.toml": "[tool.pytest.ini_options]\npythonpath=['.']\n"}
    )
    monkeypatch.setenv("PYTHONPATH", os.fspath(root / "site-packages"))
    plain = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 2 and "needs a dependency" in plain.stdout, plain.stdout
    for executor in ("forkserver", "spawn"):
        run = api.run_tests(root=root, workers=1, executor=executor, coverage=False)
        assert [(f.status, f.counts) for f in run.files] == [("error", {"error": 1})], (
            executor,
            run.summary(),
        )


def test_a_server_remembers_the_imports_that_failed_and_the_next_one_starts_once(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing import costs a second start of the server; the next run's server is told
    the failures up front (a Django project's models fail without settings every time)."""
    root = make_project(
        {**HALF_IMPORTED, "pyproject.toml": "[tool.pytest.ini_options]\npythonpath=['.']\n"}
    )
    monkeypatch.setenv("PYTHONPATH", os.fspath(root / "site-packages"))
    servers = []
    for _ in range(2):
        executor = ForkServerExecutor(root, sys.executable, [], False)
        try:
            server = executor._ensure()
            assert server is not None
            servers.append((server.restarts, server.skipped))
        finally:
            executor.shutdown()
    assert servers == [(1, ["halflib.optional"]), (0, ["halflib.optional"])]
    assert known_failures(root, sys.executable) == ["halflib.optional"]
    assert known_failures(root, "/another/python") == []  # another interpreter: its own
    # a module that no longer fails is still left to the children, who import it fine
    (root / "site-packages" / "halflib" / "optional.py").write_text("OK = 1\n")
    run = api.run_tests(root=root, workers=1, executor="forkserver", coverage=False)
    assert [f.status for f in run.files] == ["passed"], run.summary()


def test_a_config_file_written_by_a_test_does_not_kill_running_files(
    make_project: MakeProject,
) -> None:
    # a and b start together; b writes a pyproject.toml (as tests of config loaders do) and
    # ends; c starts while a still runs and lets a finish. Checking the server against the
    # project at c's start used to restart it, killing a with SIGKILL.
    wait_for = """
        import pathlib, time
        def wait_for(path):
            deadline = time.monotonic() + 120
            while not pathlib.Path(path).exists():
                assert time.monotonic() < deadline, f"{path} never appeared"
                time.sleep(0.05)
    """
    root = make_project(
        {
            "tests/waiting.py": wait_for,
            "tests/test_a.py": """
                from waiting import wait_for
                def test_a():
                    wait_for("c_started")
            """,
            "tests/test_b.py": """
                import pathlib
                def test_b():
                    pathlib.Path("scratch").mkdir(exist_ok=True)
                    pathlib.Path("scratch/pyproject.toml").write_text("[tool.x]\\n")
            """,
            "tests/test_c.py": """
                import pathlib
                def test_c():
                    pathlib.Path("c_started").write_text("")
            """,
            "pyproject.toml": "[tool.pytest.ini_options]\npythonpath=['tests']\n",
        }
    )
    run = api.run_tests(root=root, workers=2, executor="forkserver", coverage=False)
    assert {f.key: f.status for f in run.files} == {
        "tests/test_a.py": "passed",
        "tests/test_b.py": "passed",
        "tests/test_c.py": "passed",
    }, run.summary()


def test_editing_a_preloaded_module_restarts_the_server(make_project: MakeProject) -> None:
    root = make_project(
        {
            "pyproject.toml": (
                "[tool.pytest.ini_options]\npythonpath=['.']\n"
                "[tool.devformance]\npreload = ['app.mod']\n"
            ),
            "app/__init__.py": "",
            "app/mod.py": "VALUE = 1\n",
            "expected.txt": "1",
            "tests/test_mod.py": """
                import pathlib
                from app.mod import VALUE

                def test_value():
                    assert VALUE == int(pathlib.Path("expected.txt").read_text())
            """,
        }
    )
    executor = shared_executor(root, sys.executable, ["app.mod"], False)
    try:
        first = api.run_tests(root=root, workers=1, executor="forkserver", coverage=False)
        assert first.status == "passed", first.summary()
        server = executor._server
        assert server is not None and str((root / "app" / "mod.py").resolve()) in server.imported
        mod = root / "app" / "mod.py"
        mod.write_text("VALUE = 2\n")
        os.utime(mod, (mod.stat().st_atime, mod.stat().st_mtime + 5))
        (root / "expected.txt").write_text("2")
        second = api.run_tests(root=root, workers=1, executor="forkserver", coverage=False)
        assert second.status == "passed", second.summary()  # not the old module's value
        assert executor._server is not server and not server.alive()
    finally:
        executor.shutdown()


def test_a_preload_that_leaves_a_thread_running_is_never_forked(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "pyproject.toml": (
                "[tool.pytest.ini_options]\npythonpath=['.']\n"
                "[tool.devformance]\npreload = ['app.poller']\n"
            ),
            "app/__init__.py": "",
            "app/poller.py": """
                import threading
                STOP = threading.Event()
                threading.Thread(target=STOP.wait, name="app-poller", daemon=True).start()
            """,
            "tests/test_a.py": "def test_a():\n    pass\n",
        }
    )
    executor = shared_executor(root, sys.executable, ["app.poller"], False)
    try:
        with pytest.warns(RuntimeWarning, match="app-poller"):
            run = api.run_tests(root=root, workers=1, executor="forkserver", coverage=False)
        assert run.status == "passed", run.summary()
        assert executor._server is None and "app-poller" in executor.unsafe  # spawned instead
    finally:
        executor.shutdown()


def test_installed_plugins_are_warm_and_rewritten_as_pytest_would(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "tests/test_warm.py": """
                import sys

                def test_xdist_plugin_came_from_the_server(request):
                    module = sys.modules["xdist.plugin"]
                    hook = request.config.pluginmanager.rewrite_hook
                    # rewritten, as this pytest would have, but by the server's importer
                    assert isinstance(module.__loader__, type(hook))
                    assert module.__loader__ is not hook
            """,
        }
    )
    run = api.run_tests(root=root, workers=1, executor="forkserver", coverage=False)
    assert run.status == "passed", run.summary()
    for log in run.run_dir.glob("*.log"):
        assert "PytestAssertRewriteWarning" not in log.read_text(), log.read_text()


def _server_up(executor: ForkServerExecutor, root: Path) -> None:
    """Start the executor's server as a run's first child would, and end that run."""
    child = executor.start_command(
        [sys.executable, "-m", "pytest", "--version"], dict(os.environ), root
    )
    assert child.wait(60) == 0
    child.close()
    executor.close()  # the run ends: the next one checks the server again


def test_fork_now_never_starts_a_server_and_forks_from_a_current_one(
    make_project: MakeProject,
) -> None:
    root = make_project({"tests/conftest.py": "X = 1\n", "tests/test_a.py": PASSING})
    executor = ForkServerExecutor(root, sys.executable, [], False)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    try:
        assert executor.fork_now(command, dict(os.environ), root) is None
        assert executor._server is None  # asked, not started
        _server_up(executor, root)
        server = executor._server
        child = executor.fork_now(command, dict(os.environ), root)
        assert child is not None and child.wait(60) == 0
        child.close()
        executor.close()
        # the project changed since: the stale server is dropped, nothing forked from it
        conftest = root / "tests" / "conftest.py"
        conftest.write_text("X = 2\n")
        os.utime(conftest, (conftest.stat().st_atime, conftest.stat().st_mtime + 5))
        assert executor.fork_now(command, dict(os.environ), root) is None
        assert server is not None and not server.alive() and executor._server is None
    finally:
        executor.shutdown()


def test_a_listing_forked_from_the_server_finds_what_a_new_process_finds(
    make_project: MakeProject,
) -> None:
    root = make_project(
        {
            "tests/conftest.py": "collect_ignore = ['test_ignored.py']\n",
            "tests/test_a.py": PASSING,
            "tests/sub/test_b.py": PASSING,
            "tests/test_ignored.py": PASSING,
        }
    )
    executor = ForkServerExecutor(root, sys.executable, [], False)
    try:
        with Discovery(root, fork=executor.fork_now) as first:
            spawned = first.files()
        assert not first.forked  # no server yet: a process of its own
        _server_up(executor, root)
        with Discovery(root, fork=executor.fork_now) as second:
            forked = second.files()
        assert second.forked
        assert forked == spawned
        assert sorted(f.key for f in forked) == ["tests/sub/test_b.py", "tests/test_a.py"]
        executor.close()
        # an error in the listing says what went wrong, as a new process's does
        (root / "tests" / "conftest.py").write_text("import not_a_module_xyz\n")
        executor._checked = True  # the server stays (conftest files load in each child)
        broken = Discovery(root, fork=executor.fork_now)
        with broken, pytest.raises(DiscoveryError, match="not_a_module_xyz"):
            broken.files()
        assert broken.forked
    finally:
        executor.shutdown()
