"""A test-only pytest plugin that drives ``devformance_nb.plugin.coverage`` as the plugin does.

Load it in a child with ``-p covdriver`` (``tests/`` on PYTHONPATH). It reads
``DEVFORMANCE_OPTIONS`` like the real plugin, starts coverage from the earliest
hook, switches contexts per test phase, and at the end writes what happened as
JSON to ``$COVDRIVER_RESULT``. Used by tests/test_covchild.py, tests/test_covdata.py
and bench/bench_coverage.py until the launcher wires coverage in itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devformance_nb.core.contract import ENV_OPTIONS, ChildOptions
from devformance_nb.plugin.coverage import CoverageStart, start_for_pytest

_started: list[CoverageStart] = []


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None, None, None]:
    started = start_for_pytest(early_config, ChildOptions.from_env(os.environ.get(ENV_OPTIONS)))
    _started.append(started)
    if started.message:
        sys.stderr.write(f"devformance: {started.message}\n")
    return (yield)


def _switch(item: pytest.Item) -> Generator[None, None, None]:
    if _started and _started[0].coverage:
        _started[0].coverage.switch(item.nodeid)
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _switch(item))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _switch(item))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _switch(item))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    started = _started[0] if _started else CoverageStart(None, "never started")
    result: dict[str, Any] = {"message": started.message, "notes": started.notes}
    if started.coverage is not None:
        started.coverage.switch("")
        result["data_file"] = started.coverage.stop_and_save()
        result["save_message"] = started.coverage.message
        result["source"] = started.coverage.source
        result["config_file"] = started.coverage.config_file
    target = os.environ.get("COVDRIVER_RESULT")
    if target:
        with open(target, "w", encoding="utf-8") as handle:
            json.dump(result, handle)


# -- helpers for the tests and the bench: run children that load this plugin ---------------

DRIVER_DIR = Path(__file__).resolve().parent
#: environment that would change which configuration or data file coverage uses
_COVERAGE_ENV = ("COVERAGE_RCFILE", "COVERAGE_FILE", "COVERAGE_PROCESS_START", "COVERAGE_CORE")


@dataclass
class ChildRun:
    """One finished child: exit code, merged output and what the driver plugin reported."""

    returncode: int
    output: str
    result: dict[str, Any]
    seconds: float


def child_env(options: dict[str, Any], result_path: Path) -> dict[str, str]:
    """The environment of a child: the plugin's options and the driver on the path."""
    env = {k: v for k, v in os.environ.items() if k not in _COVERAGE_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(DRIVER_DIR), env.get("PYTHONPATH")]))
    env["DEVFORMANCE_OPTIONS"] = json.dumps(options)
    env["COVDRIVER_RESULT"] = str(result_path)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_child(
    root: Path,
    test_file: str,
    data_file: Path,
    *,
    args: Sequence[str] = (),
    **options: Any,
) -> ChildRun:
    """Run ``test_file`` (relative to ``root``) in its own pytest child with the driver plugin."""
    options = {"coverage": True, "coverage_data": str(data_file), "root": str(root), **options}
    result_path = data_file.with_suffix(".result.json")
    result_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "covdriver"]
    command += ["-p", "no:cacheprovider", *args, test_file]
    started = time.perf_counter()
    proc = subprocess.run(
        command,
        cwd=root,
        env=child_env(options, result_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - started
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    return ChildRun(proc.returncode, proc.stdout, result, seconds)


def run_children(
    root: Path, test_files: Sequence[str], run_dir: Path, workers: int = 4, **options: Any
) -> dict[str, ChildRun]:
    """Each of ``test_files`` in its own child, ``workers`` at a time; data files in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)

    def one(test_file: str) -> ChildRun:
        slug = test_file.replace("/", "__").removesuffix(".py")
        return run_child(root, test_file, run_dir / f"{slug}.coverage", **options)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(test_files, pool.map(one, test_files), strict=True))


def write_project(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> dedented source) under ``root``."""
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return root
