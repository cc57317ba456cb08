"""Questions about recorded runs, each a function returning a tidy pandas DataFrame.

Every function takes a store (or the path of its DuckDB file) and a run
selector (see ``analysis_select``: ``"latest"``, ``"last:10"``,
``"branch:main"``, a run id...), opens the store read-only and aggregates in
DuckDB: only the answer travels into pandas. Durations are in milliseconds
(``*_ms``) for SQL statements and in seconds (``*_s``) for tests and files.

An N+1 "site" is the calling code without its line number
(``path function``): an edit above the call moves the line, not the site.
"""

from __future__ import annotations

import pandas as pd

from devformance_nb.analysis.select import (
    IN_RUNS,
    MEASURED,
    STATEMENT_TYPES,
    Runs,
    StoreLike,
    as_store,
    big_table_filter,
    frame,
    runs_frame,
    select_in,
    select_one,
)
from devformance_nb.logic.slow import DEFAULT_SLOW_QUERY_MS, slow_sql
from devformance_nb.store.database import is_abandoned

#: SQL turning ``caller`` ("path:line function") into its site ("path function")
SITE_SQL = "regexp_replace(coalesce(caller, '?'), ':[0-9]+ ', ' ')"
SLOW_COLUMNS = [
    "fingerprint_hash", "fingerprint", "statement_type", "tables", "count", "runs", "total_ms",
    "p50_ms", "p95_ms", "max_ms", "slow_count", "call_site", "call_sites", "n_call_sites",
    "tests", "n_tests",
]  # fmt: skip
SLOW_ORDER = {
    "max": "max_ms",
    "p95": "p[2]",
    "p50": "p[1]",
    "total": "total_ms",
    "count": "count",
}


def runs_overview(store: StoreLike, runs: Runs = "last:20") -> pd.DataFrame:
    """One row per selected run, oldest first: status, git, totals, queries, N+1, coverage."""
    s = as_store(store)
    with s.reading() as con:
        ids = select_in(con, runs, s.path)
        df = frame(
            con,
            "SELECT run_id, started, status, git_branch, git_commit, git_dirty, duration "
            "AS duration_s, files, tests, passed, failed, errors, skipped, queries, "
            "query_time * 1000 AS query_ms, slow_queries, n_plus_one, coverage_percent, "
            f"host, pid FROM runs WHERE {IN_RUNS} ORDER BY started, run_id",
            [ids],
        )
    df["status"] = [
        "interrupted" if is_abandoned(st, host, None if pd.isna(pid) else int(pid)) else st
        for st, host, pid in zip(df["status"], df["host"], df["pid"], strict=True)
    ]
    return df.drop(columns=["host", "pid"])


