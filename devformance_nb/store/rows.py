"""Row shapes of the stored findings: statements, fingerprints, N+1 findings and coverage.

One module owns them, for the live writer (``store.writer``) and bulk ingest
(``store.ingest``) alike. Statements are buffered as columns (not one dict per
statement): that keeps a million statements cheap to buffer and to hand to
DuckDB in one DataFrame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    import pandas as pd

from devformance_nb.core import events as ev
from devformance_nb.logic.detection import NPlusOneFinding
from devformance_nb.logic.eager import UnusedEagerLoad
from devformance_nb.logic.fingerprint import fingerprint, fingerprint_hash
from devformance_nb.logic.statementinfo import describe
from devformance_nb.run.covdata import CoverageResult, SourceFileCoverage, summary_note
from devformance_nb.store.database import registered

_COLUMNS = (
    "nodeid", "phase", "qseq", "started", "duration", "sql", "fingerprint_hash", "vendor",
    "alias", "rows", "caller", "sent_by", "stack_hash", "orm", "many", "params", "relation",
    "peers", "fix",
)  # fmt: skip


class QueryBuffer:
    """Query events of one run, as columns, until they are written."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}  # fingerprint -> hash, for this run
        self._reset()

    def _reset(self) -> None:
        self.run_ids: list[str] = []
        self.files: list[str] = []
        self.columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        self.new_fingerprints: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.files)

    def add(self, q: ev.Query) -> None:
        """Buffer one statement and note its fingerprint if it is new to this run."""
        fp = fingerprint(q.sql)
        digest = self._known.get(fp)
        if digest is None:
            digest = self._known[fp] = fingerprint_hash(fp)
            self.new_fingerprints[digest] = fp
        self.run_ids.append(q.run_id)
        self.files.append(q.file)
        c = self.columns
        c["nodeid"].append(q.nodeid)
        c["phase"].append(q.phase)
        c["qseq"].append(q.qseq)
        c["started"].append(q.start)
        c["duration"].append(q.duration)
        c["sql"].append(q.sql)
        c["fingerprint_hash"].append(digest)
        c["vendor"].append(q.vendor)
        c["alias"].append(q.alias)
        c["rows"].append(q.rows)
        c["caller"].append(q.caller)
        c["sent_by"].append(q.sent_by)
        c["stack_hash"].append(q.stack_hash)
        c["orm"].append(q.orm)
        c["many"].append(q.many)
        c["params"].append(q.params)
        c["relation"].append(q.relation)
        c["peers"].append(q.peers)
        c["fix"].append(q.fix)

    def take(self) -> tuple[pd.DataFrame, dict[str, str]]:
        """(queries frame, fingerprints new to this run: hash -> text), emptying the buffer.

        The fingerprints are described (sqlparse: about 1 ms each) only when written, by the
        store's writer thread and only if the store does not hold them already.
        """
        import pandas as pd  # imported on first use, while the children run

        queries = pd.DataFrame({"run_id": self.run_ids, "file": self.files, **self.columns})
        queries["started"] = pd.to_datetime(queries["started"], unit="s")
        queries["rows"] = queries["rows"].astype("Int64")
        fingerprints = self.new_fingerprints
        self._reset()
        return queries, fingerprints


def fingerprint_frame(fingerprints: dict[str, str]) -> pd.DataFrame:
    """One row per fingerprint: its hash, text, statement type, tables and pretty form."""
    import pandas as pd

    rows = []
    for digest, fp in fingerprints.items():
        info = describe(fp)
        rows.append(
            {
                "fingerprint_hash": digest,
                "fingerprint": fp,
                "statement_type": info.statement_type,
                "tables": list(info.tables),
                "pretty": info.pretty,
            }
        )
    return pd.DataFrame(
        rows, columns=["fingerprint_hash", "fingerprint", "statement_type", "tables", "pretty"]
    )


def write_fingerprints(con: duckdb.DuckDBPyConnection, fingerprints: pd.DataFrame) -> None:
    """Insert the rows of ``fingerprints`` (a ``fingerprint_frame``) the store does not hold."""
    if not len(fingerprints):
        return
    with registered(con, "_devformance_fps", fingerprints):
        con.execute(
            "INSERT INTO fingerprints SELECT * FROM _devformance_fps WHERE fingerprint_hash "
            "NOT IN (SELECT fingerprint_hash FROM fingerprints)"
        )


def add_fingerprints(con: duckdb.DuckDBPyConnection, fingerprints: dict[str, str]) -> None:
    """Describe and insert those of ``fingerprints`` (hash -> text) the store lacks.

    Describing is the cost (a run of a real suite: 3,700 fingerprints, 3 s of sqlparse),
    so the store is asked first: a suite run again describes only its new statements.
    """
    if not fingerprints:
        return
    import pandas as pd

    asked = pd.DataFrame({"fingerprint_hash": list(fingerprints)})
    with registered(con, "_devformance_asked", asked):
        known = con.execute(
            "SELECT fingerprint_hash FROM fingerprints "
            "WHERE fingerprint_hash IN (SELECT fingerprint_hash FROM _devformance_asked)"
        ).fetchall()
    held = {row[0] for row in known}
    new = {digest: fp for digest, fp in fingerprints.items() if digest not in held}
    write_fingerprints(con, fingerprint_frame(new))


