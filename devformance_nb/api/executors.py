"""Which executor a run uses, built from the settings (the facade's one place for it)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devformance_nb.core.config import Config
from devformance_nb.core.errors import ConfigError
from devformance_nb.logic.discovery import TestFile
from devformance_nb.run.executor import Executor, SpawnExecutor
from devformance_nb.run.forkserver import MeasureSettings, shared_executor
from devformance_nb.run.forkserver import available as forkserver_available

if TYPE_CHECKING:
    from distributed import Client


def make_executor(config: Config, root: Path, client: Client | None = None) -> Executor:
    """The executor the settings ask for (a warm fork server is shared across runs).

    A Dask ``client`` implies the Dask executor; Dask is imported only when it is used.
    """
    python = config.python or sys.executable
    name = "dask" if client is not None and not config.executor else None
    name = name or config.executor_name(forkserver_available())
    if name == "dask":
        from devformance_nb.run.daskexec import connect

        return connect(config, root, client)
    if client is not None:
        raise ConfigError(
            f"a Dask client was given but the executor is {name!r}: "
            "pass executor='dask' (or leave the executor out)"
        )
    if name == "forkserver":
        source = config.coverage_source
        measure = MeasureSettings(
            tuple(source) if source is not None else None, config.coverage_contexts
        )
        return shared_executor(root, python, config.preload, config.coverage, measure)
    return SpawnExecutor()


def stage(executor: Executor, files: Sequence[TestFile]) -> dict[str, Any]:
    """Let an executor that needs the run's files first prepare for them (the Dask executor
    ships the project and orders its tasks); returns what it adds to the run's metadata."""
    prepare = getattr(executor, "stage", None)
    return dict(prepare(files)) if prepare is not None else {}


def slots(executor: Executor) -> int | None:
    """Files the executor's cluster runs at once (None: as many as this machine's CPUs)."""
    found = getattr(executor, "slots", None)
    return found if isinstance(found, int) else None
