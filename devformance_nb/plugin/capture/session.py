"""Start and stop SQL capture for one pytest child: adapters, import watching, flushing."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from devformance_nb.plugin.capture.adapters import ADAPTERS, Adapter, load_adapter
from devformance_nb.plugin.capture.imports import ImportWatcher, importable
from devformance_nb.plugin.capture.recorder import Recorder

if TYPE_CHECKING:
    from devformance_nb.core.contract import ChildOptions
    from devformance_nb.core.eventlog import EventWriter
    from devformance_nb.plugin.context import TestContext

#: the capture running in this process: adapters patch process-wide state, so only one runs
_active: Capture | None = None


class Capture:
    """SQL capture in this process: the recorder plus the adapters installed so far."""

    def __init__(self, recorder: Recorder, adapters: Mapping[str, str] = ADAPTERS) -> None:
        self.recorder = recorder
        self.installed: list[Adapter] = []
        #: adapters that failed to install or uninstall, as text (capture never breaks a run)
        self.problems: list[str] = []
        self._adapters = dict(adapters)
        self._watcher = ImportWatcher()
        self._stopped = False

    @property
    def libraries(self) -> list[str]:
        """Names of the libraries hooked so far (in install order)."""
        return [adapter.library for adapter in self.installed]

    def start(self) -> None:
        """Install adapters of imported libraries; watch for the importable rest."""
        for library, path in self._adapters.items():
            if library in sys.modules or importable(library):
                self._watcher.watch(library, self._installer(path))

    def _installer(self, path: str) -> Any:
        def install(module: ModuleType) -> None:
            self._install(path)

        return install

    def _install(self, path: str) -> None:
        if self._stopped:
            return
        try:
            adapter = load_adapter(path)(self.recorder)
        except Exception as exc:
            self.problems.append(f"load {path}: {type(exc).__name__}: {exc}")
            return
        try:
            adapter.install()
        except Exception as exc:
            self.problems.append(f"install {path}: {type(exc).__name__}: {exc}")
            self._uninstall(adapter)
            return
        self.installed.append(adapter)

    def _uninstall(self, adapter: Adapter) -> None:
        try:
            adapter.uninstall()
        except Exception as exc:
            self.problems.append(f"uninstall {adapter.library}: {type(exc).__name__}: {exc}")

    def phase_ended(self) -> None:
        """A test phase ended: let go of the frames the stack walk kept for it."""
        self.recorder.phase_ended()

    def test_ended(self) -> None:
        """A test ended (its teardown is over): report the eager loads it never read."""
        self.recorder.test_ended()

    def stop(self) -> None:
        """Undo every patch and listener, stop watching imports, flush the events.

        Safe to call twice. Connections opened during capture keep working untimed.
        """
        global _active
        if self._stopped:
            return
        self._stopped = True
        self._watcher.close()
        self.problems.extend(self._watcher.problems)
        while self.installed:
            self._uninstall(self.installed.pop())
        try:
            self.recorder.flush()
        except Exception as exc:  # the writer's file is the plugin's to report, not ours
            self.problems.append(f"flush: {type(exc).__name__}: {exc}")
        if _active is self:
            _active = None


def start_capture(writer: EventWriter, context: TestContext, options: ChildOptions) -> Capture:
    """Capture every SQL statement of this process as ``Query`` events on ``writer``.

    ``context`` is read per statement (test nodeid and phase). Options: ``capture_params``
    (record a short repr of parameter values; off by default) and ``root`` (the project root:
    frames outside it are never callers; defaults to the working directory). A capture
    already running in this process is stopped first. Call ``stop()`` on the result to undo
    every patch and flush.
    """
    global _active
    if _active is not None:
        _active.stop()
    capture = Capture(Recorder(writer, context, options))
    _active = capture
    capture.start()
    return capture