def write_queries(
    con: duckdb.DuckDBPyConnection, queries: pd.DataFrame, fingerprints: dict[str, str]
) -> None:
    """Insert statements, and fingerprints (hash -> text) the store does not know yet."""
    add_fingerprints(con, fingerprints)
    if len(queries):
        names = ", ".join(queries.columns)
        with registered(con, "_devformance_queries", queries):
            con.execute(f"INSERT INTO queries ({names}) SELECT {names} FROM _devformance_queries")


def stack_row(run_id: str, stack: ev.Stack) -> dict[str, Any]:
    """A ``stacks`` row: the hash and its frames as ``path:line function``, outermost first."""
    frames = [f"{path}:{line} {function}" for path, line, function in stack.frames]
    return {"stack_hash": stack.stack_hash, "frames": frames, "first_run": run_id}


def write_stacks(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Insert the stacks the store does not hold yet (a hash names the same frames forever)."""
    unique = list({row["stack_hash"]: row for row in rows}.values())
    if not unique:
        return
    # one set-based insert: executemany goes row by row (about 1 ms a stack: 26,000 stacks of
    # a real suite took 29 s of the parent's CPU while its children ran)
    import pandas as pd

    frame = pd.DataFrame(unique, columns=["stack_hash", "frames", "first_run"])
    with registered(con, "_devformance_stacks", frame):
        con.execute(
            "INSERT OR IGNORE INTO stacks (stack_hash, frames, first_run) "
            "SELECT stack_hash, CAST(frames AS VARCHAR[]), first_run FROM _devformance_stacks"
        )


def finding_rows(run_id: str, findings: Iterable[NPlusOneFinding]) -> list[dict[str, Any]]:
    """``n_plus_one`` rows for ``findings``."""
    return [
        {
            "run_id": run_id,
            "file": f.file,
            "nodeid": f.nodeid,
            "phase": f.phase,
            "fingerprint_hash": f.fingerprint_hash,
            "fingerprint": f.fingerprint,
            "table_name": f.table,
            "count": f.count,
            "total_duration": f.total_duration,
            "caller": f.caller,
            "sent_by": f.sent_by,
            "stack_hash": f.stack_hash,
            "example_sql": f.example_sql,
            "orm": f.orm,
            "hint": f.hint,
            "first_qseq": f.first_qseq,
            "relation": f.relation,
        }
        for f in findings
    ]


def unused_eager_rows(run_id: str, findings: Iterable[UnusedEagerLoad]) -> list[dict[str, Any]]:
    """``unused_eager_loads`` rows for ``findings``."""
    return [{"run_id": run_id, **asdict(f)} for f in findings]


#: the coverage columns of a ``runs`` or ``test_files`` row
COVERAGE_COLUMNS = (
    "coverage_percent",
    "coverage_statements",
    "coverage_covered",
    "coverage_branches",
    "coverage_covered_branches",
    "coverage_test_files",
    "coverage_note",
)


def coverage_columns(
    result: CoverageResult | None, expected_files: int | None = None
) -> dict[str, Any]:
    """The ``coverage_*`` columns of a ``runs`` (the union) or ``test_files`` (one data file)
    row; all None when coverage was not measured."""
    if result is None:
        return dict.fromkeys(COVERAGE_COLUMNS)
    total = result.total
    return {
        "coverage_percent": total.percent if total else None,
        "coverage_statements": total.statements if total else None,
        "coverage_covered": total.covered if total else None,
        "coverage_branches": total.branches if total else None,
        "coverage_covered_branches": total.covered_branches if total else None,
        "coverage_test_files": len(result.data_files),
        "coverage_note": summary_note(result, expected_files) or None,
    }


def source_file_rows(result: CoverageResult, run_id: str) -> list[dict[str, Any]]:
    """``coverage_files`` rows: the run's coverage of each source file."""
    return [{"run_id": run_id, **_source_columns(f)} for f in result.files]


def by_test_file_rows(result: CoverageResult, run_id: str, test_file: str) -> list[dict[str, Any]]:
    """``coverage_by_test_file`` rows: what ``test_file`` alone covers, per source file.

    Source files the test file never ran are left out (no row means 0 covered);
    its total percent on the ``test_files`` row still counts them.
    """
    return [
        {"run_id": run_id, "test_file": test_file, **_source_columns(f)}
        for f in result.files
        if f.covered or f.covered_branches
    ]


def context_rows(result: CoverageResult, run_id: str, test_file: str) -> list[dict[str, Any]]:
    """``coverage_contexts`` rows: which test (context) ran which line."""
    return [
        {
            "run_id": run_id,
            "test_file": test_file,
            "source_file": source,
            "line": line,
            "context": context,
        }
        for source, line, context in result.contexts
    ]


def test_file_coverage_rows(
    result: CoverageResult | None, run_id: str, test_file: str
) -> dict[str, list[dict[str, Any]]]:
    """``coverage_by_test_file`` and ``coverage_contexts`` rows of one test file, by table."""
    if result is None:
        return {}
    return {
        "coverage_by_test_file": by_test_file_rows(result, run_id, test_file),
        "coverage_contexts": context_rows(result, run_id, test_file),
    }


def _source_columns(f: SourceFileCoverage) -> dict[str, Any]:
    return {
        "source_file": f.source_file,
        "statements": f.statements,
        "covered": f.covered,
        "missing": f.missing,
        "missing_lines": list(f.missing_lines),
        "excluded": f.excluded,
        "percent": f.percent,
        "branches": f.branches,
        "covered_branches": f.covered_branches,
        "partial_branches": f.partial_branches,
        "missing_branches": f.missing_branches,
    }
