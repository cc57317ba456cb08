"""devformance on real open-source test suites, against pytest-xdist on the same machine.

Run: python bench/bench_real_suites.py [--workdir DIR] [--rounds 1] [--suite NAME ...]

Each suite is fetched as its PyPI sdist at bench time (``pip download --no-binary``; nothing
is committed), unpacked and installed into a virtualenv of its own with its test
dependencies, this repository (editable: the tree as it is now) and pytest-xdist +
pytest-cov. Then, interleaved, each round:

- ``pytest`` (plain, once): the reference outcome counts;
- ``devformance run --workers 2`` (default: coverage and SQL on) against
  ``pytest -n 2 --dist loadfile --cov=PKG``;
- ``devformance run --workers 2 --no-coverage --no-sql`` against ``pytest -n 2 --dist loadfile``.

Every devformance row is the whole command a user runs (interpreter start, discovery, the
fork server, the files, the store). Outcome counts of every row are printed beside plain
pytest's, so a run that is fast because it ran the wrong tests shows as such, and each
coverage total beside pytest-cov's, so one that is fast because it measured nothing does too
(a broken coverage read once made a run look 10% faster). Prints a
markdown table (paste it into bench/RESULTS.md). ``--workdir`` keeps the downloads and
virtualenvs for the next run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: worker processes on both sides (this machine has 2 cores)
WORKERS = 2


@dataclass(frozen=True)
class Suite:
    """A real project's test suite: its sdist, what its tests need, how to run them."""

    name: str
    kind: str
    requirement: str
    package: str
    deps: tuple[str, ...] = ()
    #: test paths (both tools), and pytest options (after ``--`` for devformance)
    paths: tuple[str, ...] = ()
    pytest_args: tuple[str, ...] = ()


SUITES = (
    Suite(
        "djangorestframework",
        "Django ORM, pytest-django, 60 test files",
        "djangorestframework==3.18.3",
        "rest_framework",
        ("django", "pytest-django", "dj-database-url", "uritemplate", "inflection"),
    ),
    Suite(
        "alembic",
        "SQLAlchemy's pytest plugin (follower databases, scratch folders)",
        "alembic==1.20.1",
        "alembic",
        ("black", "tzdata"),
    ),
    Suite(
        "sqlite-utils",
        "raw sqlite3",
        "sqlite-utils==4.2.1",
        "sqlite_utils",
        ("hypothesis", "cogapp"),
    ),
    Suite(
        "sqlmodel",
        "SQLAlchemy + FastAPI, 118 test files",
        "sqlmodel==0.0.50",
        "sqlmodel",
        (
            "sqlalchemy[asyncio]",
            "aiosqlite",
            "alembic",
            "dirty-equals",
            "fastapi",
            "httpx",
            "jinja2",
            "pyyaml",
        ),
        ("tests",),
        # release tooling, not the library: they need the maintainers' own scripts
        ("--ignore=tests/test_docs_cleanup.py", "--ignore=tests/test_prepare_release.py"),
    ),
)

#: outcome words of pytest's and devformance's summary lines
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)")
#: the run's coverage total: devformance's line, and pytest-cov's TOTAL row
_OUR_COVERAGE = re.compile(r"coverage: ([\d.]+)% of")
_COV_TOTAL = re.compile(r"^TOTAL\s.*?(\d+(?:\.\d+)?)%\s*$", re.MULTILINE)
#: devformance's summary line: how many test files ran
_FILES = re.compile(r"tests? in (\d+) files?")


@dataclass
class Row:
    """One command's wall time and outcome counts, per round."""

    label: str
    seconds: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: test files devformance ran (0 for pytest's rows)
    files: int = 0
    #: the coverage total the command printed ('' when it measured none)
    coverage: str = ""


def prepare(suite: Suite, workdir: Path) -> tuple[Path, Path]:
    """(project folder, virtualenv python): download and unpack unless done; install."""
    home = workdir / suite.name
    home.mkdir(parents=True, exist_ok=True)
    python = home / "venv" / "bin" / "python"
    projects = [p for p in home.iterdir() if p.is_dir() and p.name != "venv"]
    if not projects:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*pip, suite.requirement, "-d", str(home)], check=True)
        (sdist,) = home.glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(home, filter="data")
        projects = [p for p in home.iterdir() if p.is_dir() and p.name != "venv"]
    (project,) = projects
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    # every time, not only into a new venv: this checkout's dependencies may have grown since
    install = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(
        [*install, "-e", str(REPO), "pytest-xdist", "pytest-cov", *suite.deps, "-e", str(project)],
        check=True,
    )
    return project, python