def slowest_queries(
    store: StoreLike, runs: Runs = "latest", limit: int = 20, by: str = "max"
) -> pd.DataFrame:
    """The slowest statements by fingerprint: count, total, p50/p95/max, call sites, tests.

    ``by`` ranks them: ``max`` (default), ``p95``, ``p50``, ``total`` or
    ``count``. ``slow_count`` counts the executions the slow-query rule reports as
    slow (``logic.slow.is_slow`` at their run's ``slow_query_ms``). One
    pass ranks every fingerprint; percentiles, call sites and tests are then
    computed for the ``limit`` kept only (ranking by a percentile computes it
    for all: slower on big histories).
    """
    order = SLOW_ORDER.get(by)
    if order is None:
        raise ValueError(f"by must be one of {', '.join(SLOW_ORDER)}, not {by!r}")
    s = as_store(store)
    with s.reading() as con:
        ids = select_in(con, runs, s.path)
        thresholds = con.execute(
            f"SELECT DISTINCT coalesce(slow_query_ms, {DEFAULT_SLOW_QUERY_MS!r}) FROM runs "
            f"WHERE {IN_RUNS}",
            [ids],
        ).fetchall()
        if len(thresholds) == 1:  # the usual case: one threshold, no join with runs needed
            threshold, source = repr(float(thresholds[0][0])), "queries q"
        else:
            threshold, source = "r.slow_query_ms", "queries q JOIN runs r USING (run_id)"
        # the slow-query rule (logic.slow), so slow_count counts what a run reported as slow
        slow = slow_sql("q.duration", "q.caller", "t.statement_type", threshold)
        source += f" LEFT JOIN {STATEMENT_TYPES} t USING (fingerprint_hash)"
        where, params = big_table_filter(con, ids, "q.run_id")
        ranked = ", quantile_cont(q.duration, [0.5, 0.95]) AS p" if order.startswith("p[") else ""
        # pass 1 ranks every fingerprint with cheap aggregates; pass 2 details the kept ones
        top = con.execute(
            f"""
            SELECT fingerprint_hash, count(*) AS count, sum(q.duration) * 1000 AS total_ms,
                   max(q.duration) * 1000 AS max_ms, count(*) FILTER (WHERE {slow}) AS slow_count
                   {ranked}
            FROM {source} WHERE {where}
            GROUP BY fingerprint_hash ORDER BY {order} DESC, fingerprint_hash LIMIT ?
            """,
            [*params, limit],
        ).df()
        keep = list(top["fingerprint_hash"])
        detail = frame(
            con,
            f"""
            WITH d AS (
                SELECT fingerprint_hash, quantile_cont(duration, 0.5) * 1000 AS p50_ms,
                       quantile_cont(duration, 0.95) * 1000 AS p95_ms,
                       count(DISTINCT run_id) AS runs, mode(caller) AS call_site,
                       list(DISTINCT caller ORDER BY caller) FILTER (WHERE caller IS NOT NULL)
                           AS call_sites,
                       list(DISTINCT nodeid ORDER BY nodeid) FILTER (WHERE nodeid IS NOT NULL)
                           AS tests
                FROM queries q
                WHERE {where} AND fingerprint_hash IN (SELECT unnest(?::VARCHAR[]))
                GROUP BY fingerprint_hash
            ), f AS (
                SELECT fingerprint_hash, any_value(fingerprint) AS fingerprint,
                       any_value(statement_type) AS statement_type, any_value(tables) AS tables
                FROM fingerprints WHERE fingerprint_hash IN (SELECT unnest(?::VARCHAR[]))
                GROUP BY fingerprint_hash
            )
            SELECT * FROM d LEFT JOIN f USING (fingerprint_hash)
            """,
            [*params, keep, keep],
            lists=("tables", "call_sites", "tests"),
        )
    df = top.drop(columns=["p"], errors="ignore").merge(detail, on="fingerprint_hash", how="left")
    df["n_call_sites"] = [len(v) for v in df["call_sites"]]
    df["n_tests"] = [len(v) for v in df["tests"]]
    return df[SLOW_COLUMNS]


def n_plus_one_hotspots(store: StoreLike, runs: Runs = "last:20") -> pd.DataFrame:
    """N+1 findings grouped by call site and fingerprint across runs, most queries first.

    ``caller`` is the frame to change, ``sent_by`` the frame that sent the statement (a
    database helper, when it is another frame; '' in runs recorded before it was kept),
    ``relation`` the ORM relation loaded lazily ('' when the ORM did not say).
    ``first_seen_run``/``last_seen_run`` bound where a hotspot appears in the
    selection; ``open`` says it is still there in the newest selected run.
    """
    s = as_store(store)
    with s.reading() as con:
        ids = select_in(con, runs, s.path)
        latest = ids[-1] if ids else None
        return frame(
            con,
            f"""
            SELECT {SITE_SQL} AS site, n.fingerprint_hash,
                   any_value(n.table_name) AS table_name,
                   arg_max(n.caller, r.started) AS caller,
                   arg_max(coalesce(n.sent_by, ''), r.started) AS sent_by,
                   arg_max(coalesce(n.relation, ''), r.started) AS relation,
                   count(DISTINCT n.run_id) AS runs, count(*) AS findings,
                   sum(n.count)::BIGINT AS queries, max(n.count) AS max_count,
                   sum(n.total_duration) * 1000 AS total_ms,
                   list(DISTINCT n.nodeid ORDER BY n.nodeid) AS tests,
                   count(DISTINCT n.nodeid) AS n_tests,
                   arg_min(n.run_id, r.started) AS first_seen_run, min(r.started) AS first_seen,
                   arg_max(n.run_id, r.started) AS last_seen_run, max(r.started) AS last_seen,
                   bool_or(n.run_id = ?) AS open,
                   arg_max(n.hint, r.started) AS hint,
                   arg_max(n.example_sql, r.started) AS example_sql,
                   any_value(n.fingerprint) AS fingerprint
            FROM n_plus_one n JOIN runs r USING (run_id)
            WHERE n.{IN_RUNS}
            GROUP BY site, n.fingerprint_hash
            ORDER BY queries DESC, site, n.fingerprint_hash
            """,
            [latest, ids],
            lists=("tests",),
        )


