"""The Python API: ``run_tests``, ``start_run``, ``open_store`` and ``ingest``.

This facade wires discovery, scheduling, an executor, the launcher loop and
observers (the store writer first). Everything the notebook UI and the CLI
do goes through here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devformance_nb.api.executors import make_executor, slots, stage
from devformance_nb.api.handle import Run, RunSetup
from devformance_nb.core.config import (
    Config,
    db_path,
    find_root,
    load_config,
    overrides_from,
    with_settings_doc,
)
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.errors import StoreError
from devformance_nb.core.events import RunStarted
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import Discovery, TestFile
from devformance_nb.logic.importscan import config_mentions, uses_controller_hooks
from devformance_nb.logic.scheduling import FileOrder, Scheduler, choose_scheduler
from devformance_nb.run.launcher import Launcher, LaunchPlan, new_run_id
from devformance_nb.run.nodes import xdist_installed
from devformance_nb.run.replay import replay
from devformance_nb.run.runinfo import run_meta
from devformance_nb.run.state import Observer, RunState
from devformance_nb.store.database import Store
from devformance_nb.store.ingest import ingest_run
from devformance_nb.store.selection import (
    Selection,
    SelectionRecorder,
    carried_events,
    last_digests,
    narrow,
)
from devformance_nb.store.writer import StoreWriter

if TYPE_CHECKING:
    from distributed import Client

#: test files or folders to run (None: the project's testpaths)
PathsArg = Sequence[str | os.PathLike[str]] | str | os.PathLike[str] | None


@with_settings_doc
def prepare(
    paths: PathsArg = None,
    *,
    root: str | os.PathLike[str] | None = None,
    observers: Sequence[Observer] = (),
    store: bool = True,
    changed: bool = False,
    since: str | None = None,
    workers: int | None = None,
    db: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    executor: str | None = None,
    preload: list[str] | tuple[str, ...] | None = None,
    pytest_args: list[str] | tuple[str, ...] | None = None,
    python: str | None = None,
    slow_query_ms: float | None = None,
    n_plus_one_min: int | None = None,
    allow_n_plus_one: list[str] | tuple[str, ...] | None = None,
    query_budgets: dict[str, int] | None = None,
    capture_sql: bool | None = None,
    capture_params: bool | None = None,
    coverage: bool | None = None,
    coverage_source: list[str] | tuple[str, ...] | None = None,
    coverage_contexts: bool | None = None,
    lock_timeout: float | None = None,
    scheduler: str | None = None,
    dask_retries: int | None = None,
    dask_ship: str | None = None,
    dask_warm: bool | None = None,
    client: Client | None = None,
) -> RunSetup:
    """Discover files and build the launcher of a run, without starting it.

    Arguments as for ``run_tests``.
    """
    settings = overrides_from(locals())  # first: locals() holds only the parameters here
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    root_path = Path(root).resolve() if root is not None else find_root()
    given_db = settings.get("db")
    if given_db is not None:  # an argument is relative to where the caller is
        settings["db"] = os.fspath(Path(given_db).resolve())
    config = load_config(root_path, **settings)
    the_executor = make_executor(config, root_path, client)
    warm = getattr(the_executor, "warm", None)
    # a fork server already up (a notebook's next run) forks the listing; else it is a
    # process of its own while the server starts (2 processes, 2 cores)
    fork = getattr(the_executor, "fork_now", None)
    try:
        with Discovery(root_path, paths or (), config.pytest_args, config.python, fork) as listing:
            if warm is not None:
                warm()
            the_store = Store(db_path(root_path, config), config.lock_timeout) if store else None
            files = listing.files()
        selection = None
        if changed or since is not None:  # the subset a change affects
            files, selection = narrow(the_store, root_path, files, since, config.python)
        ordered = choose_order(the_store, files).order(files)
        staged = stage(the_executor, ordered)
    except BaseException:  # no run will close it: a cluster made for it must not linger
        the_executor.close()
        raise
    run_id = new_run_id()
    run_dir = RunDir.for_run(root_path, run_id)
    writer = StoreWriter(the_store) if the_store is not None else None
    plan = LaunchPlan(
        run_id=run_id,
        root=root_path,
        run_dir=run_dir,
        files=ordered,
        workers=config.effective_workers(len(files), slots(the_executor)),
        timeout=config.timeout,
        pytest_args=tuple(config.pytest_args),
        options=child_options(config),
        config=config.to_dict(),
        meta={**run_meta(root_path), **staged, **selection_meta(selection)},
        python=config.python or sys.executable,
        worker_inputs=worker_inputs(config, root_path),
        carried=carried_events(the_store, selection),
    )
    if writer is not None:
        writer.log_paths = {f.key: os.fspath(run_dir.log_path(f.key)) for f in files}
    all_observers: list[Observer] = [writer] if writer is not None else []
    if writer is not None:  # after the writer: its rows go in the writer's last transaction
        all_observers.append(
            SelectionRecorder(
                writer,
                root_path,
                run_dir,
                config.python,
                selection,
                last_digests(the_store, root_path),
            )
        )
    all_observers.extend(observers)
    launcher = Launcher(plan, the_executor, all_observers)
    return RunSetup(root_path, config, files, the_store, launcher, writer, selection)


def selection_meta(selection: Selection | None) -> dict[str, Any]:
    """How a --changed run found its changes and why each file runs, kept in its journal
    (ingest stores them again; the carried files' reasons are in their own events)."""
    if selection is None:
        return {}
    ran = {d.file: d.reason for d in selection.decisions if d.run}
    return {"selection": selection.basis, "selected_because": ran}


def worker_inputs(config: Config, root: Path) -> str:
    """Where each slot's xdist ``workerinput`` comes from (``LaunchPlan.worker_inputs``): the
    stand-in controller process only when xdist is installed and something the project loads
    implements a controller-side hook. pytest-cov's counts only while it is active:
    devformance silences it when it measures coverage itself.
    """
    python = config.python or sys.executable
    if not xdist_installed(python):
        return "none"
    if os.path.abspath(python) != os.path.abspath(sys.executable):
        return "controller"  # another interpreter's plugins are not ours to read
    cov_active = not config.coverage and (
        any(arg.startswith("--cov") for arg in config.pytest_args) or config_mentions(root, "--cov")
    )
    hooks = uses_controller_hooks(root, ignore=() if cov_active else ("pytest_cov",))
    return "controller" if hooks else "local"


def child_options(config: Config) -> ChildOptions:
    """What the plugin in each child needs to know (SQL capture and coverage settings)."""
    source = config.coverage_source
    return ChildOptions(
        capture_sql=config.capture_sql,
        capture_params=config.capture_params,
        coverage=config.coverage,
        coverage_source=tuple(source) if source is not None else None,
        coverage_contexts=config.coverage_contexts,
    )


def choose_order(store: Store | None, files: list[TestFile]) -> Scheduler:
    """Longest-first from the store's history of these files, else discovery order."""
    if store is None or not store.path.exists():
        return FileOrder()
    try:
        history = Store(store.path, lock_timeout=0.5).file_durations([f.key for f in files])
    except StoreError:  # a busy or unreadable store must not stop a run from starting
        history = {}
    return choose_scheduler(history)


@with_settings_doc
def run_tests(
    paths: PathsArg = None,
    *,
    root: str | os.PathLike[str] | None = None,
    observers: Sequence[Observer] = (),
    store: bool = True,
    changed: bool = False,
    since: str | None = None,
    workers: int | None = None,
    db: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    executor: str | None = None,
    preload: list[str] | tuple[str, ...] | None = None,
    pytest_args: list[str] | tuple[str, ...] | None = None,
    python: str | None = None,
    slow_query_ms: float | None = None,
    n_plus_one_min: int | None = None,
    allow_n_plus_one: list[str] | tuple[str, ...] | None = None,
    query_budgets: dict[str, int] | None = None,
    capture_sql: bool | None = None,
    capture_params: bool | None = None,
    coverage: bool | None = None,
    coverage_source: list[str] | tuple[str, ...] | None = None,
    coverage_contexts: bool | None = None,
    lock_timeout: float | None = None,
    scheduler: str | None = None,
    dask_retries: int | None = None,
    dask_ship: str | None = None,
    dask_warm: bool | None = None,
    client: Client | None = None,
) -> Run:
    """Run the project's tests, one pytest process per file, and record them; blocks.

    ``paths``: files or folders (default: the project's testpaths). ``root``:
    project root (default: found from the working directory). ``observers``:
    objects with ``on_event``, ``tick`` and ``close`` that follow the run.
    ``store=False`` records nothing in the store. ``client``: a ``distributed.Client`` to
    run the files on (the Dask executor; yours stays open). The settings below override
    ``[tool.devformance]``. Ctrl-C stops the run cleanly.

    ``changed=True``: run only the files a change since the last recorded run affects
    (``since``: a git revision to compare with instead); each other file carries its last
    result into the run, marked as carried. ``run.selection`` says why each file ran.
    """
    settings = overrides_from(locals())
    run = Run(
        prepare(
            paths,
            root=root,
            observers=observers,
            store=store,
            changed=changed,
            since=since,
            client=client,
            **settings,
        )
    )
    run._run()
    return run


@with_settings_doc
def start_run(
    paths: PathsArg = None,
    *,
    root: str | os.PathLike[str] | None = None,
    observers: Sequence[Observer] = (),
    store: bool = True,
    changed: bool = False,
    since: str | None = None,
    workers: int | None = None,
    db: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    executor: str | None = None,
    preload: list[str] | tuple[str, ...] | None = None,
    pytest_args: list[str] | tuple[str, ...] | None = None,
    python: str | None = None,
    slow_query_ms: float | None = None,
    n_plus_one_min: int | None = None,
    allow_n_plus_one: list[str] | tuple[str, ...] | None = None,
    query_budgets: dict[str, int] | None = None,
    capture_sql: bool | None = None,
    capture_params: bool | None = None,
    coverage: bool | None = None,
    coverage_source: list[str] | tuple[str, ...] | None = None,
    coverage_contexts: bool | None = None,
    lock_timeout: float | None = None,
    scheduler: str | None = None,
    dask_retries: int | None = None,
    dask_ship: str | None = None,
    dask_warm: bool | None = None,
    client: Client | None = None,
) -> Run:
    """Like ``run_tests`` but returns at once; the run goes on in a background thread.

    ``run.wait()`` blocks until the end, ``run.stop()`` ends it early.
    """
    settings = overrides_from(locals())
    run = Run(
        prepare(
            paths,
            root=root,
            observers=observers,
            store=store,
            changed=changed,
            since=since,
            client=client,
            **settings,
        )
    )
    run._start_background()
    return run


def open_store(
    db: str | os.PathLike[str] | None = None, *, root: str | os.PathLike[str] | None = None
) -> Store:
    """The store at ``db`` (default: ``.devformance/devformance.duckdb`` in the project root)."""
    if db is not None:
        return Store(Path(db).resolve())
    root_path = Path(root).resolve() if root is not None else find_root()
    return Store(db_path(root_path, load_config(root_path)))


def ingest(
    run_dir: str | os.PathLike[str],
    db: str | os.PathLike[str] | None = None,
    *,
    observers: Sequence[Observer] = (),
) -> RunState:
    """Load a run directory into the store (replacing that run if it is there already).

    Query events are loaded in bulk (``devformance_nb.store.ingest``): ``observers`` see every
    other event, with each file's statements counted in the state when the file finishes.
    """
    started = next(replay(run_dir, queries=False))
    root = started.root if isinstance(started, RunStarted) else ""
    return ingest_run(run_dir, open_store(db, root=root or None), observers)
