"""Fingerprint throughput versus sqlparse.parse on a realistic statement mix.

Run: python bench/bench_fingerprint.py [--n 200000] [--sqlparse-sample 2000]

Workloads (each N statements, deterministic):
- orm: parameterised ORM-style statements from a few dozen templates (few distinct texts);
- raw: raw SQL with inlined literals, nearly every text distinct (the cache cannot help);
- mix: 80% orm, 20% raw, shuffled.

fingerprint() is timed on every statement with a cold cache; "no cache" calls the uncached
normaliser. sqlparse.parse is timed on a random sample (it costs about a millisecond a
statement; timing all of them would take minutes) and reported per statement.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import sqlparse

from devformance_nb.logic import fingerprint as fpmod

TABLES = ["books", "authors", "reviews", "orders", "order_items", "customers", "tags"]
COLUMNS = ["id", "title", "name", "author_id", "price", "created_at", "status", "qty"]


def orm_templates(rng: random.Random) -> list[str]:
    """About 50 statement texts as SQLAlchemy and Django emit them (placeholders, quoted)."""
    templates = []
    for table in TABLES:
        cols = ", ".join(f'"{table}"."{c}"' for c in rng.sample(COLUMNS, 5))
        templates += [
            f'SELECT {cols} FROM "{table}" WHERE "{table}"."id" = %s LIMIT 21',
            f'SELECT {cols} FROM "{table}" WHERE "{table}"."author_id" = %s '
            f'ORDER BY "{table}"."id"',
            f"SELECT {table}.id AS {table}_id, {table}.name AS {table}_name FROM {table} "
            f"WHERE ? = {table}.author_id",
            f'INSERT INTO "{table}" ("name", "price", "status") VALUES (%s, %s, %s) '
            f'RETURNING "{table}"."id"',
            f"UPDATE {table} SET status=?, qty=? WHERE {table}.id = ?",
            f"SELECT count(*) AS count_1 FROM {table} WHERE {table}.status IN (?, ?, ?)",
            f'SAVEPOINT "s140_x{rng.randrange(9)}"',
        ]
    return [*templates, "BEGIN", "COMMIT", "PRAGMA foreign_keys = ON"]


def raw_statement(rng: random.Random) -> str:
    """Hand-written SQL with literals inlined: nearly every text is distinct."""
    table, col = rng.choice(TABLES), rng.choice(COLUMNS)
    kind = rng.randrange(5)
    if kind == 0:
        return f"SELECT * FROM {table} WHERE {col} = {rng.randrange(10**6)}"
    if kind == 1:
        return f"select id, name from {table} where name = 'user {rng.randrange(10**6)}' -- lookup"
    if kind == 2:
        ids = ", ".join(str(rng.randrange(10**6)) for _ in range(rng.randrange(1, 30)))
        return f"SELECT * FROM {table} WHERE id IN ({ids}) AND price > {rng.random():.2f}"
    if kind == 3:
        rows = ", ".join(f"({i}, 'n{rng.randrange(10**6)}', {rng.random():.3f})" for i in range(5))
        return f"INSERT INTO {table} (id, name, price) VALUES {rows}"
    return f"UPDATE {table} SET {col} = -{rng.randrange(100)} WHERE id = {rng.randrange(10**6)}"


def workloads(n: int) -> dict[str, list[str]]:
    rng = random.Random(42)
    templates = orm_templates(rng)
    orm = [rng.choice(templates) for _ in range(n)]
    raw = [raw_statement(rng) for _ in range(n)]
    mix = orm[: n * 4 // 5] + raw[: n - n * 4 // 5]
    rng.shuffle(mix)
    return {"orm": orm, "raw": raw, "mix": mix}


def rate(func: Callable[[str], object], statements: list[str]) -> float:
    start = time.perf_counter()
    for sql in statements:
        func(sql)
    return len(statements) / (time.perf_counter() - start)


def cold_fingerprint_rate(statements: list[str]) -> float:
    fpmod.clear_cache()
    return rate(fpmod.fingerprint, statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--sqlparse-sample", type=int, default=2_000)
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"{args.n:,} statements per workload; sqlparse timed on {args.sqlparse_sample:,}\n")
    print(
        "| workload | distinct texts | fingerprint (cached) stmt/s | fingerprint (no cache) "
        "stmt/s | sqlparse.parse stmt/s | speed-up |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, statements in workloads(args.n).items():
        cached = cold_fingerprint_rate(statements)
        uncached = rate(fpmod._safe_fingerprint, statements)
        sample = rng.sample(statements, min(args.sqlparse_sample, len(statements)))
        parsed = rate(sqlparse.parse, sample)
        print(
            f"| {name} | {len(set(statements)):,} | {cached:,.0f} | {uncached:,.0f} "
            f"| {parsed:,.0f} | {cached / parsed:,.0f}x |"
        )


if __name__ == "__main__":
    main()
