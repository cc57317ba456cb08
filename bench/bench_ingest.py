"""Ingest speed and memory: N query events fingerprinted, checked for N+1 and stored.

Usage: python bench/bench_ingest.py [--events 1000000] [--files 10]

Writes a synthetic run directory (the lines children write: 10 files, tests of 500 statements,
a fifth of them raw SQL with inlined literals, so about 200,000 distinct texts per million, the
rest ORM-style statements repeated from 7 call stacks, which makes every test hold N+1 groups),
then runs ``devformance ingest`` on it in a fresh process, at half and at the full size, and
reports wall and CPU time and peak memory (max RSS). Memory that stays flat when the event
count doubles shows the ingest streams.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devformance_nb.core import events as ev
from devformance_nb.core.eventlog import EventWriter
from devformance_nb.logic.discovery import TestFile

STATEMENTS = [
    'SELECT "books"."id", "books"."title" FROM "books" WHERE "books"."author_id" = ?',
    'SELECT "authors"."id", "authors"."name" FROM "authors" WHERE "authors"."id" = ?',
    "INSERT INTO orders (customer_id, total) VALUES (?, ?)",
    "UPDATE books SET stock = stock - 1 WHERE id = ?",
    "SELECT * FROM reviews WHERE book_id IN (?, ?, ?)",
]


def raw_sql(rng: random.Random) -> str:
    """Literal-inlined SQL, as raw sqlite3 code often sends (many distinct texts)."""
    price, word = rng.randint(1, 500), rng.randint(0, 9999)
    return f"SELECT * FROM books WHERE price > {price} AND title LIKE '%{word}%'"


def _passed(nodeid: str) -> ev.TestPhase:
    return ev.TestPhase(
        nodeid=nodeid, phase="call", outcome="passed", duration=0.1, category="passed"
    )


def write_run(folder: Path, total: int, files: int) -> Path:
    run_id = "bench-ingest"
    run_dir = folder / "runs" / run_id
    run_dir.mkdir(parents=True)
    keys = [f"tests/test_bench_{i:02d}.py" for i in range(files)]
    journal = EventWriter(run_dir / "run.events.jsonl", run_id, "", batch=1)
    now = time.time()
    journal.append(
        ev.RunStarted(
            run_id=run_id, root=str(folder), files=keys, workers=2, executor="spawn", t=now, seq=1
        )
    )
    rng = random.Random(7)
    per_file = total // files
    for key in keys:
        journal.append(ev.FileStarted(run_id=run_id, file=key, path=key, pid=1, command=[], t=now))
        writer = EventWriter(
            run_dir / f"{TestFile(key, Path(key)).slug}.events.jsonl", run_id, key, batch=10_000
        )
        for i in range(per_file):
            nodeid = f"{key}::test_{i // 500}"
            if i % 500 == 0 and i:  # the previous test ends
                writer.write(_passed(f"{key}::test_{i // 500 - 1}"))
            # the line a child's SQL capture writes (see capture/recorder.py)
            test = json.dumps(nodeid)
            sql = raw_sql(rng) if i % 5 == 0 else STATEMENTS[i % len(STATEMENTS)]
            duration = 0.15 if i % 50_000 == 49_999 else 0.0002  # a few slow ones
            writer.write_fields(
                "query",
                f'"t":{now:.6f},"start":{now:.6f},"duration":{duration:.9f},"rows":null,'
                f'"nodeid":{test},"phase":"call","sql":{json.dumps(sql)},"vendor":"sqlite",'
                f'"alias":"","caller":"app.py:10 f","stack_hash":"{i % 7:x}","orm":"",'
                '"many":false',
                "qseq",
            )
        writer.write(_passed(f"{key}::test_{(per_file - 1) // 500}"))
        writer.close()
        journal.append(
            ev.FileFinished(
                run_id=run_id, file=key, status="passed", returncode=0, duration=1.0, t=now
            )
        )
    journal.append(ev.RunDone(run_id=run_id, status="passed", duration=1.0, t=now))
    journal.close()
    return run_dir


INGEST = """
import json, resource, sys, time
import duckdb, pandas  # imported before the clock starts, as in a CLI that already runs
from devformance_nb.api import facade as api
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, began = time.perf_counter(), cpu()
state = api.ingest(sys.argv[1], sys.argv[2])
elapsed, used = time.perf_counter() - started, cpu() - began
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
queries = sum(fs.queries for fs in state.files.values())
findings = sum(len(fs.n_plus_one) for fs in state.files.values())
result = {"queries": queries, "wall": elapsed, "cpu": used, "rss": rss, "n_plus_one": findings}
print(json.dumps(result))
"""


#: the event-by-event path the live loop takes (decode, run state, store writer), for comparison
LIVE = """
import json, resource, sys, time
import duckdb, pandas
from devformance_nb.api import facade as api
from devformance_nb.run.replay import replay
from devformance_nb.run.state import RunState
from devformance_nb.store.writer import StoreWriter
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, began = time.perf_counter(), cpu()
events = replay(sys.argv[1])
first = next(events)
state = RunState(run_id=first.run_id)
state.apply(first)
writer = StoreWriter(api.open_store(sys.argv[2]))
writer.on_event(first, state)
for event in events:
    state.apply(event)
    writer.on_event(event, state)
writer.close(state)
elapsed, used = time.perf_counter() - started, cpu() - began
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
queries = sum(fs.queries for fs in state.files.values())
findings = sum(len(fs.n_plus_one) for fs in state.files.values())
result = {"queries": queries, "wall": elapsed, "cpu": used, "rss": rss, "n_plus_one": findings}
print(json.dumps(result))
"""


def ingest(run_dir: Path, db: Path, script: str = INGEST) -> dict[str, float]:
    """Ingest ``run_dir`` into ``db`` in a fresh process: counts, seconds and peak RSS."""
    out = subprocess.run(
        [sys.executable, "-c", script, str(run_dir), str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument(
        "--live", type=int, default=100_000, help="events for the event-by-event comparison"
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} at the start\n")
    print(
        "| path | query events | N+1 findings | wall s | events/s (wall) | CPU s "
        "| events/CPU s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    runs = [("bulk ingest", INGEST, args.events // 2), ("bulk ingest", INGEST, args.events)]
    if args.live:
        runs.insert(0, ("event by event (live loop)", LIVE, args.live))
    for path, script, total in runs:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = write_run(Path(tmp), total, args.files)
            r = ingest(run_dir, Path(tmp) / "bench.duckdb", script)
            count = int(r["queries"])
            print(
                f"| {path} | {count:,} | {int(r['n_plus_one']):,} | {r['wall']:.2f} "
                f"| {count / r['wall']:,.0f} | {r['cpu']:.2f} | {count / r['cpu']:,.0f} "
                f"| {r['rss']:.0f} |"
            )
    print(
        "\nfresh process per size, duckdb and pandas imported before the clock; CPU is the "
        "process's user+system time over all its threads (DuckDB uses every core)"
    )


if __name__ == "__main__":
    main()
