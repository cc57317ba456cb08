"""Facts of a test file's statements, computed by DuckDB from its events file.

A run may record millions of ``query`` events. Decoding each into a Python object and
fingerprinting it one by one costs tens of microseconds an event (on a 2-core machine, in the
process that competes with the children for the cores), so the statements never become Python
objects: DuckDB's JSON reader groups them by file, test, phase, text and call stack, with their
slow ones, and Python sees only what is small.

Fingerprints are computed for distinct texts only, and for far fewer than that: texts that differ
only in their literals share a *literal key* (computed by DuckDB, see :data:`LITERAL_KEY`) and
one fingerprint computed in Python. N+1 groups, per-test and per-file totals and slow queries
come out of the grouped facts.

The launcher's reader threads read each file's facts when its child ends (``read_facts`` on
one events file); ``devformance ingest`` reads a whole run directory's at once. Both give the
state the same facts, and the store the same rows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devformance_nb.core import events as ev
from devformance_nb.logic.detection import (
    AllowList,
    NPlusOneFinding,
    finding_order,
    is_candidate,
    make_finding,
)
from devformance_nb.logic.fingerprint import fingerprint, fingerprint_hash
from devformance_nb.logic.slow import SlowQuery, find_slow, over_threshold_sql
from devformance_nb.run.state import FileState, TestRecord

if TYPE_CHECKING:
    import duckdb

#: the fields of a query event DuckDB reads, with their types (other keys are ignored)
QUERY_FIELDS = {
    "v": "INTEGER",
    "kind": "VARCHAR",
    "file": "VARCHAR",
    "nodeid": "VARCHAR",
    "phase": "VARCHAR",
    "qseq": "BIGINT",
    "start": "DOUBLE",
    "duration": "DOUBLE",
    "sql": "VARCHAR",
    "vendor": "VARCHAR",
    "alias": "VARCHAR",
    "rows": "BIGINT",
    "caller": "VARCHAR",
    "sent_by": "VARCHAR",
    "stack_hash": "VARCHAR",
    "orm": "VARCHAR",
    "many": "BOOLEAN",
    "params": "VARCHAR",
    "repeat": "INTEGER",
    "relation": "VARCHAR",
    "peers": "INTEGER",
    "fix": "VARCHAR",
    "page": "VARCHAR",
    "query_at": "VARCHAR",
}
#: an event line longer than this is skipped by the bulk reader (a statement of 16 MB)
MAX_LINE_BYTES = 16 << 20

#: DuckDB expression of a statement's *literal key*: two texts with the same key have the same
#: fingerprint, so only one text per key is fingerprinted. String literals lose their content
#: and numbers become 0, and only in texts where that provably keeps every token a token of
#: the same kind: ASCII only, and no quoted identifier, bracket, backslash, dollar quote or
#: comment (any other text is its own key). tests/test_ingest.py checks the promise on texts
#: built to break it.
LITERAL_KEY = r"""CASE
    WHEN regexp_matches(sql, '["`\[\\$]|--|/\*|[^\x01-\x7f]') THEN sql
    ELSE regexp_replace(regexp_replace(sql, '''[^'']*''', '''''', 'g'), '\b\d+(\.\d+)?\b', '0', 'g')
END"""

_GROUPS = """
CREATE TEMP TABLE q_groups AS
SELECT
    file,
    coalesce(nodeid, '') AS nodeid,
    coalesce(phase, '') AS phase,
    sql,
    coalesce(stack_hash, '') AS stack_hash,
    coalesce("repeat", 0) AS body_run,
    split_part(coalesce(page, ''), ':', 1) AS page_key,
    split_part(coalesce(page, ''), ':', 2) AS page_at,
    count(*) AS n,
    sum(duration) AS total,
    min(qseq) AS first_qseq,
    arg_min(coalesce(caller, ''), qseq) AS caller,
    arg_min(coalesce(sent_by, ''), qseq) AS sent_by,
    arg_min(orm, qseq) FILTER (WHERE orm <> '') AS orm,
    min(qseq) FILTER (WHERE orm <> '') AS orm_qseq,
    arg_min(relation, qseq) FILTER (WHERE relation <> '') AS relation,
    arg_min(fix, qseq) FILTER (WHERE relation <> '') AS fix,
    arg_min(coalesce(query_at, ''), qseq) FILTER (WHERE relation <> '') AS query_at,
    min(qseq) FILTER (WHERE relation <> '') AS load_qseq,
    coalesce(bool_or(relation <> '' AND peers >= 2), false) AS lazy_peers,
    list({'qseq': qseq, 'duration': duration}) FILTER (WHERE OVER_THRESHOLD) AS slow
