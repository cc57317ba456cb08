"""Source files parsed once for every coverage report of a run (runtime layer).

Each test file's coverage is reported on its own, and each report made coverage.py parse every
measured source file again (alembic: 53 files, 2 s a test file). What a report needs from a
source file (its statements, branches, exits, ``# pragma: no branch`` lines)
depends only on its text and the configuration, so one parse serves every report while the
file is unchanged.
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
        found = _REPORTING[base] = type(
            "ReportingCoverage", (base,), {"_get_file_reporter": _cached_reporter}
        )
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
