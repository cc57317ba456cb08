"""devformance_nb: what your test suite does to the database, file by file, live in Jupyter.

Importing the package stays light (the pytest children import it): the
public API is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Run", "load_ipython_extension", "open_store", "run_tests"]

if TYPE_CHECKING:
    from devformance_nb.api.facade import open_store
    from devformance_nb.api.handle import Run
    from devformance_nb.ui.notebook import run_tests

_LAZY = {
    # live in a notebook, blocking elsewhere (notebook.run_tests falls back to api.run_tests)
    "run_tests": "devformance_nb.ui.notebook",
    "open_store": "devformance_nb.api.facade",
    "Run": "devformance_nb.api.handle",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'devformance_nb' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext devformance_nb``: registers the ``%devformance`` magic."""
    from devformance_nb.ui.magic import register

    register(ipython)
