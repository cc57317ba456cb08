"""The ``devformance`` command: a thin formatter over the Python API."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from devformance_nb.api import facade as api
from devformance_nb.cli.changed import (
    add_selection_options,
    selection_lines,
    stored_coverage_line,
)
from devformance_nb.cli.findings import n_plus_one_lines, slow_lines, unused_eager_lines
from devformance_nb.cli.terminal import TerminalView
from devformance_nb.core.config import EXECUTORS, Overrides
from devformance_nb.core.errors import DevformanceError, MissingExtraError, PathNotFoundError
from devformance_nb.store.database import Store
from devformance_nb.store.recarry import missing_sources
from devformance_nb.store.schema import MIGRATIONS, SCHEMA_VERSION

DEMO_DIR = Path(__file__).resolve().parents[2] / "examples" / "bookshop"


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers", "-n", type=int, help="parallel pytest processes (default: CPUs)"
    )
    parser.add_argument("--db", help="DuckDB file (default: .devformance/devformance.duckdb)")
    parser.add_argument("--timeout", type=float, help="seconds before a file is killed")
    parser.add_argument("--root", help="project root (default: found from the working directory)")
    parser.add_argument("--executor", choices=EXECUTORS, help="how children start")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on this Dask scheduler, e.g. tcp://10.0.0.5:8786 (implies --executor dask)",
    )
    parser.add_argument(
        "--no-coverage",
        dest="coverage",
        action="store_false",
        default=None,
        help="do not measure coverage (faster)",
    )
    parser.add_argument(
        "--no-sql",
        dest="capture_sql",
        action="store_false",
        default=None,
        help="do not record SQL statements (faster)",
    )
    parser.add_argument(
        "--coverage-contexts",
        action="store_true",
        default=None,
        help="record which test ran each line",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="devformance",
        description="Run pytest one process per file and record tests, SQL and coverage.",
        epilog="Arguments after -- go to every pytest child, e.g. devformance run -- -x -q",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the tests and record them")
    run.add_argument("paths", nargs="*", help="test files or folders (default: testpaths)")
    _add_run_options(run)
    add_selection_options(run)
    watch = sub.add_parser("watch", help="on every save, run the test files it affects")
    watch.add_argument("paths", nargs="*", help="test files or folders (default: testpaths)")
    _add_run_options(watch)
    demo = sub.add_parser("demo", help="run the bundled bookshop demo")
    _add_run_options(demo)
    runs = sub.add_parser("runs", help="list recent runs")
    runs.add_argument("--db")
    runs.add_argument("--limit", type=int, default=20)
    ingest = sub.add_parser("ingest", help="load a run directory into the store")
    ingest.add_argument("run_dir")
    ingest.add_argument("--db")
    schema = sub.add_parser("schema", help="show the store's schema version and tables")
    schema.add_argument("--db")
    queries = sub.add_parser("queries", help="the slowest queries of a run")
    queries.add_argument("--run", help="run id or prefix (default: latest)")
    queries.add_argument("--db")
    queries.add_argument("--limit", type=int, default=20)
    nplus1 = sub.add_parser("nplus1", help="the N+1 findings of a run")
    nplus1.add_argument("--run", help="run id or prefix (default: latest)")
    nplus1.add_argument("--db")
    eager = sub.add_parser("eager", help="eager loads a run's tests asked for and never read")
    eager.add_argument("--run", help="run id or prefix (default: latest)")
    eager.add_argument("--db")
    coverage = sub.add_parser("coverage", help="coverage of a run: least covered files first")
    coverage.add_argument("--run", help="run id or prefix (default: latest)")
    coverage.add_argument("--db")
    coverage.add_argument("--limit", type=int, default=20)
    coverage.add_argument("--file", help="show the missing lines of this source file")
    report = sub.add_parser("report", help="write a self-contained HTML report of recent runs")
    report.add_argument("--html", required=True, metavar="OUT", help="the HTML file to write")
    report.add_argument("--db")
    report.add_argument(
        "--runs", default="last:20", help="latest, last:N, branch:NAME, all, a run id"
    )
    compare = sub.add_parser("compare", help="compare two runs; exit 1 on regressions")
    compare.add_argument("a", nargs="?", default="previous", help="base run (default: previous)")
    compare.add_argument("b", nargs="?", default="latest", help="new run (default: latest)")
    compare.add_argument("--db")
    compare.add_argument(
        "--baseline",
        metavar="RUNS",
        help="compare against several runs instead of a, per test the median "
        "(e.g. branch:main:last:5, last:5)",
    )
    compare.add_argument(
        "--fail-on",
        metavar="KINDS",
        help="what fails the gate, comma-separated (default: default): default, new-n-plus-one, "
        "new-slow-query, newly-failing, broken-file, missing-test, budget, "
        "coverage-drop[:POINTS], queries-up:PCT%% or queries-up:COUNT, memory-up:PCT%%",
    )
    compare.add_argument(
        "--max-coverage-drop",
        type=float,
        metavar="PCT",
        help="percentage points the total coverage may fall (default: 0)",
    )
    compare.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="what to print"
    )
    return parser


def _split_pytest_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, []


def _overrides(args: argparse.Namespace, pytest_args: list[str]) -> Overrides:
    return {
        "workers": args.workers,
        "db": args.db,
        "timeout": args.timeout,
        "executor": args.executor,
        "scheduler": args.scheduler,
        "coverage": args.coverage,
        "capture_sql": args.capture_sql,
        "coverage_contexts": args.coverage_contexts,
        "pytest_args": pytest_args or None,
    }


def cmd_run(args: argparse.Namespace, pytest_args: list[str]) -> int:
    view = TerminalView()
    try:
        run = api.run_tests(
            args.paths,
            root=args.root,
            observers=[view],
            changed=getattr(args, "changed", False),
            since=getattr(args, "since", None),
            **_overrides(args, pytest_args),
        )
    finally:  # a second Ctrl-C can cut the view's own close short: the terminal stays usable
        view.stop()
    if run.selection is not None:
        print("\n".join(selection_lines(run.selection)))
    if run.db is not None and run.store_error is None:
        print(f"devformance: stored as run {run.id} in {run.db}")
        carried = run.selection is not None and run.state.status_counts().get("carried")
        if carried and (line := stored_coverage_line(run.db, run.id)):
            print(f"devformance: {line}")
    for wait in run.store_waits:  # a second run, or a notebook, had the store
        print(f"devformance: {wait}", file=sys.stderr)
    if run.store_error is not None:
        print(f"devformance: error: {run.store_error}", file=sys.stderr)
    if run.selection is not None and not run.selection.selected and run.store_error is None:
        return 0  # nothing changed: every result carried, none failing
    return run.exit_code


def cmd_watch(args: argparse.Namespace, pytest_args: list[str]) -> int:
    from devformance_nb.cli.watch import watch_command  # watchfiles: only when watching

    return watch_command(args, _overrides(args, pytest_args))


def cmd_demo(args: argparse.Namespace, pytest_args: list[str]) -> int:
    if not (DEMO_DIR / "tests").is_dir():
        raise PathNotFoundError(
            f"the bookshop demo is not at {DEMO_DIR}; it ships in the source checkout: "
            "clone the repository and `pip install -e '.[demo]'` from it"
        )
    args.paths = []
    args.root = args.root or str(DEMO_DIR)
    return cmd_run(args, pytest_args)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Rows as an aligned text table."""
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def cmd_runs(args: argparse.Namespace, _: list[str]) -> int:
    rows = api.open_store(args.db).runs(args.limit)
    if not rows:
        print("no runs recorded yet; start one with `devformance run`")
        return 0
    print_table(
        rows,
        [
            "run_id",
            "started",
            "status",
            "duration",
            "files",
            "tests",
            "passed",
            "failed",
            "errors",
            "git_branch",
        ],
    )
    return 0


