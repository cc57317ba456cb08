"""Capture overhead on Django ORM and raw psycopg workloads, on a local PostgreSQL.

Run: python bench/bench_django.py [--n 1000] [--repeat 5] [--rounds 10] [--paired-only]
[--instructions]

The server is ``DEVFORMANCE_PG_DSN`` if set, else a throwaway cluster started from Debian's
binaries (``tests/pgcluster.py``) for the length of the bench; a ``devformance_bench``
database is made on it and dropped after.

Workloads (N is ``--n``): ``django-pg`` (Django ORM on PostgreSQL through psycopg 3: N
``create``, N ``get`` by key, a bulk insert, N lazy foreign-key loads in a loop, all in one
transaction), ``django-sqlite`` (the same on a SQLite file, where a statement costs
microseconds: the hardest case), ``psycopg`` and ``psycopg2`` (raw cursors: N ``INSERT`` and N
``SELECT`` by key). Two measurements, both timing the workload loop inside a pytest child:

- paired (the ratio to trust on a busy machine): one child per workload alternates capture
  off and on ``--rounds`` times (``start_capture`` on a real events file, then ``stop``),
  reconnecting each round, so both modes share the process and the moment;
- children: a fresh child per run, interleaved ``--repeat`` times, in three modes: off (no
  plugin), plugin (``capture_sql`` false), capture (exactly as the launcher runs a child).

Times are the best (lowest) of their runs, which other processes disturb least; the paired
ratios are the median over rounds of each round's capture / off (two runs back to back, so
a slow drift of the machine's load cancels), the children's ratios are of best times.
``--instructions`` adds what no machine load disturbs: the instructions a django-sqlite
statement adds under valgrind's callgrind (a run of 200 rows against one of 1,200). Wall
time, and the client's CPU time (``process_time``; the server's work is not in it, so CPU
ratios overstate what a user waits). Prints markdown tables for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import pgcluster  # noqa: E402  (tests/pgcluster.py: stdlib only)

BENCH_DB = "devformance_bench"
WORKLOADS = ["django-pg", "django-sqlite", "psycopg", "psycopg2"]
MODES = ["off", "plugin", "capture"]

#: the workloads, importable in the child as ``benchwork``; Django is configured on import
BENCHWORK = """
import os
import time

import django
from django.conf import settings

WORKLOAD = os.environ["BENCH_WORKLOAD"]
if WORKLOAD == "django-pg":
    DB = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["BENCH_PG_NAME"],
        "USER": os.environ["BENCH_PG_USER"],
        "HOST": os.environ["BENCH_PG_HOST"],
        "PORT": os.environ["BENCH_PG_PORT"],
        "OPTIONS": {"options": "-c TimeZone=UTC"},
    }
else:
    DB = {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["BENCH_SQLITE"]}
settings.configure(DATABASES={"default": DB}, INSTALLED_APPS=["benchapp"], USE_TZ=True)
django.setup()


def timed(loop):
    began, cpu = time.perf_counter(), time.process_time()
    statements = loop()
    return time.perf_counter() - began, time.process_time() - cpu, statements


class DjangoWork:
    def setup(self):
        from django.db import connection
        from benchapp.models import Author, Book

        with connection.schema_editor() as editor:
            for model in (Book, Author):
                editor.execute(f'DROP TABLE IF EXISTS "{model._meta.db_table}"')
            editor.create_model(Author)
            editor.create_model(Book)

    def run(self, n):
        from django.db import connection, transaction
        from benchapp.models import Author, Book

        connection.close()
        connection.ensure_connection()  # a new connection, as after a capture starts

        def loop():
            with transaction.atomic():
                ids = [Author.objects.create(name=f"a{i}").pk for i in range(n)]
                names = [Author.objects.get(pk=pk).name for pk in ids]
                books = [Book(title=f"b{i}", author_id=pk) for i, pk in enumerate(ids)]
                Book.objects.bulk_create(books)
                authors = [book.author.name for book in Book.objects.filter(author_id__in=ids)]
                assert sorted(names) == sorted(authors)
            return 3 * n + 2

        return timed(loop)


