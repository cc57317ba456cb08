"""Per-test statement diffs and query budgets, read from the stored statements.

A test's statements are counted per fingerprint (the statement's shape, for every driver and
ORM alike), so a diff says what changed in the SQL a test sends ("+12 x SELECT ... FROM
invoices WHERE id = ? at app/billing.py:42"), not only that its total moved. No snapshot
files: the base is what the store recorded.
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from devformance_nb.analysis.select import (
    IN_RUNS,
    Runs,
    StoreLike,
    as_store,
    frame,
    select_in,
    select_one,
)
from devformance_nb.core.errors import RunNotFoundError
from devformance_nb.logic.budgets import budget_for

#: statement_changes() columns
STATEMENT_CHANGE_COLUMNS = [
    "nodeid", "file", "change", "count_a", "count_b", "delta", "caller", "fingerprint",
    "fingerprint_hash",
]  # fmt: skip
#: statements of a test over its budget named in ``over_budget``
BUDGET_STATEMENTS_SHOWN = 5

#: tests that ran in b and in a base run; per (test, fingerprint): the median count over the
#: base runs the test ran in (0 in a run where it sent none), and b's count
_STATEMENT_CHANGES = f"""
WITH base_tests AS (SELECT run_id, nodeid FROM tests WHERE {IN_RUNS}),
both_runs AS (
    SELECT nodeid, any_value(file) AS file FROM tests
    WHERE run_id = ? AND nodeid IN (SELECT nodeid FROM base_tests) GROUP BY nodeid
), c AS (
    SELECT run_id, nodeid, fingerprint_hash, count(*) AS n, mode(caller) AS caller
    FROM queries WHERE {IN_RUNS} AND nodeid IN (SELECT nodeid FROM both_runs)
    GROUP BY run_id, nodeid, fingerprint_hash
), grid AS (
    SELECT t.run_id, t.nodeid, k.fingerprint_hash FROM base_tests t
    JOIN (SELECT DISTINCT nodeid, fingerprint_hash FROM c) k USING (nodeid)
), a AS (
    SELECT g.nodeid, g.fingerprint_hash, median(coalesce(c.n, 0)) AS count_a,
           any_value(c.caller) AS caller
    FROM grid g LEFT JOIN c USING (run_id, nodeid, fingerprint_hash)
    GROUP BY g.nodeid, g.fingerprint_hash
), b AS (
    SELECT nodeid, fingerprint_hash, count(*) AS count_b, mode(caller) AS caller
    FROM queries WHERE run_id = ? AND nodeid IN (SELECT nodeid FROM both_runs)
    GROUP BY nodeid, fingerprint_hash
), d AS (
    SELECT coalesce(b.nodeid, a.nodeid) AS nodeid,
           coalesce(b.fingerprint_hash, a.fingerprint_hash) AS fingerprint_hash,
           coalesce(a.count_a, 0)::DOUBLE AS count_a, coalesce(b.count_b, 0)::DOUBLE AS count_b,
           coalesce(b.caller, a.caller) AS caller
    FROM a FULL OUTER JOIN b ON a.nodeid = b.nodeid AND a.fingerprint_hash = b.fingerprint_hash
)
SELECT d.nodeid, both_runs.file,
       CASE WHEN count_a = 0 THEN 'added' WHEN count_b = 0 THEN 'removed'
            WHEN count_b > count_a THEN 'more' ELSE 'fewer' END AS change,
       count_a, count_b, count_b - count_a AS delta, caller,
       (SELECT any_value(fingerprint) FROM fingerprints f
        WHERE f.fingerprint_hash = d.fingerprint_hash) AS fingerprint,
       d.fingerprint_hash
FROM d JOIN both_runs USING (nodeid)
WHERE count_a <> count_b
ORDER BY d.nodeid, abs(count_b - count_a) DESC, d.fingerprint_hash
"""

_TESTS_OF = """
SELECT t.nodeid, t.file, t.queries, t.max_queries FROM tests t
WHERE t.run_id = ? AND t.queries IS NOT NULL ORDER BY t.nodeid
"""

_STATEMENTS_OF = """
SELECT q.nodeid, count(*) AS n, mode(q.caller) AS caller,
       (SELECT any_value(fingerprint) FROM fingerprints f
        WHERE f.fingerprint_hash = q.fingerprint_hash) AS fingerprint
