"""Analysis speed: every analysis function, the comparison and the HTML report on a big store.

Usage: python bench/bench_analysis.py [--runs 1000] [--queries 10000000] [--db FILE] [--write]

Generates a store of ``--runs`` runs and ``--queries`` statement rows with
DuckDB SQL (no Python loop over rows; about a minute for the default size),
then times each analysis function cold (a fresh read-only connection each
call, as notebooks and the CLI use them) over its default selection and over
every run. ``--write`` records the figures in the "## Analysis" section of
bench/RESULTS.md. Target: each function under 1 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devformance_nb import analysis
from devformance_nb.analysis.compare import compare_runs
from devformance_nb.charts.renderer import vega_bundle
from devformance_nb.cli.report import build_report
from devformance_nb.store.database import Store

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
FILES, TESTS, FINGERPRINTS, SOURCES = 20, 100, 300, 30

GENERATE = """
CREATE TEMP TABLE r AS
SELECT i AS n, printf('2026%04d-%06d-%06x', 101 + i // 24, (i % 24) * 10000, i) AS run_id,
       TIMESTAMP '2026-01-01' + INTERVAL (i) HOUR AS started,
       CASE WHEN i % 10 = 9 THEN 'feature-' || (i // 10) ELSE 'main' END AS git_branch,
       md5('commit' || (i // 2)) AS git_commit
FROM range({runs}) t(i);

INSERT INTO runs (run_id, started, finished, status, exit_code, duration, git_commit,
    git_branch, git_dirty, host, pid, files, tests, passed, failed, errors, skipped, xfailed,
    xpassed, slow_query_ms, queries, query_time, slow_queries, n_plus_one, coverage_percent,
    coverage_statements, coverage_covered)
SELECT run_id, started, started + INTERVAL 40 SECOND,
       CASE WHEN n % 7 = 3 THEN 'failed' ELSE 'passed' END, CASE WHEN n % 7 = 3 THEN 1 ELSE 0 END,
       40 + random() * 10, git_commit, git_branch, false, 'bench', NULL, {files}, {tests},
       {tests} - (n % 7 = 3)::INT, (n % 7 = 3)::INT, 0, 0, 0, 0, 100, {per_run}, 5.0, 3, 5,
       80 + (n % 50) / 10.0, 3000, 2400 + n % 50 * 3
FROM r;

INSERT INTO test_files (run_id, file, status, duration, tests, passed, failed, queries,
    query_time, slow_queries, n_plus_one)
SELECT run_id, printf('tests/test_f%02d.py', f), 'passed', 1 + random() * (f + 1),
       {tests} // {files}, {tests} // {files}, 0, {per_run} // {files}, 0.2, 0, (f < 5)::INT
FROM r, range({files}) t(f);

INSERT INTO tests (run_id, file, nodeid, outcome, duration, call_duration, queries, query_time)
SELECT run_id, printf('tests/test_f%02d.py', t % {files}),
       printf('tests/test_f%02d.py::test_%03d', t % {files}, t),
       CASE WHEN t = 7 AND n % 7 = 3 THEN 'failed' ELSE 'passed' END,
       random() * random() * 2, random() * 0.1, {per_run} // {tests}, 0.05
FROM r, range({tests}) s(t);

INSERT INTO fingerprints
SELECT printf('%016x', fp), 'SELECT * FROM t' || fp || ' WHERE id = ?', 'SELECT',
       ['t' || fp], 'SELECT *\nFROM t' || fp || '\nWHERE id = ?'
FROM range({fingerprints}) t(fp);

INSERT INTO queries (run_id, file, nodeid, phase, qseq, started, duration, sql,
    fingerprint_hash, vendor, rows, caller, stack_hash, orm, many)
SELECT r.run_id, printf('tests/test_f%02d.py', (q % {tests}) % {files}),
       printf('tests/test_f%02d.py::test_%03d', (q % {tests}) % {files}, q % {tests}),
       'call', q, r.started,
       CASE WHEN q % 5000 = 17 THEN 0.15 + random() * 0.2 ELSE pow(random(), 4) * 0.02 END,
       'SELECT * FROM t' || (q * 7919 % {fingerprints}) || ' WHERE id = ' || q,
       printf('%016x', q * 7919 % {fingerprints}), 'sqlite', 1,
       printf('app/mod%02d.py:%d fn%d', q * 7919 % {fingerprints} % 40,
              10 + q * 7919 % {fingerprints} % 90, q * 7919 % {fingerprints} % 40),
       printf('%012x', q * 7919 % {fingerprints}), 'sqlalchemy', false
FROM r, range({per_run}) t(q) ORDER BY r.n, q;

INSERT INTO n_plus_one (run_id, file, nodeid, phase, fingerprint_hash, fingerprint, table_name,
    count, total_duration, caller, stack_hash, example_sql, orm, hint, first_qseq)
SELECT run_id, printf('tests/test_f%02d.py', k), printf('tests/test_f%02d.py::test_%03d', k, k),
       'call', printf('%016x', k), 'SELECT * FROM t' || k || ' WHERE id = ?', 't' || k,
       3 + (n + k) % 9, 0.01, printf('app/mod%02d.py:%d fn%d', k, 10 + k, k),
       printf('%012x', k), 'SELECT * FROM t' || k || ' WHERE id = 1', 'sqlalchemy',
       'use selectinload', k
FROM r, range(5) t(k) WHERE (n + k) % 17 <> 0;

INSERT INTO coverage_files (run_id, source_file, statements, covered, missing, missing_lines,
    percent)
SELECT run_id, printf('app/mod%02d.py', s), 100, 100 - (s + n) % 20, '1-' || ((s + n) % 20),
       range(1, 1 + (s + n) % 20), 100 - (s + n) % 20
FROM r, range({sources}) t(s);

INSERT INTO coverage_by_test_file (run_id, test_file, source_file, statements, covered,
    missing_lines, percent)
SELECT run_id, printf('tests/test_f%02d.py', f), printf('app/mod%02d.py', s), 100,
       100 - (20 + f % 30), range(1 + f % 5, 21 + f % 5 + f % 30), 100 - (20 + f % 30)
FROM r, range({files}) t(f), range({sources}) u(s) WHERE (f + s) % 3 = 0;
"""


def generate(db: Path, runs: int, queries: int) -> None:
    """A store with ``runs`` runs and ``queries`` statement rows, made in SQL."""
    store = Store(db)
    sql = GENERATE.format(
        runs=runs,
        per_run=queries // runs,
        files=FILES,
        tests=TESTS,
        fingerprints=FINGERPRINTS,
        sources=SOURCES,
    )
    with store.writing() as con:
        for statement in sql.split(";\n"):
            if statement.strip():
                con.execute(statement)
        con.execute("CHECKPOINT")


def timed(call: Callable[[], Any], repeat: int = 3) -> tuple[float, int]:
    """Median wall seconds of ``call`` and the rows it returned."""
    times, rows = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
        rows = len(result) if hasattr(result, "__len__") else 0
    return statistics.median(times), rows


def cases(db: Path, runs: int) -> list[tuple[str, str, Callable[[], Any]]]:
    """(function, selection, call) for every function, default selection and every run."""
    a = analysis
    return [
        ("runs_overview", "last:20", lambda: a.runs_overview(db)),
        ("runs_overview", "all", lambda: a.runs_overview(db, "all")),
        ("slowest_queries", "latest", lambda: a.slowest_queries(db)),
        ("slowest_queries", "last:20", lambda: a.slowest_queries(db, "last:20")),
        ("slowest_queries", "all", lambda: a.slowest_queries(db, "all")),
        ("n_plus_one_hotspots", "all", lambda: a.n_plus_one_hotspots(db, "all")),
        ("query_counts_per_test", "last:20", lambda: a.query_counts_per_test(db)),
        ("query_counts_per_test", "all", lambda: a.query_counts_per_test(db, "all")),
        ("query_counts_per_file", "all", lambda: a.query_counts_per_file(db, "all")),
        ("durations_per_test", "latest", lambda: a.durations_per_test(db)),
        ("durations_per_file", "all", lambda: a.durations_per_file(db, "all")),
        ("slowest_tests", "all", lambda: a.slowest_tests(db, "all")),
        ("slowest_files", "all", lambda: a.slowest_files(db, "all")),
        ("coverage_over_runs", "all", lambda: a.coverage_over_runs(db, "all")),
        ("coverage_per_file", "all", lambda: a.coverage_per_file(db, "all")),
        ("coverage_contribution", "latest", lambda: a.coverage_contribution(db)),
        ("flaky_tests", "all", lambda: a.flaky_tests(db, "all")),
        ("failures", "latest", lambda: a.failures(db)),
        ("compare_runs", "previous, latest", lambda: compare_runs(db).regressions()),
        ("compare_runs", "first, latest", lambda: compare_runs(db, f"latest~{runs - 1}")),
    ]


def write_results(lines: list[str]) -> None:
    """Replace (or add) the "## Analysis" section of bench/RESULTS.md, leaving the others."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Bench results\n"
    section = "\n".join(["## Analysis", "", *lines]).rstrip() + "\n"
    pattern = re.compile(r"^## Analysis\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=10_000_000)
    parser.add_argument("--db", help="reuse (or create) this store instead of a temp one")
    parser.add_argument("--write", action="store_true", help="record in bench/RESULTS.md")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory(prefix="bench-analysis-")
    db = Path(args.db) if args.db else Path(folder.name) / "big.duckdb"
    made = "reused"
    if not db.exists():
        start = time.perf_counter()
        generate(db, args.runs, args.queries)
        made = f"generated in {time.perf_counter() - start:.0f} s"
    size = os.path.getsize(db) / 2**20
    head = (
        f"{args.runs:,} runs, {args.queries:,} query rows, store {size:,.0f} MiB ({made}); "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the start; median of 3 cold calls (fresh connection)"
    )
    print(head)
    lines = [head, "", "| function | runs selected | rows out | seconds |", "|---|---|---|---|"]
    worst = 0.0
    for name, selection, call in cases(db, len(analysis.select_runs(db, "all"))):
        seconds, rows = timed(call)
        worst = max(worst, seconds)
        print(f"{name:<24} {selection:<18} {rows:>8} rows  {seconds:7.3f} s")
        lines.append(f"| {name} | {selection} | {rows:,} | {seconds:.3f} |")
    vega_bundle()  # once per process: the inlined Vega JavaScript (about 1 s, cached)
    for selection in ("last:20", "all"):
        seconds, size_out = timed(lambda s=selection: build_report(db, s), repeat=1)
        print(f"{'report':<24} {selection:<18} {size_out:>8} chars {seconds:7.3f} s")
        lines.append(f"| HTML report | {selection} | {size_out:,} chars | {seconds:.3f} |")
    verdict = "every analysis function under 1 s" if worst < 1 else f"slowest {worst:.2f} s"
    lines += ["", f"Slowest analysis call: {worst:.3f} s ({verdict})."]
    print(lines[-1])
    if args.write:
        write_results(lines)
        print(f"written to {RESULTS}")
    folder.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
