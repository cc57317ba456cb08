"""Carrying a test file's last result into a run that did not run it (``--changed``).

The file's rows of the last run that has it are copied into the new run: ``test_files`` and
``tests`` with ``carried_from`` naming the run that really ran it (kept through any number of
carries), and the rows the analysis and comparisons read per file (its statements, N+1
findings, unused eager loads, its own coverage, what it read). The run's totals and its
coverage union are then recomputed over every file, so comparing a ``--changed`` run with a
full one shows no test, statement or covered line lost to the selection.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from devformance_nb.logic.selection import Decision, ranges

#: per-file tables copied as they are (their ``file`` column names the test file)
_COPIED = (
    ("queries", "file"),
    ("n_plus_one", "file"),
    ("unused_eager_loads", "file"),
    ("coverage_by_test_file", "test_file"),
    ("selection_reads", "test_file"),
)


def carry(con: duckdb.DuckDBPyConnection, run_id: str, d: Decision) -> None:
    """Copy test file ``d.file``'s rows of its last run into ``run_id``, marked carried."""
    source = con.execute(
        "SELECT run_id FROM runs WHERE run_id IN (SELECT run_id FROM test_files WHERE file = ?)"
        " AND run_id <> ? ORDER BY started DESC LIMIT 1",
        [d.file, run_id],
    ).fetchone()
    if source is None:
        return
    src = source[0]
    con.execute(
        "INSERT INTO test_files SELECT * REPLACE (? AS run_id,"
        " coalesce(carried_from, run_id) AS carried_from, ? AS selected_because)"
        " FROM test_files WHERE run_id = ? AND file = ?",
        [run_id, d.reason, src, d.file],
    )
    con.execute(
        "INSERT INTO tests SELECT * REPLACE (? AS run_id,"
        " coalesce(carried_from, run_id) AS carried_from) FROM tests WHERE run_id = ? AND file = ?",
        [run_id, src, d.file],
    )
    for table, column in _COPIED:
        con.execute(
            f"INSERT INTO {table} SELECT * REPLACE (? AS run_id)"
            f" FROM {table} WHERE run_id = ? AND {column} = ?",
            [run_id, src, d.file],
        )


def retotal(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """The run's counts over all its files, carried ones included, and its coverage union."""
    con.execute(
        "UPDATE runs SET files = t.files, tests = t.tests, passed = t.passed,"
        " failed = t.failed, errors = t.errors, skipped = t.skipped, xfailed = t.xfailed,"
        " xpassed = t.xpassed,"
        " status = CASE WHEN runs.status = 'empty' AND t.passed > 0 THEN 'passed'"
        " ELSE runs.status END"
        " FROM (SELECT count(*) AS files, sum(tests) AS tests, sum(passed) AS passed,"
        " sum(failed) AS failed, sum(errors) AS errors, sum(skipped) AS skipped,"
        " sum(xfailed) AS xfailed, sum(xpassed) AS xpassed FROM test_files"
        " WHERE run_id = ?) AS t WHERE runs.run_id = ?",
        [run_id, run_id],
    )
    _coverage_union(con, run_id)


@dataclass
class _Source:
    """One source file's coverage merged over a run's test files."""

    statements: int
    excluded: int | None
    branches: int | None
    covered_branches: int | None
    missing: set[int]


def _coverage_union(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Rebuild the run's per-source coverage from its files' own (ran and carried).

    A line is missing in the run when every test file that measured its source missed it.
    Branch counts cannot be merged from per-file totals: the best file's count is kept, a
    lower bound, and the run's coverage note says so.
    """
    rows = con.execute(
        "SELECT source_file, statements, excluded, branches, covered_branches, missing_lines"
        " FROM coverage_by_test_file WHERE run_id = ? ORDER BY source_file",
        [run_id],
    ).fetchall()
    if not rows:
        return
    merged: dict[str, _Source] = {}
    for source, statements, excluded, branches, covered_branches, missing in rows:
        lines = set(missing or ())
        found = merged.get(source)
        if found is None:
            merged[source] = _Source(statements or 0, excluded, branches, covered_branches, lines)
        else:
            found.missing &= lines
            found.covered_branches = max(found.covered_branches or 0, covered_branches or 0)
    out = []
    for source, m in merged.items():
        missing_lines = sorted(m.missing)
        covered = m.statements - len(missing_lines)
        text = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges(missing_lines))
        percent = 100.0 * covered / m.statements if m.statements else 100.0
        out.append(
            (run_id, source, m.statements, covered, text, missing_lines, m.excluded, percent,
             m.branches, m.covered_branches, None, None)
        )  # fmt: skip
    # a source no file's own data lists (an empty module) keeps the run's row
    con.execute(
        "DELETE FROM coverage_files WHERE run_id = ? AND source_file IN (SELECT unnest(?))",
        [run_id, list(merged)],
    )
    con.executemany("INSERT INTO coverage_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", out)
    totals = con.execute(
        "SELECT sum(statements), sum(covered) FROM coverage_files WHERE run_id = ?", [run_id]
    ).fetchone()
    statements, covered = (int(totals[0] or 0), int(totals[1] or 0)) if totals else (0, 0)
    con.execute(
        "UPDATE runs SET coverage_statements = ?, coverage_covered = ?, coverage_percent = ?,"
        " coverage_branches = ?, coverage_covered_branches = ?,"
        " coverage_test_files = (SELECT count(DISTINCT test_file) FROM coverage_by_test_file"
        " WHERE run_id = ?), coverage_note = ? WHERE run_id = ?",
        [
            statements,
            covered,
            100.0 * covered / statements if statements else None,
            sum(m.branches or 0 for m in merged.values()),
            sum(m.covered_branches or 0 for m in merged.values()),
            run_id,
            "carried files' coverage merged from their own lines; branch coverage is a lower bound",
            run_id,
        ],
    )
