"""Run a callback right after a module is first imported (a post-import hook).

Capture starts before the project's conftest imports anything, yet SQLAlchemy must neither
be imported by us (it is heavy and maybe unused) nor hooked too late (engines built at import
time of the project's modules). So a meta path finder watches for the library's import and
installs the adapter the moment the library's own ``__init__`` has run, before the importer
gets the module back.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

Callback = Callable[[ModuleType], None]


def importable(name: str) -> bool:
    """Whether the top-level package of ``name`` could be imported (without importing it)."""
    top = name.partition(".")[0]
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


class ImportWatcher(MetaPathFinder):
    """A meta path finder that delegates finding and wraps the loader of watched modules."""

    def __init__(self) -> None:
        self._wanted: dict[str, list[Callback]] = {}
        #: callbacks that raised, as text (an import of the user's code must never fail)
        self.problems: list[str] = []

    def watch(self, name: str, callback: Callback) -> None:
        """Call ``callback(module)`` once ``name`` is imported (now, if it already is)."""
        module = sys.modules.get(name)
        if module is not None:
            self._call(name, callback, module)
            return
        self._wanted.setdefault(name, []).append(callback)
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def close(self) -> None:
        """Stop watching; pending callbacks are dropped."""
        self._wanted.clear()
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """Find ``fullname`` with the other finders; wrap its loader if it is watched."""
        if fullname not in self._wanted:
            return None
        spec = self._find_elsewhere(fullname, path, target)
        loader: Any = spec.loader if spec is not None else None
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return None  # let the regular machinery do its usual thing
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            try:
                original(module)
            finally:
                # the loader instance is this module's own: drop the wrapper from it
                loader.__dict__.pop("exec_module", None)
            self._fire(fullname, module)

        try:
            loader.exec_module = exec_module
        except (AttributeError, TypeError):  # a loader with slots: watch it no more
            return None
        return spec

    def _find_elsewhere(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> ModuleSpec | None:
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def _fire(self, name: str, module: ModuleType) -> None:
        for callback in self._wanted.pop(name, []):
            self._call(name, callback, module)
        if not self._wanted and self in sys.meta_path:
            sys.meta_path.remove(self)

    def _call(self, name: str, callback: Callback, module: ModuleType) -> None:
        try:
            callback(module)
        except Exception as exc:
            self.problems.append(f"{name}: {type(exc).__name__}: {exc}")
