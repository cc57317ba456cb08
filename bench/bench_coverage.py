"""What coverage costs: the bookshop suite with coverage on and off, against pytest-cov.

Usage: python bench/bench_coverage.py [--repeat 3] [--workers 2]

Rows, all on the bookshop demo with the same number of workers:

- ``devformance run`` (default executor) with ``--no-coverage``, with coverage
  on (the default) and with ``--coverage-contexts``;
- ``pytest -n W --dist loadfile`` without and with ``--cov=bookshop`` (pytest-cov).

The parent-side reading (``covdata``: one child's data file, and the run's
union) is timed separately, on the data files of the last coverage run.

Prints a markdown table of medians and ratios (paste it into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from devformance_nb.run import covdata

REPO = Path(__file__).resolve().parent.parent
BOOKSHOP = REPO / "examples" / "bookshop"

Timed = Callable[[Path], float]


def test_files() -> list[str]:
    """The bookshop's test files, relative to its root."""
    return sorted(
        p.relative_to(BOOKSHOP).as_posix() for p in (BOOKSHOP / "tests").rglob("test_*.py")
    )


def command(argv: list[str]) -> Timed:
    """A command run in the bookshop folder; seconds from start to exit."""

    def run(scratch: Path) -> float:
        env = {**os.environ, "COVERAGE_FILE": str(scratch / ".cov")}
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=BOOKSHOP, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}")
        return elapsed

    return run


def candidates(workers: int, scratch: Path) -> dict[str, Timed]:
    py = sys.executable
    xdist = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers)]
    xdist += ["--dist", "loadfile"]
    run = [py, "-m", "devformance_nb.cli", "run", "--workers", str(workers)]
    run += ["--db", str(scratch / "bench.duckdb")]
    return {
        "devformance run, --no-coverage": command([*run, "--no-coverage"]),
        "devformance run, coverage on": command(run),
        "devformance run, coverage + contexts": command([*run, "--coverage-contexts"]),
        f"pytest -n {workers} --dist loadfile": command(xdist),
        f"pytest -n {workers} --dist loadfile --cov": command(
            [*xdist, "--cov=bookshop", "--cov-report="]
        ),
    }


def measure(rows: dict[str, Timed], repeat: int, scratch: Path) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in rows}
    for i in range(repeat):  # interleaved, so drift hits every row alike
        for n, (name, timed) in enumerate(rows.items()):
            folder = scratch / f"{i}-{n}"
            folder.mkdir()
            times[name].append(timed(folder))
    return {name: statistics.median(found) for name, found in times.items()}


def reading_cost() -> tuple[float, float, float | None]:
    """Parent side: seconds to read one child's data (mean), the run total, and its percent."""
    runs = sorted((BOOKSHOP / ".devformance" / "runs").glob("*/"))
    with_data = [r for r in runs if list(r.glob("*.coverage"))]
    data_files = sorted(with_data[-1].glob("*.coverage"))
    started = time.perf_counter()
    for path in data_files:
        covdata.read_test_file(path, BOOKSHOP)
    per_file = (time.perf_counter() - started) / max(1, len(data_files))
    started = time.perf_counter()
    union = covdata.read_union(data_files, BOOKSHOP)
    return per_file, time.perf_counter() - started, union.percent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if not test_files():
        raise SystemExit(f"no bookshop tests under {BOOKSHOP / 'tests'}")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, bookshop demo "
        f"({len(test_files())} test files), {args.workers} workers, median of {args.repeat}\n"
    )
    with tempfile.TemporaryDirectory(prefix="bench-cov-") as tmp:
        scratch = Path(tmp)
        medians = measure(candidates(args.workers, scratch), args.repeat, scratch)
    per_file, union, percent = reading_cost()
    xdist_cov = medians[f"pytest -n {args.workers} --dist loadfile --cov"]
    print("| run | wall s | vs same runner, coverage off | vs xdist + pytest-cov |")
    print("|---|---|---|---|")
    for name, seconds in medians.items():
        if name.startswith("pytest"):
            base = medians[f"pytest -n {args.workers} --dist loadfile"]
        else:
            base = medians["devformance run, --no-coverage"]
        print(f"| {name} | {seconds:.2f} | {seconds / base:.2f}x | {seconds / xdist_cov:.2f}x |")
    print(
        f"\nparent side (covdata): {per_file * 1000:.0f} ms to read one test file's data, "
        f"{union * 1000:.0f} ms for the run total ({percent:.2f}%)"
    )


if __name__ == "__main__":
    main()