FROM SOURCE
WHERE kind = 'query' AND coalesce(v, 1) <= VERSION AND sql IS NOT NULL
GROUP BY ALL
""".replace("OVER_THRESHOLD", over_threshold_sql("duration", "$slow_ms"))
# (only the threshold here: find_slow applies the whole rule to the statements kept)

_N_PLUS_ONE = """
WITH listings AS (
    SELECT g.file, g.nodeid, g.phase, k.fingerprint_hash, g.stack_hash, g.body_run, g.page_key,
        -- a listing's successive pages count once, a page read again counts again
        CASE WHEN g.page_key = '' THEN sum(g.n)
             ELSE sum(g.n) - count(DISTINCT g.page_at) + 1 END AS n,
        sum(g.total) AS total, min(g.first_qseq) AS first_qseq,
        arg_min(g.sql, g.first_qseq) AS sql, arg_min(g.caller, g.first_qseq) AS caller,
        arg_min(g.sent_by, g.first_qseq) AS sent_by,
        arg_min(g.orm, g.orm_qseq) FILTER (WHERE g.orm IS NOT NULL) AS orm,
        min(g.orm_qseq) AS orm_qseq,
        arg_min(g.relation, g.load_qseq) FILTER (WHERE g.relation IS NOT NULL) AS relation,
        arg_min(g.fix, g.load_qseq) FILTER (WHERE g.relation IS NOT NULL) AS fix,
        arg_min(g.query_at, g.load_qseq) FILTER (WHERE g.relation IS NOT NULL) AS query_at,
        min(g.load_qseq) AS load_qseq, bool_or(g.lazy_peers) AS lazy_peers
    FROM q_groups g JOIN q_texts t USING (sql) JOIN q_keys k USING (k)
    WHERE (k.candidate OR (k.paged_candidate AND g.page_key <> '')) AND g.stack_hash <> ''
    GROUP BY g.file, g.nodeid, g.phase, k.fingerprint_hash, g.stack_hash, g.body_run, g.page_key
), runs AS (
    SELECT file, nodeid, phase, fingerprint_hash, stack_hash, body_run,
        sum(n) AS n, sum(total) AS total, min(first_qseq) AS first_qseq,
        arg_min(sql, first_qseq) AS sql, arg_min(caller, first_qseq) AS caller,
        arg_min(sent_by, first_qseq) AS sent_by,
        arg_min(orm, orm_qseq) FILTER (WHERE orm IS NOT NULL) AS orm,
        min(orm_qseq) AS orm_qseq,
        arg_min(relation, load_qseq) FILTER (WHERE relation IS NOT NULL) AS relation,
        arg_min(fix, load_qseq) FILTER (WHERE relation IS NOT NULL) AS fix,
        arg_min(query_at, load_qseq) FILTER (WHERE relation IS NOT NULL) AS query_at,
        min(load_qseq) AS load_qseq
    FROM listings
    GROUP BY file, nodeid, phase, fingerprint_hash, stack_hash, body_run
    HAVING sum(n) >= $min_count OR bool_or(lazy_peers)
)
SELECT file, nodeid, phase, fingerprint_hash, stack_hash,
    max(n) AS n, sum(total) AS total, min(first_qseq) AS first_qseq,
    arg_min(sql, first_qseq) AS sql, arg_min(caller, first_qseq) AS caller,
    arg_min(orm, orm_qseq) FILTER (WHERE orm IS NOT NULL) AS orm,
    arg_min(sent_by, first_qseq) AS sent_by,
    arg_min(relation, load_qseq) FILTER (WHERE relation IS NOT NULL) AS relation,
    arg_min(fix, load_qseq) FILTER (WHERE relation IS NOT NULL) AS fix,
    arg_min(query_at, load_qseq) FILTER (WHERE relation IS NOT NULL) AS query_at
