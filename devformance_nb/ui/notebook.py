"""The notebook surface: ``run_tests`` that shows a live dashboard when it runs in a kernel."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from devformance_nb.api import facade as api
from devformance_nb.run.state import Observer

if TYPE_CHECKING:
    from devformance_nb.ui.liveview import LiveRunView

PathsArg = Sequence[str | os.PathLike[str]] | str | os.PathLike[str] | None

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


def live_view(paths: PathsArg = None, **kwargs: Any) -> LiveRunView:
    """A LiveRunView, displayed in the current cell's output (main thread)."""
    from IPython.display import display

    from devformance_nb.ui.liveview import LiveRunView

    view = LiveRunView(paths, **kwargs)
    display(view)  # type: ignore[no-untyped-call]
    return view


def run_tests(
    paths: PathsArg = None,
    *,
    live: bool | None = None,
    root: str | os.PathLike[str] | None = None,
    observers: Sequence[Observer] = (),
    **settings: Any,
) -> api.Run:
    """Run the project's tests, live in a notebook.

    In a notebook (or with ``live=True``) this shows a LiveRunView, starts the
    run in the background and returns the Run at once: the kernel stays free,
    ``run.wait()`` blocks until the end, ``run.stop()`` (or the Stop button)
    ends it early. Starting a live run while the previous one still goes (a
    re-executed cell) stops the previous one first, with a notice in its view.
    Elsewhere (or with ``live=False``) it is ``api.run_tests``:
    it blocks and returns the finished Run. ``settings`` are the run's
    settings (``workers``, ``db``, ``timeout``, ``pytest_args``, ...).
    """
    if live is None:
        live = in_notebook()
    if not live:
        return api.run_tests(paths, root=root, observers=observers, **settings)
    global _last_view
    previous = _last_view
    if previous is not None and previous.running:
        # a re-executed cell: one run at a time, never two views racing on one store
        previous.stop("stopped: a new run was started from another cell")
        if previous.run is not None:
            previous.run.wait()
    view = live_view(paths, root=root, observers=observers, **settings)
    _last_view = view
    return view.start()