def unused_eager_loads(store: StoreLike, runs: Runs = "latest") -> pd.DataFrame:
    """Eager loads tests asked for and never read, per run (tidy: one row per finding).

    ``relation`` was loaded by ``option`` (``selectinload(Author.books)``,
    ``.select_related("author")``) in ``count`` executions of the query at ``caller`` and no
    row's relation was read before the test ended; ``hint`` says what to drop. Empty for runs
    recorded before these were kept.
    """
    return runs_frame(
        store,
        runs,
        "SELECT u.run_id, r.started, u.file, u.nodeid, u.phase, u.relation, u.option, u.orm, "
        "u.count, u.caller, u.sent_by, u.stack_hash, u.hint "
        "FROM unused_eager_loads u JOIN runs r USING (run_id) "
        f"WHERE u.{IN_RUNS} ORDER BY r.started, u.run_id, u.file, u.nodeid, u.relation",
    )


def query_counts_per_test(store: StoreLike, runs: Runs = "last:20") -> pd.DataFrame:
    """Statements and their time per test per run (tidy: one row per run and test)."""
    return runs_frame(
        store,
        runs,
        "SELECT t.run_id, r.started, t.file, t.nodeid, t.outcome, t.queries, "
        "t.query_time * 1000 AS query_ms, t.carried_from FROM tests t JOIN runs r USING (run_id) "
        f"WHERE t.{IN_RUNS} ORDER BY r.started, t.run_id, t.file, t.nodeid",
    )


def query_counts_per_file(store: StoreLike, runs: Runs = "last:20") -> pd.DataFrame:
    """Statements, their time, slow statements and N+1 findings per test file per run."""
    return runs_frame(
        store,
        runs,
        "SELECT f.run_id, r.started, f.file, f.status, f.tests, f.queries, "
        "f.query_time * 1000 AS query_ms, f.slow_queries, f.n_plus_one, f.carried_from "
        "FROM test_files f JOIN runs r USING (run_id) "
        f"WHERE f.{IN_RUNS} ORDER BY r.started, f.run_id, f.file",
    )


def durations_per_test(store: StoreLike, runs: Runs = "latest") -> pd.DataFrame:
    """Each test's duration (setup + call + teardown) and outcome per run; ``carried_from``
    as in ``durations_per_file``."""
    return runs_frame(
        store,
        runs,
        "SELECT t.run_id, r.started, t.file, t.nodeid, t.outcome, t.duration AS duration_s, "
        f"t.carried_from FROM tests t JOIN runs r USING (run_id) WHERE t.{IN_RUNS} "
        "ORDER BY r.started, t.run_id, t.file, t.nodeid",
    )


def durations_per_file(store: StoreLike, runs: Runs = "last:20") -> pd.DataFrame:
    """Each test file's wall time and status per run; ``carried_from`` names the run whose
    result a --changed run carried (None: the file ran in this run)."""
    return runs_frame(
        store,
        runs,
        "SELECT f.run_id, r.started, f.file, f.status, f.tests, f.duration AS duration_s, "
        f"f.carried_from FROM test_files f JOIN runs r USING (run_id) WHERE f.{IN_RUNS} "
        "ORDER BY r.started, f.run_id, f.file",
    )


def _slowest(table: str, key: str, store: StoreLike, runs: Runs, limit: int) -> pd.DataFrame:
    outcome = "outcome" if table == "tests" else "status"
    file = ", any_value(x.file) AS file" if table == "tests" else ""
    s = as_store(store)
    with s.reading() as con:
        ids = select_in(con, runs, s.path)
        return frame(
            con,
            f"""
            SELECT {key}{file}, count(*) AS runs,
                   median(x.duration) AS median_s, avg(x.duration) AS mean_s,
                   min(x.duration) AS min_s, max(x.duration) AS max_s,
                   arg_max(x.duration, r.started) AS latest_s,
                   arg_max(x.{outcome}, r.started) AS latest_{outcome}
            FROM {table} x JOIN runs r USING (run_id)
            WHERE x.{IN_RUNS} AND x.duration IS NOT NULL AND x.{MEASURED}
            GROUP BY {key} ORDER BY median_s DESC, {key} LIMIT ?
            """,
            [ids, limit],
        )