FROM runs
GROUP BY file, nodeid, phase, fingerprint_hash, stack_hash
"""


#: DuckDB settings for bulk work: no progress bar on the terminal, and rows may be inserted
#: in any order (parallel, and without holding them back to keep their order)
_BULK_CONFIG: dict[str, str | bool | int | float | list[str]] = {"preserve_insertion_order": False}


def json_source(paths: Sequence[Path], fields: dict[str, str] = QUERY_FIELDS) -> str:
    """A DuckDB ``read_json`` over events files, typed for query events (or ``fields``)."""
    files = ", ".join("'" + os.fspath(p).replace("'", "''") + "'" for p in paths)
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in fields.items())
    return (
        f"read_json([{files}], format = 'newline_delimited', columns = {{{columns}}}, "
        f"ignore_errors = true, maximum_object_size = {MAX_LINE_BYTES})"
    )


def sql_over(template: str, paths: Sequence[Path], fields: dict[str, str] = QUERY_FIELDS) -> str:
    """``template`` with ``SOURCE`` read from ``paths`` and ``VERSION`` this event format's."""
    versioned = template.replace("VERSION", str(ev.EVENT_VERSION))
    return versioned.replace("SOURCE", json_source(paths, fields))


@dataclass
class FileFacts:
    """What the query events of one test file add to its state."""

    queries: int = 0
    query_time: float = 0.0
    #: nodeid -> (statements, seconds), for tests with a nodeid
    tests: dict[str, tuple[int, float]] = field(default_factory=dict)
    slow: list[SlowQuery] = field(default_factory=list)
    n_plus_one: list[NPlusOneFinding] = field(default_factory=list)

    def apply(self, fs: FileState) -> None:
        """Fold these facts into ``fs`` as the live loop would have, event by event."""
        fs.queries += self.queries
        fs.query_time += self.query_time
        for nodeid, (count, seconds) in self.tests.items():
            record = fs.tests.get(nodeid)
            if record is None:
                record = fs.tests[nodeid] = TestRecord(nodeid=nodeid, file=fs.key)
            record.queries += count
            record.query_time += seconds
        fs.slow += self.slow
        fs.n_plus_one += self.n_plus_one


@dataclass
class QueryFacts:
    """Facts of every file's query events, and each distinct text's fingerprint hash."""

    files: dict[str, FileFacts]
    #: distinct statement text -> fingerprint hash (pandas DataFrame: sql, fingerprint_hash)
    texts: Any
    #: fingerprint hash -> fingerprint, for every fingerprint of the run
    fingerprints: dict[str, str]

    def apply(self, fs: FileState) -> None:
        """Fold file ``fs``'s facts into it (once: later calls do nothing)."""
        facts = self.files.pop(fs.key, None)
        if facts is not None:
            facts.apply(fs)


def read_facts(
    paths: Sequence[Path],
    slow_query_ms: float,
    min_count: int,
    allow: Sequence[str] = (),
    threads: int | None = None,
) -> QueryFacts:
    """Group the query events of ``paths`` (one JSON pass) into per-file facts.

    ``threads`` caps DuckDB's threads (a reader thread reading one file while children run
    takes one core at most); its default is one per core."""
    con = _connection(threads)
    try:
        if not paths:
            con.execute("CREATE TEMP TABLE q_groups (file VARCHAR, sql VARCHAR)")
        else:
            con.execute(sql_over(_GROUPS, paths), {"slow_ms": slow_query_ms})
        con.execute(
            f"CREATE TEMP TABLE q_texts AS SELECT sql, {LITERAL_KEY} AS k "
            "FROM (SELECT DISTINCT sql FROM q_groups)"
        )
        fingerprints = _fingerprint_keys(con)
        files: dict[str, FileFacts] = {}
        if paths:
            _totals(con, files)
            _slow(con, files, slow_query_ms)
            _n_plus_one(con, files, fingerprints, min_count, AllowList(allow))
        texts = con.execute(
            "SELECT t.sql, k.fingerprint_hash FROM q_texts t JOIN q_keys k USING (k)"
        ).df()
        return QueryFacts(files, texts, fingerprints)
    finally:
        con.close()