def user_env() -> dict[str, str]:
    """This process's environment as a user's shell has it: no devformance settings, and
    bytecode written. ``PYTHONDONTWRITEBYTECODE`` (set on some CI machines and sandboxes)
    stops pytest from caching its assertion rewriting, so every process rewrites each
    plugin's modules again (hypothesis: 0.5 s a process): that flatters the tool that starts
    the fewest processes and is not what a user runs."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DEVFORMANCE_") and k != "PYTHONDONTWRITEBYTECODE"
    }


def timed(command: list[str], cwd: Path) -> tuple[float, str]:
    """(wall seconds, output) of one command."""
    env = user_env()
    began = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - began, proc.stdout + proc.stderr


def counts(output: str) -> dict[str, int]:
    """Outcome counts from the last summary line of pytest or devformance."""
    lines = [line for line in output.splitlines() if _COUNT.search(line)]
    if not lines:
        return {}
    last = lines[-1]
    if "devformance:" in last and "(" in last:
        last = last[last.rindex("(") :]
    return {("error" if w.startswith("error") else w): int(n) for n, w in _COUNT.findall(last)}


def bench(suite: Suite, workdir: Path, rounds: int) -> list[Row]:
    """Every command of one suite, interleaved round by round."""
    project, python = prepare(suite, workdir)
    devformance = [str(python), "-m", "devformance_nb.cli", "run", "--workers", str(WORKERS)]
    pytest = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    xdist = [*pytest, "-n", str(WORKERS), "--dist", "loadfile"]
    db = workdir / f"{suite.name}.duckdb"
    after = ["--", *suite.pytest_args] if suite.pytest_args else []
    args = [*suite.pytest_args, *suite.paths]
    commands = {
        "pytest (plain)": [*pytest, *args],
        "devformance default": [*devformance, "--db", str(db), *suite.paths, *after],
        "pytest -n 2 --dist loadfile --cov": [*xdist, f"--cov={suite.package}", *args],
        "devformance --no-coverage --no-sql": [
            *devformance,
            "--db",
            str(db),
            "--no-coverage",
            "--no-sql",
            *suite.paths,
            *after,
        ],
        "pytest -n 2 --dist loadfile": [*xdist, *args],
    }
    rows = {label: Row(label) for label in commands}
    for number in range(rounds):
        for label, command in commands.items():
            if label == "pytest (plain)" and number:
                continue
            seconds, output = timed(command, project)
            rows[label].seconds.append(seconds)
            rows[label].counts = counts(output)
            ran = _FILES.findall(output)
            total = _OUR_COVERAGE.findall(output) or _COV_TOTAL.findall(output)
            rows[label].coverage = f"{float(total[-1]):.1f}%" if total else ""
            rows[label].files = int(ran[-1]) if ran else 0
            print(f"{suite.name}: {label}: {seconds:.1f} s {rows[label].counts}", flush=True)
    return list(rows.values())


def table(suite: Suite, rows: list[Row]) -> str:
    """Markdown rows: wall time (best of rounds), ratio to its xdist pair, counts."""
    best = {row.label: min(row.seconds) for row in rows}
    pairs = {
        "devformance default": "pytest -n 2 --dist loadfile --cov",
        "devformance --no-coverage --no-sql": "pytest -n 2 --dist loadfile",
    }
    plain = next(row.counts for row in rows if row.label == "pytest (plain)")
    out = []
    for row in rows:
        ratio = extra = ""
        if row.label in pairs:  # against a pair that ran the suite; else it cannot compare
            pair = next(r for r in rows if r.label == pairs[row.label])
            ratio = f"{best[row.label] / best[pair.label]:.2f}x" if pair.counts else "(no pair)"
            if pair.counts and row.files:  # worker-seconds more than xdist's, per test file
                extra = f"{(best[row.label] - best[pair.label]) * WORKERS / row.files:+.3f}"
        same = "yes" if row.counts == plain else "NO"
        shown = ", ".join(f"{n} {word}" for word, n in sorted(row.counts.items()))
        out.append(
            f"| {suite.name} | {row.label} | {best[row.label]:.1f} | {ratio} | {extra} | {shown} "
            f"| {same} | {row.coverage} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep downloads and venvs")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--suite", action="append", help="only these suites (by name)")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="devformance-suites-"))
    chosen = [s for s in SUITES if not args.suite or s.name in args.suite]
    lines = [
        "| suite | command | wall s | vs xdist | s/file over xdist | outcomes | = plain pytest "
        "| coverage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for suite in chosen:
        lines.append(table(suite, bench(suite, workdir, args.rounds)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
