"""Wall time of devformance against pytest-xdist and plain pytest, in one run, same machine.

Usage: python bench/bench_runner.py [--repeat 3] [--workers 2] [--executors forkserver,spawn]

Suites: a generated suite of 40 small files, a generated suite with skewed
file durations, and the bookshop demo. devformance runs with coverage and SQL
capture off (``--no-coverage --no-sql``, the like-for-like comparison with
xdist) and, for the fork server, also with both on. Every devformance variant
runs once before timing, so longest-first has history to order by. Prints a
markdown table of medians and ratios (paste it into bench/RESULTS.md), the
skewed suite's lower bound, and the per-file cost of each executor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOOKSHOP = REPO / "examples" / "bookshop"

SMALL = """
import pytest

@pytest.mark.parametrize("n", range(5))
def test_small(n):
    assert sum(range(n * 100)) >= 0
"""

#: the long files come last in file order: the order files start in decides the wall time
SKEWED_DURATIONS = [0.2] * 14 + [3.0, 3.0, 3.0]
SKEWED = """
import time

def test_work():
    time.sleep({seconds})
"""


def generate_small(folder: Path, files: int = 40) -> Path:
    """40 files of 5 quick tests each."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    tests = folder / "tests"
    tests.mkdir()
    for i in range(files):
        (tests / f"test_small_{i:02d}.py").write_text(SMALL)
    return folder


def generate_skewed(folder: Path) -> Path:
    """Three long files after 14 short ones: the order files start in decides the wall time."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    tests = folder / "tests"
    tests.mkdir()
    for i, seconds in enumerate(SKEWED_DURATIONS):
        (tests / f"test_skew_{i:02d}.py").write_text(SKEWED.format(seconds=seconds))
    return folder


def timed(command: list[str], cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # bytecode written, as in a user's shell: without it pytest rewrites every plugin module
    # again in each process, which flatters the tool starting the fewest processes
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}")
    return elapsed


def devformance(workers: int, executor: str, db: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "devformance_nb.cli",
        "run",
        "--workers",
        str(workers),
        "--db",
        str(db),
        "--executor",
        executor,
        *extra,
    ]


def commands(workers: int, executors: list[str], db: Path) -> dict[str, list[str]]:
    py = sys.executable
    out = {
        f"devformance {name}": devformance(workers, name, db, "--no-coverage", "--no-sql")
        for name in executors
    }
    if "forkserver" in executors:
        out["devformance forkserver + coverage + SQL"] = devformance(workers, "forkserver", db)
    out[f"pytest -n {workers} --dist loadfile"] = [
        py,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        str(workers),
        "--dist",
        "loadfile",
    ]
    out[f"pytest -n {workers} (load)"] = [
        py,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        str(workers),
    ]
    out["pytest (plain)"] = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    return out


def measure(suite: Path, cmds: dict[str, list[str]], repeat: int) -> dict[str, float]:
    results: dict[str, list[float]] = {name: [] for name in cmds}
    for name, command in cmds.items():  # warm-up: file history for longest-first, disk caches
        if name.startswith("devformance"):
            timed(command, suite)
    for _ in range(repeat):  # interleaved, so drift hits every tool alike
        for name, command in cmds.items():
            results[name].append(timed(command, suite))
    return {name: statistics.median(times) for name, times in results.items()}


def per_file_cost(executor: str) -> float:
    """Median seconds per trivial file, start to end as the launcher sees it, warm executor.

    One worker, coverage and SQL off: what remains is starting the child (spawn:
    interpreter + pytest import; forkserver: one fork), a pytest session, the
    events file and the reader.
    """
    from devformance_nb.api import facade as api

    with tempfile.TemporaryDirectory() as tmp:
        folder = generate_small(Path(tmp), files=20)
        settings = {"workers": 1, "executor": executor, "coverage": False, "capture_sql": False}
        api.run_tests(root=folder, store=False, **settings)  # warm the server
        run = api.run_tests(root=folder, store=False, **settings)
        return statistics.median(fs.duration or 0.0 for fs in run.files)


def scheduling_spans(workers: int) -> tuple[float, float]:
    """Seconds from the first file's start to the last file's end on the skewed suite.

    First run: no history, so discovery order (the long files last); second run:
    longest first from the first run's stored durations. Fork server, coverage and
    SQL off; start-up (imports, discovery, server) is outside the span.
    """
    from devformance_nb.api import facade as api

    spans = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = generate_skewed(Path(tmp) / "skewed")
        for _ in range(2):
            run = api.run_tests(
                root=folder, workers=workers, executor="forkserver", coverage=False,
                capture_sql=False,
            )  # fmt: skip
            files = run.state.files.values()
            spans.append(
                max(fs.finished or 0.0 for fs in files) - min(fs.started or 0.0 for fs in files)
            )
    return spans[0], spans[1]


def skewed_bound(workers: int) -> float:
    """max(longest file, total / workers) for the skewed suite (sleep time only)."""
    return max(max(SKEWED_DURATIONS), sum(SKEWED_DURATIONS) / workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--executors", default="forkserver,spawn", help="comma-separated executor names"
    )
    args = parser.parse_args()
    executors = args.executors.split(",")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.repeat}\n")
    print("| suite | tool | wall s | vs xdist loadfile | vs plain pytest |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        suites = {
            "40 small files": generate_small(base / "small"),
            "skewed (17 files)": generate_skewed(base / "skewed"),
        }
        if (BOOKSHOP / "tests").is_dir():
            suites["bookshop demo"] = BOOKSHOP
        for suite_name, folder in suites.items():
            medians = measure(
                folder, commands(args.workers, executors, base / "b.duckdb"), args.repeat
            )
            xdist = medians[f"pytest -n {args.workers} --dist loadfile"]
            plain = medians["pytest (plain)"]
            for tool, seconds in medians.items():
                print(
                    f"| {suite_name} | {tool} | {seconds:.2f} | {seconds / xdist:.2f}x | "
                    f"{seconds / plain:.2f}x |"
                )
    bound = skewed_bound(args.workers)
    first, ordered = scheduling_spans(args.workers)
    print(f"\nskewed suite lower bound (sleep only): {bound:.2f} s")
    print(
        f"skewed suite, files span: discovery order {first:.2f} s ({first / bound:.2f}x bound), "
        f"longest first {ordered:.2f} s ({ordered / bound:.2f}x bound)"
    )
    for name in executors:
        print(f"per-file cost, {name} (warm, trivial file): {per_file_cost(name):.3f} s")


if __name__ == "__main__":
    main()
