"""Query rows into the store, read by DuckDB straight from the children's events files.

Used for each file as it finishes by the live store writer, and for a whole run directory by
``devformance ingest``: the statements never become Python objects on their way to the store.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb

from devformance_nb.run.queryfacts import QueryFacts, sql_over
from devformance_nb.store.database import registered
from devformance_nb.store.rows import add_fingerprints

#: DuckDB's memory limit while it loads query rows (they stream; memory stays flat)
BULK_MEMORY = "256MB"

_INSERT = """
INSERT INTO queries (run_id, file, nodeid, phase, qseq, started, duration, sql,
    fingerprint_hash, vendor, alias, rows, caller, sent_by, stack_hash, orm, many, params,
    relation, peers, fix)
SELECT $run_id, q.file, q.nodeid, q.phase, q.qseq,
    make_timestamp(CAST(round(q.start * 1000000) AS BIGINT)), q.duration, q.sql,
    m.fingerprint_hash, q.vendor, q.alias, q.rows, q.caller, q.sent_by, q.stack_hash, q.orm,
    q.many, q.params, q.relation, q.peers, q.fix
FROM SOURCE q JOIN _devformance_texts m USING (sql)
WHERE q.kind = 'query' AND coalesce(q.v, 1) <= VERSION
"""

#: the fields of a stack event DuckDB reads
STACK_FIELDS = {"v": "INTEGER", "kind": "VARCHAR", "stack_hash": "VARCHAR", "frames": "VARCHAR[][]"}

# each frame ["path", line, "function"] as "path:line function", in order (a list aggregate
# over the unnested frames: no lambda, whose syntax changed between DuckDB versions)
_STACKS = """
INSERT OR IGNORE INTO stacks (stack_hash, frames, first_run)
SELECT stack_hash, list(f[1] || ':' || f[2] || ' ' || f[3] ORDER BY i), $run_id
FROM (
    SELECT stack_hash, unnest(frames) AS f, generate_subscripts(frames, 1) AS i
    FROM (
        SELECT DISTINCT ON (stack_hash) stack_hash, frames FROM SOURCE
        WHERE kind = 'stack' AND coalesce(v, 1) <= VERSION
            AND stack_hash IS NOT NULL AND frames IS NOT NULL
    )
)
GROUP BY stack_hash
"""


def insert_queries(
    con: duckdb.DuckDBPyConnection, run_id: str, paths: Sequence[Path], facts: QueryFacts
) -> None:
    """Insert the query rows of ``paths`` (events files), their stacks, and the fingerprints of
    ``facts`` the store lacks; each text's fingerprint hash comes from ``facts.texts``.

    Runs in the caller's transaction; DuckDB reads the events files itself.
    """
    add_fingerprints(con, facts.fingerprints)
    if not paths:
        return
    insert_stacks(con, run_id, paths)
    with registered(con, "_devformance_texts", facts.texts), bulk_settings(con):
        con.execute(sql_over(_INSERT, paths), {"run_id": run_id})


def insert_files(
    con: duckdb.DuckDBPyConnection, run_id: str, files: Sequence[tuple[Path, QueryFacts]]
) -> None:
    """``insert_queries`` for several finished files (events file, its facts) at once.

    Each DuckDB pass over events files costs 20-30 ms whatever their size: one pass for all
    the files a write takes (sqlite-utils' 52 files: 1.3-2.8 s one by one, 0.4 s together).
    A text has one fingerprint in every file, so their mappings merge."""
    import pandas as pd

    if not files:
        return
    fingerprints: dict[str, str] = {}
    for _, facts in files:
        fingerprints.update(facts.fingerprints)
    texts = pd.concat([facts.texts for _, facts in files], ignore_index=True)
    merged = QueryFacts({}, texts.drop_duplicates("sql"), fingerprints)
    insert_queries(con, run_id, [path for path, _ in files], merged)


def insert_stacks(con: duckdb.DuckDBPyConnection, run_id: str, paths: Sequence[Path]) -> None:
    """Insert the stacks of ``paths`` (events files) the store does not hold yet (a hash names
    the same frames forever); ``run_id`` is their first run."""
    if paths:
        con.execute(sql_over(_STACKS, paths, STACK_FIELDS), {"run_id": run_id})


@contextmanager
def bulk_settings(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB settings for one bulk insert, restored after: no progress bar on the terminal,
    rows in any order (so they stream instead of being held back to keep their order), and a
    memory limit (so memory does not grow with the rows: DuckDB writes them out instead)."""
    names = ("enable_progress_bar", "preserve_insertion_order", "memory_limit")
    before = con.execute(
        "SELECT " + ", ".join(f"current_setting('{name}')" for name in names)
    ).fetchone()
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET memory_limit = '{BULK_MEMORY}'")
    try:
        yield
    finally:
        if before is not None:
            for name, value in zip(names, before, strict=True):
                con.execute(f"SET {name} = ?", [value])
