"""Bulk ingest of a run directory: query events go from the events files to DuckDB in bulk.

A run directory may hold millions of ``query`` events. Decoding each into a Python object and
fingerprinting it one by one costs tens of microseconds an event, so ``devformance ingest``
never does: query lines stay text until DuckDB reads them, and Python only sees what is small.

1. Facts, in an in-memory DuckDB: one pass of DuckDB's JSON reader over the children's events
   files groups the statements by file, test, phase, text and call stack, with their slow ones.
2. Fingerprints of distinct texts only, and of far fewer than that: texts that differ only in
   their literals share a *literal key* (computed by DuckDB, see :data:`LITERAL_KEY`) and one
   fingerprint computed in Python. N+1 groups, per-test and per-file totals and slow queries
   come out of the grouped facts.
3. The other events are replayed (query lines skipped undecoded) through the run state and the
   store writer, each file's query facts folded into the state as the file finishes, so every
   row the store writer makes is the one a live run makes.
4. The query rows go into the store in one statement: DuckDB reads the events files again and
   joins each text to its fingerprint.

Memory holds the groups and the distinct texts, never a list of statements.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from devformance_nb.core import events as ev
from devformance_nb.core.errors import DevformanceError
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.detection import (
    AllowList,
    NPlusOneFinding,
    finding_order,
    is_candidate,
    make_finding,
)
from devformance_nb.logic.fingerprint import fingerprint, fingerprint_hash
from devformance_nb.logic.slow import SlowQuery, find_slow, over_threshold_sql
from devformance_nb.run.dispatch import Dispatcher
from devformance_nb.run.launcher import run_coverage_event
from devformance_nb.run.replay import replay
from devformance_nb.run.state import FileState, Observer, RunState, TestRecord
from devformance_nb.store.database import Store
from devformance_nb.store.recarry import carry_again
from devformance_nb.store.rows import add_fingerprints
from devformance_nb.store.writer import StoreWriter

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
#: DuckDB's memory limit while it loads query rows (they stream; memory stays flat)
BULK_MEMORY = "256MB"
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


#: DuckDB settings for bulk work: no progress bar on the terminal, and rows may be inserted
#: in any order (parallel, and without holding them back to keep their order)
_BULK_CONFIG: dict[str, str | bool | int | float | list[str]] = {"preserve_insertion_order": False}


def json_source(paths: Sequence[Path]) -> str:
    """A DuckDB ``read_json`` over events files, typed for query events."""
    files = ", ".join("'" + os.fspath(p).replace("'", "''") + "'" for p in paths)
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in QUERY_FIELDS.items())
    return (
        f"read_json([{files}], format = 'newline_delimited', columns = {{{columns}}}, "
        f"ignore_errors = true, maximum_object_size = {MAX_LINE_BYTES})"
    )


def _sql(template: str, paths: Sequence[Path]) -> str:
    versioned = template.replace("VERSION", str(ev.EVENT_VERSION))
    return versioned.replace("SOURCE", json_source(paths))


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
    paths: Sequence[Path], slow_query_ms: float, min_count: int, allow: Sequence[str] = ()
) -> QueryFacts:
    """Group the query events of ``paths`` (one JSON pass) into per-file facts."""
    con = duckdb.connect(config=_BULK_CONFIG)
    con.execute("SET enable_progress_bar = false")
    try:
        if not paths:
            con.execute("CREATE TEMP TABLE q_groups (file VARCHAR, sql VARCHAR)")
        else:
            con.execute(_sql(_GROUPS, paths), {"slow_ms": slow_query_ms})
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


def load_queries(
    con: duckdb.DuckDBPyConnection, run_id: str, paths: Sequence[Path], facts: QueryFacts
) -> None:
    """Replace the run's query rows with those of ``paths``; add fingerprints not stored yet.

    Runs in the caller's transaction; DuckDB reads the events files itself.
    """
    con.execute("DELETE FROM queries WHERE run_id = ?", [run_id])
    add_fingerprints(con, facts.fingerprints)
    if not paths:
        return
    con.register("_devformance_texts", facts.texts)
    try:
        with bulk_settings(con):
            con.execute(_sql(_INSERT, paths), {"run_id": run_id})
    finally:
        con.unregister("_devformance_texts")


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


def ingest_run(
    run_dir: str | os.PathLike[str], store: Store, observers: Sequence[Observer] = ()
) -> RunState:
    """Load a run directory into ``store`` in bulk (replacing that run if it is there).

    ``observers`` see every event but the ``query`` ones, which never become objects: the
    state they are given already counts each file's statements when the file finishes.
    """
    folder = RunDir.at(run_dir)
    events = replay(folder, queries=False)
    first = next(events)
    state = RunState(run_id=first.run_id)
    state.apply(first)
    paths = [p for p in (folder.events_path(key) for key in state.files) if p.exists()]
    facts = read_facts(
        paths,
        state.slow_query_ms,
        state.detector.min_count,
        list(state.config.get("allow_n_plus_one", [])),
    )
    logs = {key: os.fspath(folder.log_path(key)) for key in state.files}
    # one transaction for the whole run: a failed ingest leaves the store as it was, and
    # ingesting again replaces the run (its rows are deleted first), never doubles it
    writer = StoreWriter(store, logs, defer=True)
    writer.also_write(lambda con: load_queries(con, state.run_id, paths, facts))
    carry_again(writer, state)  # a --changed run: its carried files' rows, from their runs
    dispatcher = Dispatcher(state, [writer, *observers])
    dispatcher.notify(first)  # folded above already: its settings chose how to read the facts
    for event in events:
        if isinstance(event, ev.FileFinished):
            facts.apply(state.file(event.file))
        elif isinstance(event, ev.RunDone):  # files that never finished still had statements
            for fs in state.files.values():
                facts.apply(fs)
            if (total := run_coverage_event(state)) is not None:
                dispatcher.deliver(total)
        dispatcher.deliver(event)
    if dispatcher.errors:  # an observer failed: load nothing rather than part of the run
        dispatcher.observers.remove(writer)
    dispatcher.close()  # the writer writes the whole run here, in one transaction
    if dispatcher.errors:
        raise DevformanceError(
            f"ingest of {folder.path} stopped: an observer failed:\n{dispatcher.errors[0]}"
        )
    if writer.error is not None:
        raise writer.error
    return state
