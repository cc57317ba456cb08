"""Two runs side by side: what got better, what got worse, and whether that is a regression.

``compare_runs(store, a, b)`` reads both runs (``a`` the base, ``b`` the new
one) in DuckDB and returns a ``Comparison`` of small DataFrames. Its
``regressions()`` lists what should fail a CI job: a new N+1 (a call site and
fingerprint not in ``a``), a new slow query (a fingerprint the slow-query rule
reports as slow in ``b``, at ``b``'s ``slow_query_ms``, that the same rule never
reported in ``a``), total coverage down by more than ``max_coverage_drop``
percentage points, tests failing in ``b`` that did not fail in ``a``, and what went
missing with no test failing at all:

- a broken file: a test file that errored (collection or import error), crashed or
  timed out in ``b`` and did not in ``a`` (or was not in ``a``); such a file has no
  test rows in ``b``, so comparing tests alone would miss it;
- a missing test: a test of ``a`` whose file ran in ``b`` (and is not reported as
  broken, whose detail counts the tests it lost) but which has no row in ``b``. A
  file of ``a`` with no row at all in ``b`` is not a regression: it was deleted,
  renamed or not selected by ``b``'s paths, and the run records cannot tell which,
  so removing a whole test file is taken as deliberate.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from devformance_nb.analysis.questions import SITE_SQL
from devformance_nb.analysis.select import STATEMENT_TYPES, StoreLike, as_store, frame, select_one
from devformance_nb.logic.slow import slow_sql

#: regressions() columns
REGRESSION_COLUMNS = ["kind", "subject", "detail"]
#: file statuses of a file whose tests did not all run to an outcome (see run/state.py)
BROKEN_FILE_STATUSES = ("error", "crashed", "timeout")


@dataclass(frozen=True)
class Comparison:
    """Run ``b`` against run ``a``: each field a DataFrame (empty when nothing changed)."""

    a: str
    b: str
    #: both runs' rows of ``runs_overview`` (a first)
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

    @property
    def coverage_delta(self) -> float | None:
        """Total coverage of b minus a, in percentage points (None without coverage)."""
        if self.coverage_a is None or self.coverage_b is None:
            return None
        return self.coverage_b - self.coverage_a

    def regressions(self, max_coverage_drop: float = 0.0) -> pd.DataFrame:
        """What got worse (kind, subject, detail); empty when b is no worse than a.

        ``max_coverage_drop``: percentage points the total may fall before it counts.
        """
        rows: list[dict[str, str]] = []
        for r in self.new_n_plus_one.itertuples():
            rows.append(
                {
                    "kind": "new N+1",
                    "subject": str(r.caller),
                    "detail": f"{r.queries} SELECTs on {r.table_name} in {', '.join(r.tests)}",
                }
            )
        for r in self.new_slow_queries.itertuples():
            rows.append(
                {
                    "kind": "new slow query",
                    "subject": str(r.call_site),
                    "detail": f"{r.max_ms:.0f} ms: {_short(str(r.fingerprint))}",
                }
            )
        delta = self.coverage_delta
        if delta is not None and -delta > max_coverage_drop + 1e-9:
            rows.append(
                {
                    "kind": "coverage down",
                    "subject": "total",
                    "detail": f"{self.coverage_a:.2f}% -> {self.coverage_b:.2f}% "
                    f"({delta:+.2f} points, allowed -{max_coverage_drop:g})",
                }
            )
        for r in self.newly_failing.itertuples():
            rows.append(
                {
                    "kind": "newly failing",
                    "subject": str(r.nodeid),
                    "detail": f"{r.outcome_b} (was {r.outcome_a or 'absent'})",
                }
            )
        for r in self.broken_files.itertuples():
            lost = f"; {r.missing_tests} tests of a not run" if r.missing_tests else ""
            message = f": {_short(_last_line(r.message), 70)}" if _text(r.message) else ""
            rows.append(
                {
                    "kind": "broken file",
                    "subject": str(r.file),
                    "detail": f"{r.status_b} (was {_text(r.status_a) or 'absent'}){message}{lost}",
                }
            )
        for r in self.missing_tests.itertuples():
            rows.append(
                {
                    "kind": "missing test",
                    "subject": str(r.nodeid),
                    "detail": f"{r.outcome_a} in a, absent from b ({r.file} {r.file_status_b})",
                }
            )
        return pd.DataFrame(rows, columns=REGRESSION_COLUMNS)


def _text(value: object) -> str | None:
    """A text cell of a frame, None for SQL NULL (which pandas may hand over as NaN)."""
    return value if isinstance(value, str) else None


def _last_line(text: str) -> str:
    """The last non-blank line of a collection error: the exception, after its traceback."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("E").strip() if lines else ""


