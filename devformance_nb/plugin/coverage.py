"""Coverage measurement inside one pytest child (plugin layer: stdlib and pytest only).

coverage.py is imported lazily, inside :func:`start_child_coverage`, so loading the
plugin costs nothing when coverage is off. The plugin starts measuring from its
earliest hook (``pytest_load_initial_conftests``, before any conftest imports the
project), so import-time lines count, and stops at ``pytest_sessionfinish``,
writing one data file per child into the run directory.

Which configuration applies and what is measured: ``plugin.covconfig``. With a fork
server, the server starts the measurement before it imports anything and each child takes it
over (``start_warm``).

pytest-cov: when a project's ``addopts`` carry ``--cov``, pytest-cov would start a
second tracer in the same process; coverage.py then pauses the first, so one of
the two would see nothing, and parallel children would all overwrite the one
``.coverage`` file in the project root. :func:`silence_pytest_cov` switches
pytest-cov off in the child (as ``--no-cov`` does) whenever devformance measures,
and says so in the result's notes. With devformance's coverage off, pytest-cov is
left alone.

pytest-xdist: with ``-n`` in a project's addopts, each xdist worker of a child
loads the plugin too and writes ``<data file>.gw<N>``; covdata reads those
with the child's own file.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devformance_nb.core.contract import ENV_CHILD_PID, XDIST_WORKER, ChildOptions
from devformance_nb.plugin.covconfig import (
    config_folders,
    contexts_wanted,
    find_config_file,
    make_coverage,
)


@dataclass
class CoverageStart:
    """What :func:`start_child_coverage` did.

    ``coverage`` is None when measurement is off; ``message`` then says why (empty
    when coverage simply was not asked for). ``notes`` are things worth showing
    either way (pytest-cov switched off, modules imported before the start, ...).
    """

    coverage: ChildCoverage | None
    message: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def measuring(self) -> bool:
        """Whether coverage is being measured in this child."""
        return self.coverage is not None


class ChildCoverage:
    """A started ``coverage.Coverage`` and what the parent needs to know about it."""

    def __init__(
        self,
        cov: Any,
        data_file: str,
        config_file: str | None,
        contexts: bool,
        inherited: bool = False,
    ):
        self.cov = cov
        self.data_file = data_file
        self.config_file = config_file
        self.contexts = contexts
        #: started by the fork server (its data in memory): saved as a copy into data_file
        self.inherited = inherited
        self.notes: list[str] = []
        #: set when saving failed: why there is no data file
        self.message = ""
        self._stopped = False
        self._context = ""

    @property
    def source(self) -> list[str]:
        """What is measured (``run:source``), as coverage sees it."""
        return list(self.cov.get_option("run:source") or [])

    def switch(self, context: str) -> None:
        """Label the lines run from now on with ``context`` (a test's nodeid); '' for none.

        A no-op unless per-test contexts were asked for, so the plugin can call it
        for every test phase without checking.
        """
        # each switch flushes the data collected so far: only switch on a change
        if self.contexts and not self._stopped and context != self._context:
            self._context = context
            self.cov.switch_context(context)

    def stop_and_save(self) -> str:
        """Stop measuring and write the data file; its path, or '' (see ``message``) on failure.

        Never raises: a failure to save must not change the child's exit status.
        """
        if self._stopped:
            return self.data_file if not self.message else ""
        self._stopped = True
        try:
            with _recorded_warnings(self.notes):
                self.cov.stop()
                if self.inherited:
                    _save_copy(self.cov, self.data_file)
                else:
                    self.cov.save()
        except Exception as exc:  # coverage or the file system: report, never raise
            self.message = f"coverage data could not be saved to {self.data_file}: {_line(exc)}"
            return ""
        return self.data_file


def start_child_coverage(
    options: ChildOptions, rootpath: Path, inipath: Path | None = None
) -> CoverageStart:
    """Start coverage for this child if ``options`` ask for it (``coverage`` and ``coverage_data``).

    Never raises: a missing coverage package or a broken configuration gives a
    result without coverage and a ``message`` saying why; the tests run anyway.
    """
    warm = _WARM.pop() if _WARM else None
    started = CoverageStart(None)
    try:
        started = _start_child(options, rootpath, inipath, warm)
    finally:  # a measurement not taken over must not keep tracing beside the child's own
        adopted = started.coverage is not None and started.coverage.inherited
        if warm is not None and not adopted:
            _stop_quietly(warm.cov)
    return started


def _start_child(
    options: ChildOptions, rootpath: Path, inipath: Path | None, warm: WarmCoverage | None
) -> CoverageStart:
    if not options.coverage or not options.coverage_data:
        return CoverageStart(None)
    try:
        import coverage
    except ImportError:
        return CoverageStart(
            None, f"coverage is off: coverage.py is not installed for {sys.executable}"
        )
    folders = config_folders(rootpath, inipath, options.root)
    config_file: str | None = None
    try:
        config_file = find_config_file(folders)
        data_file = _data_file(options.coverage_data)
        # the run directory first, so that a folder we cannot write says so whatever
        # coverage.py's version does about it (7.18 wraps the OSError in a DataError)
        os.makedirs(os.path.dirname(os.path.abspath(data_file)), exist_ok=True)
        cov = make_coverage(coverage, data_file, options, config_file, rootpath)
        child = ChildCoverage(cov, data_file, config_file, False)
        child.contexts = contexts_wanted(cov, options, child.notes)
        if warm is not None and warm.key == coverage_key(cov, config_file, child.contexts):
            # the server measured the same way since before it imported anything: go on
            # with its measurement (import-time lines and coverage's file decisions kept)
            taken = ChildCoverage(warm.cov, data_file, config_file, child.contexts, True)
            taken.notes = child.notes
            return CoverageStart(taken, notes=taken.notes)
        with _recorded_warnings(child.notes):
            cov.erase()  # a data file left from an earlier attempt must not merge in
            cov.start()
    except OSError as exc:  # the run directory: not the project's fault
        return CoverageStart(None, f"coverage is off: cannot write its data file: {_line(exc)}")
    except Exception as exc:  # a broken config must never break the child
        where = f" in {config_file}" if config_file else ""
        return CoverageStart(
            None, f"coverage is off: the coverage configuration{where} is broken: {_line(exc)}"
        )
    return CoverageStart(child, notes=child.notes)


@dataclass
class WarmCoverage:
    """A measurement the fork server started before importing anything (``start_warm``)."""

    cov: Any
    #: ``coverage_key`` of its configuration: a child takes it over only when its own is equal
    key: tuple[Any, ...]


#: the fork server's measurement, if it started one; each forked child takes it (once)
_WARM: list[WarmCoverage] = []


def start_warm(options: ChildOptions, root: Path) -> str:
    """In the fork server, before any import: start measuring exactly as a child of ``root``
    would (the data kept in memory); '' if it started, else why not.

    Each forked child inherits the running measurement: the lines the server ran while it
    imported (a ``preload`` module's import-time lines) and coverage's decision for every
    file seen so far, so a child neither imports under a fresh tracer nor decides again.
    A child whose configuration differs (its pytest rootdir holds another coverage config)
    stops it and starts its own (:func:`start_child_coverage`).
    """
    try:
        import coverage

        config_file = find_config_file(config_folders(root, None, options.root))
        cov = make_coverage(coverage, None, options, config_file, root)
        contexts = contexts_wanted(cov, options, [])
        with _recorded_warnings([]):
            cov.start()
    except Exception as exc:  # any problem: the children start their own, as before
        return f"coverage not started in the server: {_line(exc)}"
    _WARM[:] = [WarmCoverage(cov, coverage_key(cov, config_file, contexts))]
    return ""


#: the options that decide what a measurement records
_KEY_OPTIONS = (
    "run:source", "run:source_pkgs", "run:include", "run:omit", "run:branch", "run:timid",
    "run:cover_pylib", "run:dynamic_context", "run:core", "run:plugins", "run:concurrency",
    "run:context", "run:relative_files",
)  # fmt: skip


def coverage_key(cov: Any, config_file: str | None, contexts: bool) -> tuple[Any, ...]:
    """What makes two measurements the same: the configuration file and every option that
    decides what is recorded, as this coverage.py reads them."""
    values: list[str] = []
    for name in _KEY_OPTIONS:
        try:
            values.append(repr(cov.get_option(name)))
        except Exception:  # an option this coverage.py does not have
            values.append("")
    return (config_file, contexts, *values)


def _stop_quietly(cov: Any) -> None:
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cov.stop()


def _save_copy(cov: Any, data_file: str) -> None:
    """Write ``cov``'s data (kept in memory) to ``data_file``, as ``save`` would have."""
    from coverage import CoverageData

    data = cov.get_data()  # also marks the source files never run, as save does
    with contextlib.suppress(FileNotFoundError):
        os.remove(data_file)  # a file left by an earlier attempt must not merge in
    out = CoverageData(basename=data_file)
    out.update(data)
    out.write()


def silence_pytest_cov(namespace: Any) -> str:
    """Switch pytest-cov off in this child if ``--cov`` asked for it; a note saying so, else ''.

    ``namespace`` is ``early_config.known_args_namespace``. Must run before
    pytest-cov's own ``pytest_load_initial_conftests`` (a hook wrapper's first half
    does), which then registers its plugin disabled, exactly as with ``--no-cov``.
    """
    if not getattr(namespace, "cov_source", None) or getattr(namespace, "no_cov", False):
        return ""
    namespace.no_cov = True
    return (
        "pytest-cov (--cov) is switched off in this child: devformance measures coverage "
        "itself, one data file per test file"
    )


def start_for_pytest(early_config: Any, options: ChildOptions) -> CoverageStart:
    """Both steps for the plugin's ``pytest_load_initial_conftests`` wrapper.

    ``early_config`` is pytest's early ``Config``: its ``rootpath``, ``inipath`` and
    ``known_args_namespace`` are read.
    """
    started = start_child_coverage(options, early_config.rootpath, early_config.inipath)
    if started.measuring:
        note = silence_pytest_cov(early_config.known_args_namespace)
        if note:
            started.notes.append(note)
    return started


def _data_file(asked: str) -> str:
    """The data file to write: ``asked``, or ``asked.gw<N>`` inside a pytest-xdist worker.

    A project with ``-n`` in its addopts runs its tests in xdist workers, each of
    which loads this plugin too: one file each, or they would overwrite each other
    (covdata reads the workers' files with the main one).
    """
    worker = os.environ.get(XDIST_WORKER)
    # the child itself has PYTEST_XDIST_WORKER too (its slot's identity): only a process that
    # inherited another process's child pid is one of its xdist workers
    child = os.environ.setdefault(ENV_CHILD_PID, str(os.getpid()))
    nested = bool(worker) and child != str(os.getpid())
    return f"{asked}.{worker}" if nested else asked


def _line(exc: BaseException) -> str:
    """An error as one line: messages end up in pane titles and table cells."""
    return " ".join(str(exc).split())


@contextmanager
def _recorded_warnings(notes: list[str]) -> Iterator[None]:
    """Turn coverage's warnings into notes.

    A project with ``filterwarnings = error`` must not fail because coverage
    warned, and the notes reach the user through the plugin's output.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    notes.extend(str(w.message) for w in caught)
