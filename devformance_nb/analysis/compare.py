"""Two runs side by side: what got better, what got worse, and whether that is a regression.

``compare_runs(store, a, b)`` reads run ``b`` and its base ``a`` (one run, or a baseline
of several: ``branch:main:last:5``) in DuckDB and returns a ``Comparison`` of small
DataFrames. Its ``regressions()`` lists what fails a CI job (``analysis.gate``): a new N+1
(a call site and fingerprint not in the base), a new slow query (a fingerprint the
slow-query rule reports as slow in ``b``, at ``b``'s ``slow_query_ms``, that the same rule
did not report in the base), total coverage down by more than the allowed points, tests
failing in ``b`` that did not fail in the base (unless flaky: both outcomes on one commit,
which is reported, never failing), tests over their query budget, and, when asked for,
statements per test or a file's peak memory up by more than a threshold; and what went
missing with no test failing at all:

- a broken file: a test file that errored (collection or import error), crashed or
  timed out in ``b`` and did not in ``a`` (or was not in ``a``); such a file has no
  test rows in ``b``, so comparing tests alone would miss it;
- a missing test: a test of ``a`` whose file ran in ``b`` (and is not reported as
  broken, whose detail counts the tests it lost) but which has no row in ``b``. A
  file of ``a`` with no row at all in ``b`` is not a regression: it was deleted,
  renamed or not selected by ``b``'s paths, and the run records cannot tell which,
  so removing a whole test file is taken as deliberate.

``statement_changes`` says, per test, which statements it sends more or fewer of.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from devformance_nb.analysis.gate import BROKEN_FILE_STATUSES, REGRESSION_COLUMNS, Gate
from devformance_nb.analysis.gate import notices as gate_notices
from devformance_nb.analysis.gate import regressions as gate_regressions
from devformance_nb.analysis.questions import SITE_SQL
from devformance_nb.analysis.select import (
    IN_RUNS,
    STATEMENT_TYPES,
    Runs,
    StoreLike,
    as_store,
    frame,
    select_in,
    select_one,
)
from devformance_nb.analysis.statements import over_budget, statement_changes
from devformance_nb.core.errors import RunNotFoundError
from devformance_nb.logic.slow import slow_sql

__all__ = ["REGRESSION_COLUMNS", "Comparison", "Gate", "compare_runs"]


@dataclass(frozen=True)
class Comparison:
    """Run ``b`` against run ``a`` (or a baseline of runs, ``base``): each field a DataFrame
    (empty when nothing changed)."""

    #: the newest base run (the one base run, when comparing two runs)
    a: str
    b: str
    #: both runs' rows of ``runs_overview`` (the base runs first, oldest first, then b)
    runs: pd.DataFrame
    new_n_plus_one: pd.DataFrame
    fixed_n_plus_one: pd.DataFrame
    new_slow_queries: pd.DataFrame
    #: every test of either run: queries, query time and duration in a and b
    query_changes: pd.DataFrame
    #: every source file of either run: coverage in a and b
    coverage_changes: pd.DataFrame
    newly_failing: pd.DataFrame
    #: test files that errored, crashed or timed out in b and did not in a
    broken_files: pd.DataFrame
    #: tests of a, with no row in b, of files that ran in b and are not broken there
    missing_tests: pd.DataFrame
    coverage_a: float | None
    coverage_b: float | None
    #: every base run, oldest first (``(a,)`` when comparing two runs)
    base: tuple[str, ...] = ()
    #: per test of both runs, each statement (fingerprint) whose count changed: see
    #: ``analysis.statements.statement_changes``
    statement_changes: pd.DataFrame | None = None
    #: tests of b over their query budget (marker or ``query_budgets``), with their statements
    over_budget: pd.DataFrame | None = None
    #: test files' peak memory (their process tree's) in a and b, growth in percent
    memory_changes: pd.DataFrame | None = None

    @property
    def coverage_delta(self) -> float | None:
        """Total coverage of b minus a, in percentage points (None without coverage)."""
        if self.coverage_a is None or self.coverage_b is None:
            return None
        return self.coverage_b - self.coverage_a

    def regressions(self, max_coverage_drop: float = 0.0, gate: Gate | None = None) -> pd.DataFrame:
        """What got worse and fails the gate (kind, subject, detail); empty when b is no worse.

        ``gate`` chooses what counts (default: ``Gate()``, every kind of regression but the
        opt-in thresholds); ``max_coverage_drop``: percentage points the total may fall, when
        no gate is given. Tests flaky on one commit never count: see ``notices``.
        """
        chosen = gate if gate is not None else Gate(coverage_drop=max_coverage_drop)
        return gate_regressions(self, chosen)

    def notices(self) -> pd.DataFrame:
        """What is reported but never fails the gate (kind, subject, detail): tests failing in
        b that both passed and failed on one commit (flaky)."""
        return gate_notices(self)


#: the base runs' filter: their ids are its one parameter
IN_BASE = IN_RUNS

#: N+1 findings of b not in the base (``is_b`` true), or of the base not in b (false): a
#: finding is in the base when at least half of the base runs have it; per run first (a
#: finding's statements summed over its tests), then the median over runs
_N_PLUS_ONE = f"""
WITH f AS (
    SELECT run_id, {SITE_SQL} AS site, fingerprint_hash, caller, table_name, count, nodeid,
           hint, example_sql
    FROM n_plus_one WHERE run_id = ? OR {IN_BASE}
), per AS (
    SELECT run_id, site, fingerprint_hash, any_value(caller) AS caller,
           any_value(table_name) AS table_name, sum(count)::BIGINT AS queries,
           list(DISTINCT nodeid ORDER BY nodeid) AS tests, any_value(hint) AS hint,
           any_value(example_sql) AS example_sql
    FROM f GROUP BY run_id, site, fingerprint_hash
), side AS (
    SELECT run_id = ? AS is_b, count(*) AS runs, site, fingerprint_hash,
           arg_max(caller, run_id) AS caller,
           any_value(table_name) AS table_name, round(median(queries))::BIGINT AS queries,
           list_sort(list_distinct(flatten(list(tests)))) AS tests,
           arg_max(hint, run_id) AS hint, arg_max(example_sql, run_id) AS example_sql
    FROM per GROUP BY is_b, site, fingerprint_hash
)
SELECT site, fingerprint_hash, caller, table_name, queries, tests, hint, example_sql
FROM side x WHERE is_b = ? AND (is_b OR runs * 2 >= ?) AND NOT EXISTS (
    SELECT 1 FROM side y WHERE y.is_b <> x.is_b AND (y.is_b OR y.runs * 2 >= ?)
    AND y.site = x.site AND y.fingerprint_hash = x.fingerprint_hash)