FROM queries q WHERE q.run_id = ? AND q.nodeid IN (SELECT unnest(?::VARCHAR[]))
GROUP BY q.nodeid, q.fingerprint_hash ORDER BY q.nodeid, n DESC, fingerprint
"""


def statement_changes(con: duckdb.DuckDBPyConnection, base: list[str], b: str) -> pd.DataFrame:
    """Per test that ran in ``b`` and in a base run, each statement whose count changed:
    ``change`` (added, removed, more, fewer), ``count_a`` (the median over the base runs the
    test ran in), ``count_b``, ``delta``, the ``caller`` that sends it and its ``fingerprint``.
    Tests new in b or gone from it are not diffs (``query_changes`` lists them)."""
    df = frame(con, _STATEMENT_CHANGES, [base, b, base, b])
    return df[STATEMENT_CHANGE_COLUMNS]


def statement_diff(store: StoreLike, a: Runs = "previous", b: str = "latest") -> pd.DataFrame:
    """``statement_changes`` of run ``b`` against ``a`` (one run or a baseline of several:
    see ``compare_runs``), read from ``store``."""
    s = as_store(store)
    with s.reading() as con:
        run_b = select_one(con, b, s.path)
        base = [run for run in select_in(con, a, s.path) if run != run_b]
        if not base:
            raise RunNotFoundError(f"the baseline {a!r} selects no run other than {run_b}")
        return statement_changes(con, base, run_b)


def over_budget(con: duckdb.DuckDBPyConnection, b: str) -> pd.DataFrame:
    """Tests of run ``b`` that sent more statements than their budget: the marker's
    (``@pytest.mark.devformance(max_queries=N)``), else the first of the run's
    ``query_budgets`` patterns that matches. Columns: nodeid, file, queries, budget, and
    ``statements``: the test's most sent statements as ``12 x SELECT ... at site``."""
    row = con.execute("SELECT config FROM runs WHERE run_id = ?", [b]).fetchone()
    patterns = _budgets_of(row[0] if row else None)
    tests = frame(con, _TESTS_OF, [b])
    over: list[dict[str, object]] = []
    for t in tests.itertuples():
        marker = None if pd.isna(t.max_queries) else int(t.max_queries)
        budget = budget_for(str(t.nodeid), marker, patterns)
        if budget is not None and int(t.queries) > budget:
            over.append(
                {"nodeid": t.nodeid, "file": t.file, "queries": int(t.queries), "budget": budget}
            )
    found = pd.DataFrame(over, columns=["nodeid", "file", "queries", "budget"])
    found["statements"] = _statements(con, b, list(found["nodeid"]))
    return found


def _statements(con: duckdb.DuckDBPyConnection, b: str, nodeids: list[str]) -> list[list[str]]:
    if not nodeids:
        return []
    rows = frame(con, _STATEMENTS_OF, [b, nodeids])
    by_test: dict[str, list[str]] = {n: [] for n in nodeids}
    for r in rows.itertuples():
        shown = by_test[str(r.nodeid)]
        if len(shown) < BUDGET_STATEMENTS_SHOWN:
            at = f" at {r.caller}" if isinstance(r.caller, str) else ""
            shown.append(f"{r.n} x {compact(r.fingerprint)}{at}")
    return [by_test[n] for n in nodeids]


def compact(fingerprint: object, width: int = 90) -> str:
    """A statement's shape on one line, its SELECT list shown as ``…`` (the tables, joins and
    conditions tell two shapes apart; the column list rarely does), cut to ``width``."""
    flat = " ".join(str(fingerprint).split())
    upper = flat.upper()
    if upper.startswith("SELECT "):
        depth = 0
        for at, char in enumerate(upper):
            depth += (char == "(") - (char == ")")
            if depth == 0 and upper.startswith(" FROM ", at) and at > len("SELECT ") + 1:
                flat = "SELECT …" + flat[at:]
                break
    return one_line(flat, width)


def one_line(text: object, width: int = 90) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _budgets_of(config: object) -> dict[str, int]:
    """The ``query_budgets`` of a run's stored settings (JSON), in their order."""
    if not isinstance(config, str):
        return {}
    try:
        found = json.loads(config).get("query_budgets") or {}
    except (ValueError, AttributeError):
        return {}
    return {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}