def slowest_tests(store: StoreLike, runs: Runs = "last:20", limit: int = 20) -> pd.DataFrame:
    """The slowest tests over the selected runs (median first), with spread and latest time.

    Only runs that ran a test count (``runs``): a --changed run's carried copy of an earlier
    result is not a second measurement."""
    return _slowest("tests", "x.nodeid", store, runs, limit)


def slowest_files(store: StoreLike, runs: Runs = "last:20", limit: int = 20) -> pd.DataFrame:
    """The slowest test files over the selected runs (median wall time first; carried copies
    of a --changed run left out, as in ``slowest_tests``)."""
    return _slowest("test_files", "x.file", store, runs, limit)


def flaky_tests(store: StoreLike, runs: Runs = "last:50") -> pd.DataFrame:
    """Tests that both passed and failed on the same git commit (clean checkouts only).

    Runs without a commit, or on a dirty checkout, are left out: their code
    may differ from the commit's; so are a --changed run's carried copies (not a new outcome).
    """
    return runs_frame(
        store,
        runs,
        f"""
        SELECT t.nodeid, any_value(t.file) AS file, r.git_commit, count(*) AS runs,
               count(*) FILTER (WHERE t.outcome = 'passed') AS passed,
               count(*) FILTER (WHERE t.outcome IN ('failed', 'error')) AS failed,
               list(DISTINCT t.outcome ORDER BY t.outcome) AS outcomes,
               list(DISTINCT r.git_branch ORDER BY r.git_branch)
                   FILTER (WHERE r.git_branch IS NOT NULL) AS branches,
               arg_max(t.run_id, r.started) AS latest_run,
               arg_max(t.outcome, r.started) AS latest_outcome,
               arg_max(t.message, r.started) FILTER (WHERE t.outcome IN ('failed', 'error'))
                   AS failure
        FROM tests t JOIN runs r USING (run_id)
        WHERE t.{IN_RUNS} AND t.{MEASURED} AND r.git_commit IS NOT NULL
              AND r.git_dirty IS NOT TRUE
        GROUP BY t.nodeid, r.git_commit
        HAVING passed > 0 AND failed > 0
        ORDER BY failed DESC, t.nodeid, r.git_commit
        """,
        lists=("outcomes", "branches"),
    )


def failures(store: StoreLike, run: str = "latest", tail: int = 30) -> pd.DataFrame:
    """Failing tests of one run with their message, and the last output lines of their file.

    Files that crashed or timed out without a failing test appear with an
    empty ``nodeid``. ``output`` holds the file's last ``tail`` output lines.
    """
    s = as_store(store)
    with s.reading() as con:
        run_id = select_one(con, run, s.path)
        return frame(
            con,
            """
            WITH bad AS (
                SELECT f.file, f.status, t.nodeid, t.outcome, coalesce(t.message, f.message)
                       AS message
                FROM test_files f LEFT JOIN tests t
                  ON t.run_id = f.run_id AND t.file = f.file AND t.outcome IN ('failed', 'error')
                WHERE f.run_id = ? AND (t.nodeid IS NOT NULL OR f.status NOT IN
                      ('passed', 'failed', 'empty', 'not_run', 'stopped'))
            ), out AS (
                SELECT file, string_agg(text, chr(10) ORDER BY line) AS output FROM (
                    SELECT file, line, text, row_number() OVER (PARTITION BY file
                           ORDER BY line DESC) AS back
                    FROM output_lines WHERE run_id = ? AND file IN (SELECT file FROM bad)
                ) WHERE back <= ? GROUP BY file
            )
            SELECT bad.file, bad.status, bad.nodeid, bad.outcome, bad.message, out.output
            FROM bad LEFT JOIN out USING (file) ORDER BY bad.file, bad.nodeid
            """,
            [run_id, run_id, tail],
        )