#: in-memory databases kept for ``read_facts`` by thread cap: opening one costs 14 ms, more
#: than reading a small file's events; each call works on its own cursor (its own temporary
#: tables), so reader threads never share one
_DATABASES: dict[int, duckdb.DuckDBPyConnection] = {}
_DATABASES_LOCK = threading.Lock()


def _connection(threads: int | None) -> duckdb.DuckDBPyConnection:
    """A connection of its own for one ``read_facts`` call (close it after)."""
    import duckdb  # the children import this layer's modules too: only the parent reads

    config = dict(_BULK_CONFIG)
    if threads is None:  # every core, for one big read (ingest): a database of its own
        con = duckdb.connect(config=config)
    else:
        with _DATABASES_LOCK:
            base = _DATABASES.get(threads)
            if base is None:
                base = _DATABASES[threads] = duckdb.connect(config={**config, "threads": threads})
        con = base.cursor()
    con.execute("SET enable_progress_bar = false")
    return con


def _fingerprint_keys(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Fingerprint one text per literal key (table q_keys); returns hash -> fingerprint."""
    import pandas as pd

    rows, fingerprints = [], {}
    for key, text in con.execute("SELECT k, min(sql) FROM q_texts GROUP BY k").fetchall():
        fp = fingerprint(text)
        digest = fingerprint_hash(fp)
        fingerprints[digest] = fp
        rows.append((key, digest, is_candidate(fp), is_candidate(fp, paged=True)))
    frame = pd.DataFrame(rows, columns=["k", "fingerprint_hash", "candidate", "paged_candidate"])
    con.register("_devformance_keys", frame)
    con.execute("CREATE TEMP TABLE q_keys AS SELECT * FROM _devformance_keys")
    con.unregister("_devformance_keys")
    return fingerprints


def _totals(con: duckdb.DuckDBPyConnection, files: dict[str, FileFacts]) -> None:
    rows = con.execute(
        "SELECT file, nodeid, sum(n), sum(total) FROM q_groups GROUP BY file, nodeid"
    ).fetchall()
    for file, nodeid, count, seconds in rows:
        facts = files.setdefault(file, FileFacts())
        facts.queries += int(count)
        facts.query_time += float(seconds or 0.0)
        if nodeid:
            facts.tests[nodeid] = (int(count), float(seconds or 0.0))


def _slow(
    con: duckdb.DuckDBPyConnection, files: dict[str, FileFacts], slow_query_ms: float
) -> None:
    rows = con.execute(
        "SELECT file, nodeid, phase, sql, s.qseq, s.duration, caller "
        "FROM (SELECT file, nodeid, phase, sql, caller, unnest(slow) AS s FROM q_groups "
        "WHERE slow IS NOT NULL) ORDER BY file, s.qseq"
    ).fetchall()
    queries = [
        ev.Query(
            file=file,
            nodeid=nodeid,
            phase=phase,
            sql=sql,
            qseq=qseq,
            duration=duration,
            caller=caller,
            start=0.0,
            vendor="",
        )
        for file, nodeid, phase, sql, qseq, duration, caller in rows
    ]
    for slow in find_slow(queries, slow_query_ms):
        files.setdefault(slow.file, FileFacts()).slow.append(slow)


def _n_plus_one(
    con: duckdb.DuckDBPyConnection,
    files: dict[str, FileFacts],
    fingerprints: dict[str, str],
    min_count: int,
    allow: AllowList,
) -> None:
    rows = con.execute(_N_PLUS_ONE, {"min_count": min_count}).fetchall()
    found = []
    for row in rows:
        file, nodeid, phase, digest, stack_hash, n, total, qseq, sql, caller, orm = row[:11]
        sent_by, relation, fix, query_at = row[11:]
        fp = fingerprints[digest]
        if allow.allows(fp, stack_hash, caller, sent_by):
            continue
        found.append(
            make_finding(
                file=file,
                nodeid=nodeid,
                phase=phase,
                qseq=qseq,
                sql=sql,
                caller=caller,
                stack_hash=stack_hash,
                fp=fp,
                count=int(n),
                total_duration=float(total or 0.0),
                orm=orm or "",
                sent_by=sent_by or "",
                relation=relation or "",
                fix=fix or "",
                query_at=query_at or "",
            )
        )
    for finding in sorted(found, key=finding_order):
        files.setdefault(finding.file, FileFacts()).n_plus_one.append(finding)