def cmd_ingest(args: argparse.Namespace, _: list[str]) -> int:
    state = api.ingest(args.run_dir, args.db)
    store = api.open_store(args.db, root=state.root or None)
    stored = store.run_counts(state.run_id)  # what is in the store, not what was replayed
    print(
        f"devformance: ingested run {state.run_id} ({state.status}): {stored['files']} files, "
        f"{stored['tests']} tests, {stored['queries']} queries"
    )
    carried = state.status_counts().get("carried", 0)
    if carried:
        with store.reading() as con:
            missing = missing_sources(con, state)
        print(f"devformance: {carried} files carried from earlier runs (a --changed run)")
        for source, files in sorted(missing.items()):
            # said, not dropped silently: the run's history has a hole until that run loads
            print(
                f"devformance: {len(files)} carried files not stored: their results come from "
                f"run {source}, which is not in this store (ingest its run directory, then "
                f"this one again): {', '.join(sorted(files))}"
            )
    return 0


def cmd_schema(args: argparse.Namespace, _: list[str]) -> int:
    store = api.open_store(args.db)
    print(f"store: {store.path}")
    print(f"schema version: {store.schema_version()} (this devformance_nb: {SCHEMA_VERSION})")
    for migration in MIGRATIONS:
        print(f"  {migration.version}: {migration.name}")
    if store.path.exists():
        tables = store.query(
            "SELECT table_name, count(*) AS columns FROM information_schema.columns "
            "GROUP BY table_name ORDER BY table_name"
        )
        print_table(tables, ["table_name", "columns"])
    return 0


