"""Source files parsed, and analyses made, once for every coverage report of a run
(runtime layer).

Each test file's coverage is reported on its own, and each report made coverage.py parse every
measured source file again (alembic: 53 files, 2 s a test file). What a report needs from a
source file (its statements, branches, exits, ``# pragma: no branch`` lines)
depends only on its text and the configuration, so one parse serves every report while the
file is unchanged. An analysis depends only on that and on what ran of the file, and most test
files run the same lines of most sources (the import-time ones): djangorestframework's 60 test
files make 9,240 analyses of which 736 differ, so each is made once.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from typing import Any

#: parsed source files kept for the next report: (path, mtime, size, config file) -> reporter
_REPORTERS: dict[tuple[str, int, int, str], Any] = {}
_REPORTERS_LOCK = threading.Lock()
#: source files kept parsed at most (a run's project files, many times over)
MAX_REPORTERS = 20_000
_REPORTING: dict[type, type] = {}
#: analyses kept for the next report: (reporter key, precision, name, branches?, what ran) -> it
_ANALYSES: dict[tuple[Any, ...], Any] = {}
#: analyses kept at most (each holds a source's statement and arc sets)
MAX_ANALYSES = 20_000


def reporting_class(base: type) -> type:
    """``coverage.Coverage`` that keeps each source file's parse for the next report.

    Every test file's data is reported on its own, and each report parsed every measured
    source file again: 2 s a test file on alembic (53 files), most of the parent's coverage
    work. A file's statements depend only on its text and the configuration's exclusion
    rules, so one parse serves every report while the file is unchanged. The hook is
    coverage.py's ``_get_file_reporter`` (in coverage since 5.0); were it gone, reports would
    just parse as before.
    """
    found = _REPORTING.get(base)
    if found is None:
        methods = {"_get_file_reporter": _cached_reporter, "_analyze": _cached_analysis}
        found = _REPORTING[base] = type("ReportingCoverage", (base,), methods)
    return found


def _cached_reporter(self: Any, morf: Any) -> Any:
    parent = super(type(self), self)._get_file_reporter  # type: ignore[misc]
    if not isinstance(morf, str) or self._data is None or self._data.file_tracer(morf):
        return parent(morf)  # a module object, or a file a coverage plugin reports
    try:
        stat = os.stat(morf)
    except OSError:
        return parent(morf)
    key = (morf, stat.st_mtime_ns, stat.st_size, str(self.config.config_file))
    with _REPORTERS_LOCK:
        reporter = _REPORTERS.get(key)
        if reporter is None:
            reporter = parent(morf)
            with contextlib.suppress(Exception):  # a file that cannot be parsed: as before
                reporter.parser  # noqa: B018 - parse once, here, not in every report
            _keep_answers(reporter)
            reporter._devformance_key = key
            if len(_REPORTERS) >= MAX_REPORTERS:
                _REPORTERS.clear()
            _REPORTERS[key] = reporter
    return reporter


#: file reporter methods an analysis calls whose answer depends only on the text and config
_KEPT_ANSWERS = ("no_branch_lines", "exit_counts")


def _keep_answers(reporter: Any) -> None:
    """Make ``reporter``'s text-only answers computed once, not at every report: each analysis
    scans the source for ``# pragma: no branch`` lines and counts exits again, though, like
    the statements, they depend only on the unchanged text and the configuration (both part
    of the reporter's cache key). Callers get a copy each time.
    """
    for name in _KEPT_ANSWERS:
        method = getattr(reporter, name, None)
        if method is not None:
            setattr(reporter, name, _answered_once(method))


def _answered_once(method: Any) -> Any:
    kept: list[Any] = []

    def answer() -> Any:
        if not kept:
            kept.append(method())  # a set or a dict
        return copy.copy(kept[0])  # a copy (a defaultdict stays one): a caller may change it

    return answer


def _cached_analysis(self: Any, morf: Any, *args: Any, **kwargs: Any) -> Any:
    """``Coverage._analyze`` made once per source file state and set of lines (or arcs) run.

    coverage.py before 7.5 made analyses that read their data later (an ``Analysis.data``):
    those are never kept, so such versions analyse every time, as before.
    """
    parent = super(type(self), self)._analyze  # type: ignore[misc]
    key = _analysis_key(self, morf, args, kwargs)
    if key is None:
        return parent(morf, *args, **kwargs)
    with _REPORTERS_LOCK:
        analysis = _ANALYSES.get(key)
    if analysis is None:
        analysis = parent(morf, *args, **kwargs)
        if not hasattr(analysis, "data"):
            with _REPORTERS_LOCK:
                if len(_ANALYSES) >= MAX_ANALYSES:
                    _ANALYSES.clear()
                _ANALYSES[key] = analysis
    return analysis


def _analysis_key(self: Any, morf: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What an analysis of ``morf`` depends on, or None when it cannot be told cheaply."""
    reporter = kwargs.get("file_reporter") or next(iter(args), None)
    if reporter is None:
        reporter = morf if hasattr(morf, "_devformance_key") else self._get_file_reporter(morf)
    source_key = getattr(reporter, "_devformance_key", None)
    mapper = getattr(self, "_file_mapper", None)
    if source_key is None or mapper is None:
        return None  # a reporter we did not cache (a module, a coverage plugin's file)
    data = self.get_data()
    name = mapper(reporter.filename)
    branched = bool(data.has_arcs())
    ran = data.arcs(name) if branched else data.lines(name)
    return (source_key, self.config.precision, name, branched, frozenset(ran or ()))