class RawWork:
    def __init__(self, driver):
        self.driver = __import__(driver)

    def setup(self):
        con = self.driver.connect(os.environ["BENCH_DSN"])
        cur = con.cursor()
        cur.execute("DROP TABLE IF EXISTS raw_t")
        cur.execute("CREATE TABLE raw_t (id serial PRIMARY KEY, v int)")
        con.commit()
        con.close()

    def run(self, n):
        con = self.driver.connect(os.environ["BENCH_DSN"])
        cur = con.cursor()

        def loop():
            for i in range(n):
                cur.execute("INSERT INTO raw_t (v) VALUES (%s) RETURNING id", (i,))
                key = cur.fetchone()[0]
                cur.execute("SELECT v FROM raw_t WHERE id = %s", (key,))
                cur.fetchone()
            con.commit()
            return 2 * n

        try:
            return timed(loop)
        finally:
            con.close()


def work():
    return DjangoWork() if WORKLOAD.startswith("django") else RawWork(WORKLOAD)
"""

MODELS = """
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=50)


class Book(models.Model):
    title = models.CharField(max_length=50)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
"""

CHILD_TEST = """
import json, os

import benchwork


def test_once():
    work = benchwork.work()
    work.setup()
    wall, cpu, statements = work.run(int(os.environ["BENCH_N"]))
    with open(os.environ["BENCH_OUT"], "w") as fh:
        json.dump({"runs": {"once": [[wall, cpu]]}, "statements": statements}, fh)
"""

PAIRED_TEST = """
import json, os, sys

import benchwork
from devformance_nb.plugin.capture import start_capture
from devformance_nb.core.eventlog import EventWriter
from devformance_nb.core.contract import ChildOptions
from devformance_nb.plugin import TestContext


def test_paired():
    work = benchwork.work()
    work.setup()
    n, runs = int(os.environ["BENCH_N"]), {"off": [], "capture": []}
    context = TestContext()
    context.nodeid, context.phase = "test_paired.py::test_paired", "call"
    context.floor = sys._getframe()  # as the plugin does: walks stop at the test's own frame
    for round in range(int(os.environ["BENCH_ROUNDS"])):
        for mode in ("off", "capture") if round % 2 == 0 else ("capture", "off"):
            capture = writer = None
            if mode == "capture":
                writer = EventWriter(os.environ["BENCH_EVENTS"], "bench", "bench")
                capture = start_capture(writer, context, ChildOptions(root=os.getcwd()))
            wall, cpu, statements = work.run(n)
            if capture is not None:
                capture.stop()
                writer.close()
            runs[mode].append([wall, cpu])
    with open(os.environ["BENCH_OUT"], "w") as fh:
        json.dump({"runs": runs, "statements": statements}, fh)
"""


#: the django-sqlite loop once, capture on or off, under valgrind (``--instructions``)
COUNTED = """
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["BENCH_WORKLOAD"] = "django-sqlite"
import benchwork
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import EventWriter
from devformance_nb.plugin import TestContext
from devformance_nb.plugin.capture import start_capture


def main(mode, n):
    work = benchwork.work()
    work.setup()
    context = TestContext()
    context.nodeid, context.phase = "counted", "call"
    context.floor = sys._getframe()
    if mode == "on":
        writer = EventWriter(os.environ["BENCH_EVENTS"], "bench", "bench")
        capture = start_capture(writer, context, ChildOptions(root=os.getcwd()))
    work.run(50)  # every cache warm, as in a suite's later tests
    work.run(n)
    if mode == "on":
        capture.stop()
        writer.close()


