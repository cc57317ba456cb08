"""The Dask executor on a LocalCluster against the local fork server: wall time and per-file cost.

Usage: python bench/bench_dask.py [--repeat 2] [--workers 2] [--files 200] [--suites S,S]

Suites: the bookshop demo (13 files, SQLAlchemy + SQLite, coverage on) and a generated suite of
``--files`` files of three trivial tests each (so a file's wall time is nearly all overhead).
Variants: ``forkserver`` (the local warm fork server), ``spawn`` (a cold ``python -m pytest``
per file, locally), ``dask`` (a ``distributed.LocalCluster`` of ``--workers``
single-threaded worker processes, the project read from the shared filesystem, children
forked from a warm server on each worker), ``dask-cold`` (the same, a cold ``python -m
pytest`` per file on the worker: ``dask_warm = false``) and ``dask-archive`` (warm, the
project shipped as a zip). The cluster
is started once (its start-up time is printed apart) and reused across runs, as a notebook
session or a CI job with a standing cluster would. Every variant runs once before timing (so
longest-first has history, and the fork server is warm). Runs go through ``run_tests`` in this
process with the store on, coverage and SQL capture on (the defaults).

Per-file overhead: ``wall * workers / files`` (each slot's share of the wall per file) and the
median of each file's own duration (start to finish as the launcher saw it). Prints a markdown
table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devformance_nb.api import facade as api  # noqa: E402

BOOKSHOP = REPO / "examples" / "bookshop"

TRIVIAL = """
def test_one():
    assert 1 + 1 == 2

def test_two():
    assert "a" * 3 == "aaa"

def test_three():
    assert sorted([3, 1, 2]) == [1, 2, 3]
"""


def generate(folder: Path, files: int) -> Path:
    """``files`` test files of three trivial tests each."""
    tests = folder / "tests"
    tests.mkdir(parents=True)
    (folder / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntestpaths = ['tests']\n")
    for i in range(files):
        (tests / f"test_trivial_{i:03d}.py").write_text(TRIVIAL)
    return folder


def bookshop(folder: Path) -> Path:
    shutil.copytree(BOOKSHOP, folder, ignore=shutil.ignore_patterns(".devformance", "__pycache__"))
    return folder


#: each Dask variant's settings in [tool.devformance]
DASK_SETTINGS = {
    "dask": 'dask_ship = "shared"',
    "dask-cold": 'dask_ship = "shared"\ndask_warm = false',
    "dask-archive": 'dask_ship = "archive"',
}


def with_settings(root: Path, settings: str) -> None:
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    if "[tool.devformance]" in text:
        text = text.replace("[tool.devformance]", f"[tool.devformance]\n{settings}")
    else:
        text += f"\n[tool.devformance]\n{settings}\n"
    pyproject.write_text(text)


def one_run(root: Path, variant: str, workers: int, client: Any) -> tuple[float, api.Run]:
    settings: dict[str, Any] = {"workers": workers, "db": root / "bench.duckdb"}
    if variant in ("forkserver", "spawn"):
        settings["executor"] = variant
    else:
        settings["client"] = client
    started = time.perf_counter()
    run = api.run_tests(root=root, **settings)
    elapsed = time.perf_counter() - started
    if run.status not in ("passed", "failed"):
        raise SystemExit(f"{variant} on {root}: {run.status}\n{run.summary()}")
    return elapsed, run


def measure(root: Path, variant: str, workers: int, repeat: int, client: Any) -> dict[str, float]:
    one_run(root, variant, workers, client)  # history for longest-first; a warm server
    walls, medians, files = [], [], 0
    for _ in range(repeat):
        wall, run = one_run(root, variant, workers, client)
        walls.append(wall)
        durations = [fs.duration for fs in run.files if fs.duration is not None]
        medians.append(statistics.median(durations))
        files = len(run.files)
    wall = statistics.median(walls)
    return {
        "wall": wall,
        "files": files,
        "slot_per_file": wall * workers / files,
        "file_median": statistics.median(medians),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--suites", default="bookshop,generated")
    parser.add_argument("--variants", default="forkserver,spawn,dask,dask-cold,dask-archive")
    args = parser.parse_args()

    import distributed

    started = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    print(f"LocalCluster of {args.workers} workers up in {time.perf_counter() - started:.1f} s")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        for suite in args.suites.split(","):
            for variant in args.variants.split(","):
                root = Path(tmp) / f"{suite}-{variant}"
                if suite == "bookshop":
                    bookshop(root)
                else:
                    generate(root, args.files)
                if variant in DASK_SETTINGS:
                    with_settings(root, DASK_SETTINGS[variant])
                figures = measure(root, variant, args.workers, args.repeat, client)
                rows.append((suite, variant, figures))
                print(suite, variant, {k: round(v, 3) for k, v in figures.items()}, flush=True)
    client.close()
    cluster.close()

    local = {suite: f for suite, variant, f in rows if variant == "forkserver"}
    print()
    print("| suite | files | executor | wall s | vs fork server | wall x workers / files, s |"
          " median file s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for suite, variant, f in rows:
        ratio = f["wall"] / local[suite]["wall"] if suite in local else float("nan")
        print(
            f"| {suite} | {f['files']:.0f} | {variant} | {f['wall']:.1f} | {ratio:.2f}x | "
            f"{f['slot_per_file']:.3f} | {f['file_median']:.3f} |"
        )


if __name__ == "__main__":
    main()
