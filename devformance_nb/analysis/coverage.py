"""Coverage questions: the total and each source file over runs, and what each test file adds.

Part of the analysis layer (read-only, DataFrames out); ``analysis`` re-exports
these functions.
"""

from __future__ import annotations

import pandas as pd

from devformance_nb.analysis.select import IN_RUNS, Runs, StoreLike, as_store, frame, runs_frame
from devformance_nb.analysis.select import select_one as _select_one


def coverage_over_runs(store: StoreLike, runs: Runs = "last:20") -> pd.DataFrame:
    """The run total (union of every test file's coverage) per run, oldest first.

    Runs recorded without coverage are left out.
    """
    return runs_frame(
        store,
        runs,
        "SELECT run_id, started, git_branch, git_commit, coverage_percent AS percent, "
        "coverage_statements AS statements, coverage_covered AS covered, "
        "coverage_statements - coverage_covered AS missing, "
        "coverage_branches AS branches, coverage_covered_branches AS covered_branches "
        f"FROM runs WHERE {IN_RUNS} AND coverage_percent IS NOT NULL "
        "ORDER BY started, run_id",
    )


def coverage_per_file(store: StoreLike, runs: Runs = "last:20") -> pd.DataFrame:
    """Each source file's statements, covered lines, percent and missing lines per run."""
    return runs_frame(
        store,
        runs,
        "SELECT c.run_id, r.started, c.source_file, c.statements, c.covered, "
        "c.statements - c.covered AS missing_count, c.percent, c.missing, c.missing_lines "
        "FROM coverage_files c JOIN runs r USING (run_id) "
        f"WHERE c.{IN_RUNS} ORDER BY r.started, c.run_id, c.source_file",
        lists=("missing_lines",),
    )


def coverage_contribution(store: StoreLike, run: str = "latest") -> pd.DataFrame:
    """What each test file of one run covers, and which lines only it covers.

    ``covered`` sums the lines the file's tests ran over the source files it
    measured; ``unique`` counts lines no other test file ran, so
    ``unique_percent`` is how many points the run total would lose without
    that file. Sorted by ``unique``, then ``covered``.
    """
    s = as_store(store)
    with s.reading() as con:
        run_id = _select_one(con, run, s.path)
        return frame(
            con,
            """
            WITH cbt AS (
                SELECT test_file, source_file, statements, covered, missing_lines
                FROM coverage_by_test_file WHERE run_id = ?
            ), n AS (
                SELECT source_file, count(*) AS n FROM cbt GROUP BY source_file
            ), per_line AS (
                SELECT source_file, line, count(*) AS m, list(test_file) AS who
                FROM (SELECT source_file, test_file, unnest(missing_lines) AS line FROM cbt)
                GROUP BY source_file, line
            ), uniq AS (
                SELECT c.test_file, c.source_file, count(*) AS unique_lines
                FROM per_line p JOIN n USING (source_file) JOIN cbt c USING (source_file)
                WHERE n.n > 1 AND p.m = n.n - 1 AND NOT list_contains(p.who, c.test_file)
                GROUP BY c.test_file, c.source_file
            ), per_source AS (
                SELECT c.test_file, c.source_file, c.statements, c.covered,
                       CASE WHEN n.n = 1 THEN c.covered ELSE coalesce(u.unique_lines, 0) END
                           AS unique_lines
                FROM cbt c JOIN n USING (source_file)
                LEFT JOIN uniq u USING (test_file, source_file)
            ), total AS (
                SELECT coverage_statements AS statements FROM runs WHERE run_id = ?
            )
            SELECT test_file, count(*) FILTER (WHERE covered > 0) AS source_files,
                   sum(covered)::BIGINT AS covered, sum(unique_lines)::BIGINT AS "unique",
                   100.0 * sum(covered) / nullif(any_value(total.statements), 0)
                       AS covered_percent,
                   100.0 * sum(unique_lines) / nullif(any_value(total.statements), 0)
                       AS unique_percent,
                   list(source_file ORDER BY source_file)
                       FILTER (WHERE unique_lines > 0) AS unique_in
            FROM per_source, total
            GROUP BY test_file
            ORDER BY "unique" DESC, covered DESC, test_file
            """,
            [run_id, run_id],
            lists=("unique_in",),
        )
