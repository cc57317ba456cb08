"""The notebook surface: ``run_tests`` that shows a live dashboard when it runs in a kernel."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from devformance_nb.api import facade as api
from devformance_nb.api.facade import PathsArg
from devformance_nb.api.handle import Run
from devformance_nb.core.config import Overrides, overrides_from, with_settings_doc
from devformance_nb.run.state import Observer

if TYPE_CHECKING:
    from distributed import Client
    from typing_extensions import Unpack

    from devformance_nb.ui.liveview import LiveRunView

#: the view of the last live run started from a cell (a re-run cell stops its run)
_last_view: LiveRunView | None = None


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (JupyterLab, Notebook, VS Code, Voila).

    IPython is only looked at if something already imported it: a plain
    script never pays for importing it.
    """
    ipython_module = sys.modules.get("IPython")
    if ipython_module is None:
        return False
    shell = ipython_module.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def live_view(
    paths: PathsArg = None,
    *,
    root: str | os.PathLike[str] | None = None,
    observers: Sequence[Observer] = (),
    client: Client | None = None,
    **settings: Unpack[Overrides],
) -> LiveRunView:
    """A LiveRunView, displayed in the current cell's output (main thread)."""
    from IPython.display import display

    from devformance_nb.ui.liveview import LiveRunView

    view = LiveRunView(paths, root=root, observers=observers, client=client, **settings)
    display(view)  # type: ignore[no-untyped-call]
    return view


@with_settings_doc
def run_tests(
    paths: PathsArg = None,
    *,
    live: bool | None = None,
    root: str | os.PathLike[str] | None = None,
    observers: Sequence[Observer] = (),
    client: Client | None = None,
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
) -> Run:
    """Run the project's tests, live in a notebook.

    In a notebook (or with ``live=True``) this shows a LiveRunView, starts the
    run in the background and returns the Run at once: the kernel stays free,
    ``run.wait()`` blocks until the end, ``run.stop()`` (or the Stop button)
    ends it early. Starting a live run while the previous one still goes (a
    re-executed cell) stops the previous one first, with a notice in its view.
    Elsewhere (or with ``live=False``) it is ``api.run_tests``:
    it blocks and returns the finished Run. ``paths``, ``root`` and
    ``observers`` and ``client`` (a ``distributed.Client``) are those of ``api.run_tests``;
    the settings below override
    ``[tool.devformance]``.
    """
    settings = overrides_from(locals())  # first: locals() holds only the parameters here
    if live is None:
        live = in_notebook()
    if not live:
        return api.run_tests(paths, root=root, observers=observers, client=client, **settings)
    global _last_view
    previous = _last_view
    if previous is not None and previous.running:
        # a re-executed cell: one run at a time, never two views racing on one store
        previous.stop("stopped: a new run was started from another cell")
        if previous.run is not None:
            previous.run.wait()
    view = live_view(paths, root=root, observers=observers, client=client, **settings)
    _last_view = view
    return view.start()
