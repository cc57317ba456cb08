"""Warm starts on Dask workers: each worker process keeps a fork server per project copy.

A task's child is then forked from a server that already imported pytest, the plugin, the
``preload`` modules and the project's installed libraries, as the local default executor
does (``run.forkserver``), instead of a cold ``python -m pytest`` per file. Servers are kept
in this module, per worker process, keyed by what they were warmed for; each is checked
against the project once per run (a run id not seen before), as the local one is.

No worker plugin is needed to end them: a server watches its parent (the worker process) and
ends when it is gone, and its children end with it (they watch theirs). A worker whose OS
cannot fork, or a project that is unsafe to fork, spawns each child instead.
"""

from __future__ import annotations

import threading
from pathlib import Path

from devformance_nb.core.contract import ENV_OPTIONS, ChildOptions
from devformance_nb.run.executor import Child
from devformance_nb.run.forkserver import ForkServerExecutor, MeasureSettings, available

_LOCK = threading.Lock()
#: this worker process's servers, by (root, python, preload, coverage, measure)
_SERVERS: dict[tuple[object, ...], ForkServerExecutor] = {}
#: the run each server was last checked for
_RUNS: dict[tuple[object, ...], str] = {}


def server_for(
    root: str, python: str, preload: tuple[str, ...], options: ChildOptions, run_id: str
) -> ForkServerExecutor | None:
    """The warm server for this project copy and settings (None: no fork here)."""
    if not available():
        return None
    source = options.coverage_source
    measure = MeasureSettings(
        tuple(source) if source is not None else None, options.coverage_contexts
    )
    key = (root, python, preload, options.coverage, measure)
    with _LOCK:
        server = _SERVERS.get(key)
        if server is None:
            server = ForkServerExecutor(
                Path(root), python, list(preload), options.coverage, measure
            )
            _SERVERS[key] = server
        if _RUNS.get(key) != run_id:
            _RUNS[key] = run_id
            server.close()  # a new run: the server is checked against the project again
    return server


def start(
    command: list[str],
    env: dict[str, str],
    root: str,
    preload: tuple[str, ...],
    run_id: str,
) -> Child | None:
    """A child of ``command`` forked from this worker's warm server (None: fork unavailable)."""
    options = ChildOptions.from_env(env.get(ENV_OPTIONS))
    server = server_for(root, command[0], preload, options, run_id)
    if server is None:
        return None
    return server.start_command(command, env, root)


def shutdown() -> int:
    """End every server of this worker process (tests; a worker's own end needs no call)."""
    with _LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
        _RUNS.clear()
    for server in servers:
        server.shutdown()
    return len(servers)
