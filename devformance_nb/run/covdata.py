"""Reading the children's coverage data files through coverage.py's own API (runtime layer).

Every number comes from coverage's own analysis of each file, the step all its reports
share (``coverage.report_core.get_analysis_to_report``), so a file's statements, branches
and percent are exactly what ``coverage report`` shows for the same data, and the run
total, read from the union of every child's data (``CoverageData.update``), is what
``coverage combine`` followed by ``coverage report`` gives. The SQLite inside a data file
is never read directly.

Bad input never raises: a missing or corrupt data file (a crashed child) is
skipped with a reason, and a source file deleted since it was measured is left
out with a note. Turning a result into store rows is ``store.rows``'s job.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devformance_nb.run.covparse import MAX_ANALYSES, reporting_class


@dataclass(frozen=True)
class SourceFileCoverage:
    """Coverage of one source file; ``source_file`` is relative to the project root when inside."""

    source_file: str
    statements: int
    covered: int
    missing_lines: tuple[int, ...]
    missing: str
    excluded: int
    percent: float
    branches: int | None = None
    covered_branches: int | None = None
    partial_branches: int | None = None
    missing_branches: str | None = None


@dataclass(frozen=True)
class CoverageTotal:
    """Totals over the reported source files, as ``coverage report`` computes them."""

    files: int
    statements: int
    covered: int
    percent: float
    branches: int | None = None
    covered_branches: int | None = None


@dataclass(frozen=True)
class Skipped:
    """A data file that contributed nothing, and why."""

    data_file: str
    reason: str


@dataclass
class CoverageResult:
    """What one data file (a test file's) or a union of them (the run's) covers."""

    files: list[SourceFileCoverage] = field(default_factory=list)
    total: CoverageTotal | None = None
    #: (source file, line, context) for every line a named context ran
    contexts: list[tuple[str, int, str]] = field(default_factory=list)
    data_files: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def percent(self) -> float | None:
        """The total percent, or None when nothing was measured."""
        return self.total.percent if self.total else None


def config_file_for(root: Path) -> str | bool:
    """The coverage configuration to read data with: the one the children used, else none."""
    # imported here: importing the plugin package imports pytest, which a launcher that
    # reads no coverage (or has not started its children yet) does not need
    from devformance_nb.plugin.covconfig import CoverageConfigProblem, find_config_file

    try:
        return find_config_file([root.resolve()]) or False
    except CoverageConfigProblem:
        return False  # the children ran without coverage; nothing to configure


#: one coverage read at a time in this process: coverage.py parses source files with ``ast``,
#: and CPython 3.11 (gh-106905) can corrupt its AST recursion counter when two threads build
#: ASTs at once ("SystemError: AST constructor recursion depth mismatch"): two reader threads
#: reading their files' data together then lost one file's coverage on a busy machine (the
#: reads hold the GIL for most of their work anyway, so little parallelism is lost)
_READ_LOCK = threading.Lock()


def read_test_file(
    data_file: str | os.PathLike[str],
    root: Path,
    *,
    config_file: str | bool | None = None,
    contexts: bool = False,
) -> CoverageResult:
    """What one child's data file covers (``contexts``: also which test ran each line)."""
    return read_union([data_file], root, config_file=config_file, contexts=contexts)


def read_union(
    data_files: Iterable[str | os.PathLike[str]],
    root: Path,
    *,
    config_file: str | bool | None = None,
    contexts: bool = False,
    reasons: Mapping[str, str] | None = None,
) -> CoverageResult:
    """What the union of ``data_files`` covers: the run total over every child.

    Pass every child's expected data file, crashed ones too: those are listed in
    ``skipped``, so ``len(data_files)`` says how many files contributed.
    ``reasons`` (data file -> the child's own message, e.g. a broken coverage
    config) explains a missing file better than a guess.
    """
    with _READ_LOCK:
        return _read_union(data_files, root, config_file, contexts, reasons)


def _read_union(
    data_files: Iterable[str | os.PathLike[str]],
    root: Path,
    config_file: str | bool | None,
    contexts: bool,
    reasons: Mapping[str, str] | None,
) -> CoverageResult:
    result = CoverageResult()
    if config_file is None:
        config_file = config_file_for(root)
    loaded: dict[str, list[Any]] = {}
    for path in [os.fspath(p) for p in data_files]:
        parts, reason = load_parts(path)
        if parts:
            loaded[path] = parts
        else:
            result.skipped.append(Skipped(path, (reasons or {}).get(path) or reason))
    if loaded:
        _report(loaded, root, config_file, result)
    if contexts:
        for path in result.data_files:
            for data in loaded[path]:
                with held(data):
                    result.contexts += context_rows_of(data, root)
    return result


