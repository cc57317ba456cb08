"""One run's findings as rows, for the text surfaces: slow queries, N+1, coverage.

Part of the analysis layer (read-only). Each function takes a store (or the path of its
DuckDB file) and one run id, already resolved (``Store.resolve_run``), and returns rows as
dicts, the shape ``cli`` formats.
"""

from __future__ import annotations

from typing import Any

from devformance_nb.analysis.select import STATEMENT_TYPES, StoreLike, as_store
from devformance_nb.logic.slow import slow_sql

#: a 32-bit LIMIT for "no limit"
_NO_LIMIT = 2**31 - 1


def slow_queries(store: StoreLike, run_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The slowest statements of a run that the slow-query rule reports, slowest first.

    The rule is ``logic.slow.slow_sql`` at the run's own threshold:
    transaction control and statements without a project caller (test tooling) are left out.
    """
    rule = slow_sql("q.duration", "q.caller", "f.statement_type", "r.slow_query_ms")
    return as_store(store).query(
        "SELECT q.duration * 1000 AS ms, q.file, q.nodeid, q.caller, q.sql "
        "FROM queries q JOIN runs r USING (run_id) "
        f"LEFT JOIN {STATEMENT_TYPES} f USING (fingerprint_hash) "
        f"WHERE q.run_id = ? AND {rule} "
        "ORDER BY q.duration DESC LIMIT ?",
        [run_id, limit],
    )


def n_plus_one(store: StoreLike, run_id: str) -> list[dict[str, Any]]:
    """A run's N+1 findings, most repeated first.

    ``caller`` is the frame to change, ``sent_by`` the frame that sent the statement,
    ``relation`` the ORM relation loaded lazily ('' when the ORM did not say), and ``frames``
    the finding's whole stored stack (``path:line function``, outermost first; empty when the
    stack was not stored, as in runs recorded before stacks were).
    """
    return as_store(store).query(
        "SELECT n.file, n.nodeid, n.phase, n.caller, coalesce(n.sent_by, '') AS sent_by, "
        "coalesce(n.relation, '') AS relation, "
        "n.count, n.table_name, n.total_duration * 1000 AS ms, n.hint, n.example_sql, "
        "n.stack_hash, coalesce(s.frames, []) AS frames "
        "FROM n_plus_one n LEFT JOIN stacks s USING (stack_hash) WHERE n.run_id = ? "
        "ORDER BY n.count DESC, n.file, n.nodeid, n.first_qseq",
        [run_id],
    )


def coverage_total(store: StoreLike, run_id: str) -> dict[str, Any] | None:
    """The run's coverage columns (percent, statements, files that contributed, note)."""
    rows = as_store(store).query(
        "SELECT coverage_percent, coverage_statements, coverage_covered, coverage_branches, "
        "coverage_covered_branches, coverage_test_files, coverage_note, files "
        "FROM runs WHERE run_id = ?",
        [run_id],
    )
    return rows[0] if rows else None


def coverage_files(store: StoreLike, run_id: str, limit: int | None = 20) -> list[dict[str, Any]]:
    """A run's coverage per source file, least covered first (``limit`` None: every file)."""
    return as_store(store).query(
        "SELECT source_file, statements, covered, percent, missing, branches, "
        "covered_branches FROM coverage_files WHERE run_id = ? "
        "ORDER BY percent, statements DESC, source_file LIMIT ?",
        [run_id, limit if limit is not None else _NO_LIMIT],
    )


def coverage_of(store: StoreLike, run_id: str, source_file: str) -> dict[str, Any] | None:
    """One source file's coverage in a run (matched by its path or the end of it)."""
    rows = as_store(store).query(
        "SELECT source_file, statements, covered, percent, missing, missing_lines "
        "FROM coverage_files WHERE run_id = ? AND (source_file = ? OR source_file LIKE ?) "
        "ORDER BY length(source_file)",
        [run_id, source_file, f"%/{source_file.lstrip('./')}"],
    )
    return rows[0] if rows else None