def cmd_queries(args: argparse.Namespace, _: list[str]) -> int:
    from devformance_nb.analysis.runfindings import slow_queries

    store = api.open_store(args.db)
    run_id = store.resolve_run(args.run)
    rows = slow_queries(store, run_id, args.limit)
    print(f"run {run_id}: {len(rows)} slow queries" + (" (slowest first)" if rows else ""))
    for line in slow_lines(rows):
        print(line)
    return 0


def cmd_nplus1(args: argparse.Namespace, _: list[str]) -> int:
    from devformance_nb.analysis.runfindings import n_plus_one

    store = api.open_store(args.db)
    run_id = store.resolve_run(args.run)
    rows = n_plus_one(store, run_id)
    print(f"run {run_id}: {len(rows)} N+1 findings")
    for line in n_plus_one_lines(rows):
        print(line)
    return 0


def cmd_eager(args: argparse.Namespace, _: list[str]) -> int:
    from devformance_nb.analysis import unused_eager_loads

    store = api.open_store(args.db)
    run_id = store.resolve_run(args.run)
    rows = unused_eager_loads(store, run_id).to_dict("records")
    print(f"run {run_id}: {len(rows)} unused eager loads")
    for line in unused_eager_lines(rows):
        print(line)
    return 0


def cmd_coverage(args: argparse.Namespace, _: list[str]) -> int:
    from devformance_nb.analysis.runfindings import coverage_files, coverage_total

    store = api.open_store(args.db)
    run_id = store.resolve_run(args.run)
    total = coverage_total(store, run_id) or {}
    if total.get("coverage_percent") is None:
        why = total.get("coverage_note") or "coverage was off (--no-coverage) or nothing ran"
        print(f"run {run_id}: no coverage recorded ({why})")
        return 0
    print(
        f"run {run_id}: coverage {total['coverage_percent']:.1f}% of "
        f"{total['coverage_statements']} statements, from {total['coverage_test_files']} "
        f"of {total['files']} test files" + _note(total.get("coverage_note"))
    )
    if args.file:
        return _print_missing(store, run_id, args.file)
    print_table(
        coverage_files(store, run_id, args.limit),
        ["source_file", "statements", "covered", "percent", "missing"],
    )
    return 0


def _note(note: str | None) -> str:
    return f" ({note})" if note else ""


def _print_missing(store: Store, run_id: str, source_file: str) -> int:
    from devformance_nb.analysis.runfindings import coverage_of

    row = coverage_of(store, run_id, source_file)
    if row is None:
        raise PathNotFoundError(
            f"{source_file} was not measured in run {run_id}; "
            "`devformance coverage` lists the measured files"
        )
    print(
        f"{row['source_file']}: {row['percent']:.1f}% of {row['statements']} statements, "
        f"missing lines: {row['missing'] or 'none'}"
    )
    return 0


def _report_module() -> Any:
    """devformance_nb.cli.report, or a clear error naming the extra it needs."""
    try:
        from devformance_nb.cli import report
    except ImportError as exc:
        raise MissingExtraError(
            f"this command needs the notebook extra ({exc.name or exc} is missing): "
            "pip install 'devformance_nb[notebook]'"
        ) from None
    return report


def cmd_report(args: argparse.Namespace, _: list[str]) -> int:
    write_report = _report_module().write_report

    path = write_report(args.html, api.open_store(args.db), args.runs)
    print(f"devformance: report written to {path}")
    return 0


def cmd_compare(args: argparse.Namespace, _: list[str]) -> int:
    # the bare package suffices: neither the report nor the charts (Altair) are imported here
    from devformance_nb.analysis.compare import Gate, compare_runs
    from devformance_nb.cli.comparison import render

    gate = Gate.parse(args.fail_on) if args.fail_on else Gate()
    if args.max_coverage_drop is not None:
        gate = dataclasses.replace(gate, coverage_drop=args.max_coverage_drop)
    comparison = compare_runs(api.open_store(args.db), args.baseline or args.a, args.b)
    print(render(comparison, args.format, gate))
    return 1 if len(comparison.regressions(gate=gate)) else 0


COMMANDS = {
    "run": cmd_run,
    "watch": cmd_watch,
    "demo": cmd_demo,
    "runs": cmd_runs,
    "ingest": cmd_ingest,
    "schema": cmd_schema,
    "queries": cmd_queries,
    "nplus1": cmd_nplus1,
    "eager": cmd_eager,
    "coverage": cmd_coverage,
    "report": cmd_report,
    "compare": cmd_compare,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``devformance`` command; returns the exit code."""
    own, pytest_args = _split_pytest_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    try:
        code = COMMANDS[args.command](args, pytest_args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then handled below
        return code
    except DevformanceError as exc:
        print(f"devformance: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("devformance: interrupted", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`devformance nplus1 | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