def load_parts(path: str) -> tuple[list[Any], str]:
    """The data of one child: ``path`` plus any xdist workers' ``path.gw<N>``; else why none.

    A child whose project runs pytest-xdist (``-n`` in addopts) measures in its
    workers too; covchild gives each worker its own file next to the main one.
    """
    parts = []
    data, reason = load_data(path)
    if data is not None:
        parts.append(data)
    for worker in sorted(glob.glob(glob.escape(path) + ".gw*")):
        found, _ = load_data(worker)
        if found is not None:
            parts.append(found)
    return parts, reason


def load_data(path: str) -> tuple[Any, str]:
    """A read ``CoverageData`` for ``path``, or (None, why it cannot be used)."""
    from coverage import CoverageData

    if not os.path.isfile(path):
        return None, "no coverage data (the child crashed, timed out, or measured nothing)"
    if os.path.getsize(path) == 0:
        return None, "the coverage data file is empty (the child died while writing it)"
    try:
        data = CoverageData(basename=path)
        data.read()
        data.measured_files()  # opens the database: a corrupt file fails here
    except Exception as exc:  # coverage's DataError or sqlite3's errors: skip the file
        return None, f"unreadable coverage data: {exc}"
    return data, ""


def held(data: Any) -> contextlib.AbstractContextManager[Any]:
    """One connection to ``data``'s file for every query made inside: coverage.py 7.10+
    connects again for each query made outside one (150 sources a test file, each read
    twice)."""
    connect = getattr(data, "_connect", None)
    return connect() if connect is not None else contextlib.nullcontext()


def context_rows_of(data: Any, root: Path) -> list[tuple[str, int, str]]:
    """(source file, line, context) for each line each named context ran in ``data``."""
    rows = []
    for filename in sorted(data.measured_files()):
        if not os.path.exists(filename):
            continue
        name = relative_name(filename, root)
        for line, names in sorted(data.contexts_by_lineno(filename).items()):
            rows += [(name, line, context) for context in sorted(names) if context]
    return rows


@functools.lru_cache(maxsize=65_536)
def relative_name(filename: str, root: Path) -> str:
    """``filename`` relative to ``root`` in posix form when inside it, else absolute posix.

    Kept: each test file's report names the same sources, and resolving one is a system
    call per path part."""
    path = Path(filename)
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()


def compact_lines(lines: Iterable[int], statements: Iterable[int]) -> str:
    """Lines as ranges, e.g. ``3-5, 9``; a range spans lines with no statement between them."""
    wanted = set(lines)
    parts: list[str] = []
    start = end = None
    for line in sorted(set(statements) | wanted):
        if line in wanted:
            start = line if start is None else start
            end = line
            continue
        if start is not None:
            parts.append(_span(start, end))
            start = None
    if start is not None:
        parts.append(_span(start, end))
    return ", ".join(parts)


def _span(start: int, end: int | None) -> str:
    return str(start) if end in (None, start) else f"{start}-{end}"


def _report(
    datas: dict[str, list[Any]], root: Path, config_file: str | bool, out: CoverageResult
) -> None:
    """Fill ``out`` from coverage's analysis of the union of ``datas`` (path -> its data)."""
    import coverage

    cov = reporting_class(coverage.Coverage)(data_file=None, config_file=config_file)
    union = cov.get_data()
    for path, parts in datas.items():
        try:
            for data in parts:
                with held(data):  # one file open at a time: a run's union reads thousands
                    union.update(data)
        except Exception as exc:  # branch data mixed with statement data
            out.skipped.append(Skipped(path, f"cannot combine: {exc}"))
        else:
            out.data_files.append(path)
    measured = sorted(union.measured_files())
    present = [f for f in measured if os.path.isfile(f)]
    out.notes += [
        f"{relative_name(f, root)} was measured but no longer exists; left out"
        for f in measured
        if not os.path.isfile(f)
    ]
    if not present:  # a report would cover every measured file for an empty list
        return
    _analysed(cov, present, root, out)