ORDER BY queries DESC, site, fingerprint_hash
"""

#: the slow-query rule (logic.slow) at b's threshold, over ``queries q`` joined with types ``t``
_SLOW = slow_sql("q.duration", "q.caller", "t.statement_type", "thr.ms")
_NEW_SLOW = f"""
WITH thr AS (SELECT slow_query_ms AS ms FROM runs WHERE run_id = ?),
b AS (
    SELECT q.fingerprint_hash, count(*) AS count, max(q.duration) * 1000 AS max_ms,
           mode(q.caller) AS call_site, list(DISTINCT q.nodeid ORDER BY q.nodeid) AS tests
    FROM queries q LEFT JOIN {STATEMENT_TYPES} t USING (fingerprint_hash), thr
    WHERE q.run_id = ? AND {_SLOW} GROUP BY q.fingerprint_hash
), a AS (
    SELECT q.fingerprint_hash, max(q.duration) * 1000 AS max_ms_a,
           count(DISTINCT q.run_id) FILTER (WHERE {_SLOW}) * 2 >= ? AS slow_a
    FROM queries q LEFT JOIN {STATEMENT_TYPES} t USING (fingerprint_hash), thr
    WHERE q.{IN_BASE} AND q.fingerprint_hash IN (SELECT fingerprint_hash FROM b)
    GROUP BY q.fingerprint_hash
)
SELECT b.fingerprint_hash, (SELECT any_value(fingerprint) FROM fingerprints f
                            WHERE f.fingerprint_hash = b.fingerprint_hash) AS fingerprint,
       b.count, b.max_ms, a.max_ms_a, b.call_site, b.tests