main(sys.argv[1], int(sys.argv[2]))
"""


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """The DSN of a server: DEVFORMANCE_PG_DSN, else a throwaway cluster."""
    configured = os.environ.get(pgcluster.ENV_DSN)
    if configured:
        yield configured
        return
    folder = pgcluster.temporary_folder()
    try:
        yield pgcluster.start(folder)
    finally:
        pgcluster.stop(folder)


@contextlib.contextmanager
def bench_database(dsn: str) -> Iterator[str]:
    """A fresh database for the bench on the server of ``dsn`` (dropped after); its DSN."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        con.execute(f"CREATE DATABASE {BENCH_DB}")
    base, _, _ = dsn.rpartition("/")
    try:
        yield f"{base}/{BENCH_DB}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")


def make_suite(folder: Path) -> None:
    """Write the workload module, the Django app and the two test files."""
    (folder / "benchapp").mkdir()
    (folder / "benchapp" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "benchapp" / "models.py").write_text(MODELS, encoding="utf-8")
    (folder / "benchwork.py").write_text(BENCHWORK, encoding="utf-8")
    (folder / "test_once.py").write_text(CHILD_TEST, encoding="utf-8")
    (folder / "test_paired.py").write_text(PAIRED_TEST, encoding="utf-8")
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (folder / "counted.py").write_text(COUNTED, encoding="utf-8")