def _analysed(cov: Any, morfs: list[str], root: Path, out: CoverageResult) -> None:
    """Fill ``out`` from coverage's analysis of each file, the step every report of coverage
    shares (``get_analysis_to_report``, in coverage.py since 7.3).

    The figures are the ones every report of coverage prints (``Analysis.numbers``, summed
    the way its reporters sum them); the JSON report's extras are never built: its
    functions and classes sections and the JSON text cost a real suite's parent 36 s for
    60 test files (djangorestframework), more than the children's own work.
    """
    from coverage.exceptions import NoDataError
    from coverage.report_core import get_analysis_to_report
    from coverage.results import Numbers

    cov._prepare_data_for_reporting()  # the [paths] remapping, as every report does first
    cov.set_option("report:ignore_errors", True)
    data = cov.get_data()
    data.set_query_contexts(cov.get_option("report:contexts"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pairs = list(get_analysis_to_report(cov, morfs))
        except NoDataError:  # every file omitted by the [report] settings
            pairs = []
    out.notes += [str(w.message) for w in caught]
    total = Numbers(precision=cov.get_option("report:precision"))
    branched = data.has_arcs()
    for reporter, analysis in sorted(pairs, key=lambda pair: pair[0].relative_filename()):
        total += analysis.numbers
        name = relative_name(reporter.filename, root)
        out.files.append(_row_of(name, analysis, branched))
    if out.files:
        out.total = CoverageTotal(
            files=len(out.files),
            statements=total.n_statements,
            covered=total.n_executed,
            percent=float(total.pc_covered),
            branches=total.n_branches if branched else None,
            covered_branches=total.n_executed_branches if branched else None,
        )


#: rows made from analyses coverage made once (``covparse``): id -> (the analysis, its row)
_ROWS: dict[tuple[int, str, bool], tuple[Any, SourceFileCoverage]] = {}


def _row_of(name: str, analysis: Any, branched: bool) -> SourceFileCoverage:
    """``analysis``'s row, made once for an analysis shared by many test files' reports
    (its missing branches and line ranges cost as much as the analysis). Called under
    ``_READ_LOCK``; the entry holds the analysis, so its id is not reused while kept."""
    key = (id(analysis), name, branched)
    kept = _ROWS.get(key)
    if kept is not None and kept[0] is analysis:
        return kept[1]
    row = _analysis_row(name, analysis, branched)
    if hasattr(analysis, "data"):
        return row  # coverage.py before 7.5: never shared, and it holds the whole data
    if len(_ROWS) >= MAX_ANALYSES:
        _ROWS.clear()
    _ROWS[key] = (analysis, row)
    return row


def _analysis_row(name: str, analysis: Any, branched: bool) -> SourceFileCoverage:
    numbers = analysis.numbers
    missing = tuple(sorted(analysis.missing))
    arcs = (
        [(a, b) for a, targets in analysis.missing_branch_arcs().items() for b in targets]
        if branched
        else []
    )
    return SourceFileCoverage(
        source_file=name,
        statements=numbers.n_statements,
        covered=numbers.n_executed,
        missing_lines=missing,
        missing=compact_lines(missing, [*analysis.executed, *missing]),
        excluded=numbers.n_excluded,
        percent=float(numbers.pc_covered),
        branches=numbers.n_branches if branched else None,
        covered_branches=numbers.n_executed_branches if branched else None,
        partial_branches=numbers.n_partial_branches if branched else None,
        missing_branches=_arcs_text(arcs) if branched else None,
    )


def _arcs_text(arcs: Iterable[Sequence[int]]) -> str:
    """Missing branches as coverage prints them: ``12->14, 20->exit``."""
    return ", ".join(f"{a}->{b if b > 0 else 'exit'}" for a, b in arcs)


# -- what a total leaves out ----------------------------------------------------------------


def summary_note(result: CoverageResult, expected_files: int | None = None) -> str:
    """One line on what is missing from a total: files that did not contribute, and why."""
    parts = []
    expected = expected_files if expected_files is not None else len(result.data_files)
    expected = max(expected, len(result.data_files) + len(result.skipped))
    if len(result.data_files) < expected:
        parts.append(f"{len(result.data_files)} of {expected} test files contributed")
    by_reason: dict[str, list[str]] = {}
    for skipped in result.skipped:
        by_reason.setdefault(skipped.reason, []).append(Path(skipped.data_file).name)
    for reason, names in by_reason.items():  # one broken config: one line, not one per file
        parts.append(
            f"{names[0]}: {reason}" if len(names) == 1 else f"{reason} ({len(names)} files)"
        )
    parts += result.notes
    return "; ".join(parts)