FROM b LEFT JOIN a USING (fingerprint_hash)
WHERE a.slow_a IS NOT TRUE
ORDER BY b.max_ms DESC, b.fingerprint_hash
"""

#: a test's base figures: medians over the base runs it ran in, its most common outcome
_QUERY_CHANGES = f"""
WITH a AS (
    SELECT nodeid, arg_max(file, run_id) AS file, median(queries) AS queries,
           median(query_time) AS query_time, median(duration) AS duration,
           mode(outcome) AS outcome
    FROM tests WHERE {IN_BASE} GROUP BY nodeid
), b AS (SELECT * FROM tests WHERE run_id = ?)
SELECT coalesce(b.nodeid, a.nodeid) AS nodeid, coalesce(b.file, a.file) AS file,
       a.queries AS queries_a, b.queries AS queries_b, b.queries - a.queries AS queries_delta,
       a.query_time * 1000 AS query_ms_a, b.query_time * 1000 AS query_ms_b,
       (b.query_time - a.query_time) * 1000 AS query_ms_delta,
       a.duration AS duration_a, b.duration AS duration_b, a.outcome AS outcome_a,
       b.outcome AS outcome_b
FROM a FULL OUTER JOIN b ON a.nodeid = b.nodeid
ORDER BY abs(queries_delta) DESC NULLS LAST, abs(query_ms_delta) DESC NULLS LAST, nodeid
"""

_COVERAGE_CHANGES = f"""
WITH a AS (
    SELECT source_file, median(percent) AS percent, median(covered) AS covered,
           median(statements) AS statements, median(missing) AS missing
    FROM coverage_files WHERE {IN_BASE} GROUP BY source_file
), b AS (SELECT * FROM coverage_files WHERE run_id = ?)
SELECT coalesce(b.source_file, a.source_file) AS source_file,
       a.percent AS percent_a, b.percent AS percent_b, b.percent - a.percent AS delta,
       a.covered AS covered_a, b.covered AS covered_b, a.statements AS statements_a,
       b.statements AS statements_b, a.missing AS missing_a, b.missing AS missing_b
FROM a FULL OUTER JOIN b ON a.source_file = b.source_file
ORDER BY delta NULLS LAST, source_file
"""

#: failing in b, mostly not failing in the base runs; ``flaky``: it both passed and failed on
#: one git commit, among b's and the base runs' commits (clean checkouts only)
_NEWLY_FAILING = f"""
WITH a AS (SELECT nodeid, mode(outcome) AS outcome FROM tests WHERE {IN_BASE} GROUP BY nodeid),
commits AS (
    SELECT DISTINCT git_commit FROM runs
    WHERE (run_id = ? OR {IN_BASE}) AND git_commit IS NOT NULL AND git_dirty IS NOT TRUE
), flaky AS (
    SELECT t.nodeid FROM tests t JOIN runs r USING (run_id)
    WHERE r.git_commit IN (SELECT git_commit FROM commits) AND r.git_dirty IS NOT TRUE
    GROUP BY t.nodeid, r.git_commit
    HAVING bool_or(t.outcome = 'passed') AND bool_or(t.outcome IN ('failed', 'error'))
)
SELECT b.nodeid, b.file, b.outcome AS outcome_b, a.outcome AS outcome_a, b.message,
       b.nodeid IN (SELECT nodeid FROM flaky) AS flaky
FROM tests b LEFT JOIN a ON a.nodeid = b.nodeid
WHERE b.run_id = ? AND b.outcome IN ('failed', 'error')
  AND (a.outcome IS NULL OR a.outcome NOT IN ('failed', 'error'))
ORDER BY b.file, b.nodeid
"""

_BROKEN = ", ".join(f"'{status}'" for status in BROKEN_FILE_STATUSES)
#: a file's base status: its most common one; its lost tests: the newest base run's
_BROKEN_FILES = f"""
WITH a AS (SELECT file, mode(status) AS status FROM test_files WHERE {IN_BASE} GROUP BY file),
     b AS (SELECT * FROM test_files WHERE run_id = ?),
     lost AS (  -- tests of the newest base run with no row in b, per file
         SELECT ta.file, count(*) AS n FROM tests ta
         WHERE ta.run_id = ? AND NOT EXISTS (
             SELECT 1 FROM tests tb WHERE tb.run_id = ? AND tb.nodeid = ta.nodeid)
         GROUP BY ta.file)
SELECT b.file, b.status AS status_b, a.status AS status_a, b.message,
       coalesce(lost.n, 0)::BIGINT AS missing_tests