def _short(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


_N_PLUS_ONE = f"""
WITH f AS (
    SELECT run_id, {SITE_SQL} AS site, fingerprint_hash, caller, table_name, count, nodeid,
           hint, example_sql
    FROM n_plus_one WHERE run_id IN (?, ?)
), per AS (
    SELECT run_id, site, fingerprint_hash, any_value(caller) AS caller,
           any_value(table_name) AS table_name, sum(count)::BIGINT AS queries,
           list(DISTINCT nodeid ORDER BY nodeid) AS tests, any_value(hint) AS hint,
           any_value(example_sql) AS example_sql
    FROM f GROUP BY run_id, site, fingerprint_hash
)
SELECT site, fingerprint_hash, caller, table_name, queries, tests, hint, example_sql
FROM per x WHERE run_id = ? AND NOT EXISTS (
    SELECT 1 FROM per y WHERE y.run_id = ? AND y.site = x.site
    AND y.fingerprint_hash = x.fingerprint_hash)
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
    SELECT q.fingerprint_hash, max(q.duration) * 1000 AS max_ms_a, bool_or({_SLOW}) AS slow_a
    FROM queries q LEFT JOIN {STATEMENT_TYPES} t USING (fingerprint_hash), thr
    WHERE q.run_id = ? AND q.fingerprint_hash IN (SELECT fingerprint_hash FROM b)
    GROUP BY q.fingerprint_hash
)
SELECT b.fingerprint_hash, (SELECT any_value(fingerprint) FROM fingerprints f
                            WHERE f.fingerprint_hash = b.fingerprint_hash) AS fingerprint,
       b.count, b.max_ms, a.max_ms_a, b.call_site, b.tests
FROM b LEFT JOIN a USING (fingerprint_hash)
WHERE a.slow_a IS NOT TRUE
ORDER BY b.max_ms DESC, b.fingerprint_hash
"""

_QUERY_CHANGES = """
WITH a AS (SELECT * FROM tests WHERE run_id = ?), b AS (SELECT * FROM tests WHERE run_id = ?)
SELECT coalesce(b.nodeid, a.nodeid) AS nodeid, coalesce(b.file, a.file) AS file,
       a.queries AS queries_a, b.queries AS queries_b, b.queries - a.queries AS queries_delta,
       a.query_time * 1000 AS query_ms_a, b.query_time * 1000 AS query_ms_b,
       (b.query_time - a.query_time) * 1000 AS query_ms_delta,
       a.duration AS duration_a, b.duration AS duration_b, a.outcome AS outcome_a,
       b.outcome AS outcome_b
FROM a FULL OUTER JOIN b ON a.nodeid = b.nodeid
ORDER BY abs(queries_delta) DESC NULLS LAST, abs(query_ms_delta) DESC NULLS LAST, nodeid
"""

_COVERAGE_CHANGES = """
WITH a AS (SELECT * FROM coverage_files WHERE run_id = ?),
     b AS (SELECT * FROM coverage_files WHERE run_id = ?)
SELECT coalesce(b.source_file, a.source_file) AS source_file,
       a.percent AS percent_a, b.percent AS percent_b, b.percent - a.percent AS delta,
       a.covered AS covered_a, b.covered AS covered_b, a.statements AS statements_a,
       b.statements AS statements_b, a.missing AS missing_a, b.missing AS missing_b
FROM a FULL OUTER JOIN b ON a.source_file = b.source_file
ORDER BY delta NULLS LAST, source_file
"""

_NEWLY_FAILING = """
SELECT b.nodeid, b.file, b.outcome AS outcome_b, a.outcome AS outcome_a, b.message
FROM tests b LEFT JOIN (SELECT * FROM tests WHERE run_id = ?) a ON a.nodeid = b.nodeid
WHERE b.run_id = ? AND b.outcome IN ('failed', 'error')
  AND (a.outcome IS NULL OR a.outcome NOT IN ('failed', 'error'))
ORDER BY b.file, b.nodeid
"""

_BROKEN = ", ".join(f"'{status}'" for status in BROKEN_FILE_STATUSES)
_BROKEN_FILES = f"""
WITH a AS (SELECT * FROM test_files WHERE run_id = ?),
     b AS (SELECT * FROM test_files WHERE run_id = ?),
     lost AS (  -- tests of a with no row in b, per file
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

#: a file broken in b is one regression (see _BROKEN_FILES), not one per test it lost; a file
#: with no row in b at all was deleted or not selected, which is no regression either
_MISSING_TESTS = f"""
SELECT ta.nodeid, ta.file, ta.outcome AS outcome_a, fb.status AS file_status_b
FROM tests ta JOIN test_files fb ON fb.run_id = ? AND fb.file = ta.file
WHERE ta.run_id = ? AND fb.status NOT IN ({_BROKEN})
  AND NOT EXISTS (SELECT 1 FROM tests tb WHERE tb.run_id = ? AND tb.nodeid = ta.nodeid)
ORDER BY ta.file, ta.nodeid
"""

_RUNS = """
SELECT run_id, started, status, git_branch, git_commit, tests, passed, failed, errors,
       queries, query_time * 1000 AS query_ms, slow_queries, n_plus_one, coverage_percent
FROM runs WHERE run_id IN (?, ?) ORDER BY run_id = ? DESC
"""


def compare_runs(store: StoreLike, a: str = "previous", b: str = "latest") -> Comparison:
    """Compare run ``b`` with run ``a`` (selectors: ids, prefixes, latest, previous...)."""
    s = as_store(store)
    with s.reading() as con:
        run_a, run_b = select_one(con, a, s.path), select_one(con, b, s.path)
        runs = frame(con, _RUNS, [run_a, run_b, run_a])
        per_run = runs.set_index("run_id")["coverage_percent"]
        return Comparison(
            a=run_a,
            b=run_b,
            runs=runs,
            new_n_plus_one=frame(con, _N_PLUS_ONE, [run_a, run_b, run_b, run_a], ["tests"]),
            fixed_n_plus_one=frame(con, _N_PLUS_ONE, [run_a, run_b, run_a, run_b], ["tests"]),
            new_slow_queries=frame(con, _NEW_SLOW, [run_b, run_b, run_a], ["tests"]),
            query_changes=frame(con, _QUERY_CHANGES, [run_a, run_b]),
            coverage_changes=frame(con, _COVERAGE_CHANGES, [run_a, run_b]),
            newly_failing=frame(con, _NEWLY_FAILING, [run_a, run_b]),
            broken_files=frame(con, _BROKEN_FILES, [run_a, run_b, run_a, run_b]),
            missing_tests=frame(con, _MISSING_TESTS, [run_b, run_a, run_b]),
            coverage_a=_percent(per_run.get(run_a)),
            coverage_b=_percent(per_run.get(run_b)),
        )


def _percent(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]