def child(folder: Path, test: str, workload: str, mode: str, env: dict[str, str]) -> dict[str, Any]:
    """Run one test file in a fresh child; its result (runs per mode, statements)."""
    out = folder / "result.json"
    for stale in (out, folder / "events.jsonl", folder / "bench.sqlite3"):
        stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider"]
    command += ["-p", "no:django"]  # benchwork configures Django itself
    env = {**env, "BENCH_WORKLOAD": workload, "BENCH_OUT": str(out)}
    if mode in ("plugin", "capture"):
        command += ["-p", "devformance_nb.plugin"]
        env.update(
            DEVFORMANCE_EVENTS=str(folder / "events.jsonl"),
            DEVFORMANCE_RUN_ID="bench",
            DEVFORMANCE_FILE="bench",
            DEVFORMANCE_OPTIONS=json.dumps({"capture_sql": mode == "capture", "root": str(folder)}),
        )
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{workload} ({mode}) failed:\n{proc.stdout[-3000:]}{proc.stderr}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def base_env(folder: Path, dsn: str, n: int, rounds: int) -> dict[str, str]:
    """The children's environment: sizes, the server and where to write."""
    url = urlsplit(dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVFORMANCE_")}
    env.update(
        BENCH_N=str(n),
        BENCH_ROUNDS=str(rounds),
        BENCH_DSN=dsn,
        BENCH_EVENTS=str(folder / "events.jsonl"),
        BENCH_SQLITE=str(folder / "bench.sqlite3"),
        BENCH_PG_NAME=url.path.lstrip("/"),
        BENCH_PG_USER=url.username or "",
        BENCH_PG_HOST=url.hostname or "",
        BENCH_PG_PORT=str(url.port or ""),
    )
    return env


def best(runs: list[list[float]]) -> tuple[float, float]:
    """(lowest wall, lowest CPU) of a mode's runs."""
    return min(r[0] for r in runs), min(r[1] for r in runs)


def round_ratios(runs: dict[str, list[list[float]]], index: int) -> float:
    """Median over rounds of capture / off, each round's two runs taken back to back."""
    pairs = zip(runs["capture"], runs["off"], strict=True)
    return statistics.median(on[index] / off[index] for on, off in pairs)


def paired_table(folder: Path, env: dict[str, str]) -> str:
    """One child per workload, capture off and on alternating: the markdown table."""
    lines = [
        "| workload | statements | off: us/stmt (wall) | capture: us/stmt (wall) "
        "| client CPU us/stmt: off, added | x off (wall) | x off (client CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        result = child(folder, "test_paired.py", workload, "off", env)
        n = result["statements"]
        off_wall, off_cpu = best(result["runs"]["off"])
        on_wall, on_cpu = best(result["runs"]["capture"])
        lines.append(
            f"| {workload} | {n} | {off_wall / n * 1e6:.1f} | {on_wall / n * 1e6:.1f} "
            f"| {off_cpu / n * 1e6:.1f}, {(on_cpu - off_cpu) / n * 1e6:+.1f} "
            f"| {round_ratios(result['runs'], 0):.3f} | {round_ratios(result['runs'], 1):.3f} |"
        )
    return "\n".join(lines)


def children_table(folder: Path, env: dict[str, str], repeat: int) -> str:
    """A fresh child per run and mode, interleaved: the markdown table."""
    lines = [
        "| workload | mode | loop wall s | us/stmt (wall) | x off (wall) | x off (client CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        runs: dict[str, list[list[float]]] = {mode: [] for mode in MODES}
        n = 0
        for _ in range(repeat):
            for mode in MODES:  # interleaved, so a burst of machine load hits every mode
                result = child(folder, "test_once.py", workload, mode, env)
                runs[mode] += result["runs"]["once"]
                n = result["statements"]
        off_wall, off_cpu = best(runs["off"])
        for mode in MODES:
            wall, cpu = best(runs[mode])
            lines.append(
                f"| {workload} | {mode} | {wall:.3f} | {wall / n * 1e6:.1f} "
                f"| {wall / off_wall:.3f} | {cpu / off_cpu:.3f} |"
            )
    return "\n".join(lines)


def counted(folder: Path, env: dict[str, str], mode: str, n: int) -> int:
    """Instructions (callgrind's Ir) of one ``counted.py`` run."""
    out = folder / f"callgrind-{mode}-{n}.out"
    (folder / "bench.sqlite3").unlink(missing_ok=True)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    command += [sys.executable, "counted.py", mode, str(n)]
    subprocess.run(command, cwd=folder, env=env, capture_output=True, check=True)
    for line in out.read_text(encoding="utf-8").splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def instructions(folder: Path, env: dict[str, str]) -> str:
    """Instructions a django-sqlite statement adds, capture on against off: the difference
    between a run of 200 and one of 1,200 rows (3,000 statements), so start-up and set-up
    cancel. No machine load disturbs it (valgrind's count), unlike the times."""
    per: dict[str, float] = {}
    for mode in ("off", "on"):
        small, large = (counted(folder, env, mode, n) for n in (200, 1_200))
        per[mode] = (large - small) / 3_000
    return (
        "| workload | instructions/stmt off | on | added |\n|---|---|---|---|\n"
        f"| django-sqlite | {per['off']:,.0f} | {per['on']:,.0f} | {per['on'] - per['off']:+,.0f} |"
    )


def main() -> None:
    """Run both measurements and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000, help="rows per workload")
    parser.add_argument("--repeat", type=int, default=5, help="children per mode")
    parser.add_argument("--rounds", type=int, default=10, help="paired rounds per mode")
    parser.add_argument("--paired-only", action="store_true", help="skip the fresh children")
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions under callgrind"
    )
    args = parser.parse_args()
    with (
        postgres() as server,
        bench_database(server) as dsn,
        tempfile.TemporaryDirectory(prefix="bench-django-") as tmp,
    ):
        folder = Path(tmp)
        make_suite(folder)
        env = base_env(folder, dsn, args.n, args.rounds)
        paired = paired_table(folder, env)
        children = "" if args.paired_only else children_table(folder, env, args.repeat)
        counts = instructions(folder, env) if args.instructions else ""
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, N={args.n}\n")
    print(f"Paired in one child, {args.rounds} rounds per mode:\n\n{paired}\n")
    if children:
        print(f"Fresh children, best of {args.repeat} per mode:\n\n{children}\n")
    if counts:
        print(f"Instructions per statement (valgrind callgrind):\n\n{counts}")


if __name__ == "__main__":
    main()