FROM b LEFT JOIN a USING (file) LEFT JOIN lost USING (file)
WHERE b.status IN ({_BROKEN}) AND (a.status IS NULL OR a.status NOT IN ({_BROKEN}))
ORDER BY b.file
"""

#: tests of the newest base run missing from b. A file broken in b is one regression (see
#: _BROKEN_FILES), not one per test it lost; a file with no row in b at all was deleted or not
#: selected, which is no regression either
_MISSING_TESTS = f"""
SELECT ta.nodeid, ta.file, ta.outcome AS outcome_a, fb.status AS file_status_b
FROM tests ta JOIN test_files fb ON fb.run_id = ? AND fb.file = ta.file
WHERE ta.run_id = ? AND fb.status NOT IN ({_BROKEN})
  AND NOT EXISTS (SELECT 1 FROM tests tb WHERE tb.run_id = ? AND tb.nodeid = ta.nodeid)
ORDER BY ta.file, ta.nodeid
"""

_RUNS = f"""
SELECT run_id, started, status, git_branch, git_commit, tests, passed, failed, errors,
       queries, query_time * 1000 AS query_ms, slow_queries, n_plus_one, coverage_percent
FROM runs WHERE run_id = ? OR {IN_BASE} ORDER BY run_id = ?, started, run_id
"""


def compare_runs(store: StoreLike, a: Runs = "previous", b: str = "latest") -> Comparison:
    """Compare run ``b`` with ``a``: one run, or a baseline of several (selectors: ids,
    prefixes, latest, previous, last:N, branch:NAME:last:N...; a list selects the union).

    Against several base runs (``b`` itself left out), a test's or a file's base figure is
    its median over the runs it ran in (a status or outcome: the most common one), and an
    N+1 finding or a slow query is in the base when at least half of the base runs had it, so
    one noisy run does not set the bar; missing tests are those of the newest base run.
    """
    s = as_store(store)
    with s.reading() as con:
        run_b = select_one(con, b, s.path)
        base = [run for run in select_in(con, a, s.path) if run != run_b]
        if not base:
            raise RunNotFoundError(
                f"the baseline {a!r} selects no run other than b ({run_b}) in {s.path}; "
                "name older runs (previous, last:N, branch:NAME:last:N, a run id)"
            )
        newest = base[-1]
        n_plus_one, half = [run_b, base, run_b], [len(base), len(base)]
        runs = frame(con, _RUNS, [run_b, base, run_b])
        coverage = runs.set_index("run_id")["coverage_percent"]
        return Comparison(
            a=newest,
            b=run_b,
            base=tuple(base),
            runs=runs,
            new_n_plus_one=frame(con, _N_PLUS_ONE, [*n_plus_one, True, *half], ["tests"]),
            fixed_n_plus_one=frame(con, _N_PLUS_ONE, [*n_plus_one, False, *half], ["tests"]),
            new_slow_queries=frame(con, _NEW_SLOW, [run_b, run_b, len(base), base], ["tests"]),
            query_changes=frame(con, _QUERY_CHANGES, [base, run_b]),
            statement_changes=statement_changes(con, base, run_b),
            coverage_changes=frame(con, _COVERAGE_CHANGES, [base, run_b]),
            newly_failing=frame(con, _NEWLY_FAILING, [base, run_b, base, run_b]),
            broken_files=frame(con, _BROKEN_FILES, [base, run_b, newest, run_b]),
            missing_tests=frame(con, _MISSING_TESTS, [run_b, newest, run_b]),
            over_budget=over_budget(con, run_b),
            memory_changes=frame(con, _MEMORY_CHANGES, [base, run_b]),
            coverage_a=_median([coverage.get(run) for run in base]),
            coverage_b=_percent(coverage.get(run_b)),
        )


_MEMORY_CHANGES = f"""
WITH a AS (
    SELECT file, median(peak_rss) AS peak_rss FROM test_files
    WHERE {IN_BASE} AND peak_rss IS NOT NULL GROUP BY file
), b AS (SELECT file, peak_rss FROM test_files WHERE run_id = ? AND peak_rss IS NOT NULL)
SELECT b.file, a.peak_rss / 1e6 AS peak_mb_a, b.peak_rss / 1e6 AS peak_mb_b,
       (b.peak_rss - a.peak_rss) * 100.0 / a.peak_rss AS growth_percent
FROM b JOIN a USING (file) WHERE a.peak_rss > 0
ORDER BY growth_percent DESC, b.file
"""


def _median(values: list[object]) -> float | None:
    known = sorted(v for v in (_percent(x) for x in values) if v is not None)
    if not known:
        return None
    mid = len(known) // 2
    return known[mid] if len(known) % 2 else (known[mid - 1] + known[mid]) / 2


def _percent(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]
