"""Ingest speed and memory: N query events fingerprinted, checked for N+1 and stored.

Usage: python bench/bench_ingest.py [--events 1000000] [--files 10]

Writes a synthetic run directory (the format children write), then runs
``devformance ingest`` on it in a fresh process, twice the size apart, and
reports wall time and peak memory (max RSS). Memory that stays flat when the
event count doubles shows the ingest streams.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devformance_nb import events as ev
from devformance_nb.discovery import TestFile
from devformance_nb.eventlog import EventWriter

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
            test = f"{key}::test_{i // 500}"
            sql = raw_sql(rng) if i % 5 == 0 else STATEMENTS[i % len(STATEMENTS)]
            writer.write(
                ev.Query(
                    nodeid=test,
                    phase="call",
                    qseq=i,
                    start=now,
                    duration=0.0002,
                    sql=sql,
                    vendor="sqlite",
                    caller="app.py:10 f",
                    stack_hash=f"{i % 7:x}",
                    t=now,
                )
            )
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
import resource, sys, time
from devformance_nb import api
started = time.perf_counter()
state = api.ingest(sys.argv[1], sys.argv[2])
elapsed = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
queries = sum(fs.queries for fs in state.files.values())
print(f"{queries} {elapsed:.2f} {rss:.0f}")
"""


def ingest(run_dir: Path, db: Path) -> tuple[int, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", INGEST, str(run_dir), str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    queries, seconds, rss = out.stdout.split()
    return int(queries), float(seconds), float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    print("| query events | ingest wall s | events/s | peak RSS MB |")
    print("|---|---|---|---|")
    for total in (args.events // 2, args.events):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = write_run(Path(tmp), total, args.files)
            count, seconds, rss = ingest(run_dir, Path(tmp) / "bench.duckdb")
            print(f"| {count:,} | {seconds:.2f} | {count / seconds:,.0f} | {rss:.0f} |")
    print(json.dumps({"note": "fresh process per size; RSS includes pandas+duckdb import"}))


if __name__ == "__main__":
    main()
