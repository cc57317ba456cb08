"""Detection rules that exist both in Python (the live loop) and in SQL (ingest, the store's
reads): the same cases through both forms must give the same answers."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import duckdb
import pytest

from devformance_nb.core.eventlog import EventWriter
from devformance_nb.core.events import Query
from devformance_nb.logic.detection import NPlusOneDetector, NPlusOneFinding, find_n_plus_one
from devformance_nb.logic.fingerprint import fingerprint, fingerprint_hash
from devformance_nb.logic.slow import DEFAULT_SLOW_QUERY_MS, find_slow, is_slow, slow_sql
from devformance_nb.run.queryfacts import read_facts
from devformance_nb.store.rows import fingerprint_frame

CALLER = "app/views.py:42 list_books"

#: (duration in seconds, caller, statement, threshold in ms or None for the default, slow?)
SLOW_CASES: list[tuple[float, str | None, str, float | None, bool]] = [
    (0.1, CALLER, "SELECT * FROM books WHERE id = 2", 100.0, True),  # inclusive threshold
    (0.0999, CALLER, "SELECT * FROM books WHERE id = 1", 100.0, False),
    (0.0999, CALLER, "SELECT * FROM books WHERE id = 1", 99.9, True),
    (0.1, CALLER, "SELECT 1", None, True),  # a run without a threshold: the default
    (0.05, CALLER, "SELECT 1", None, False),
    (0.0, CALLER, "SELECT 1", 0.0, True),
    (math.nan, CALLER, "SELECT 1", 100.0, True),  # never under the threshold
    (2.5, "", "SELECT * FROM loans", 100.0, False),  # test tooling: no project caller
    (2.5, None, 'CREATE DATABASE "test_library_p42"', 100.0, False),
    (1.0, CALLER, "BEGIN", 100.0, False),
    (1.0, CALLER, "begin transaction", 100.0, False),
    (1.0, CALLER, "START TRANSACTION", 100.0, False),
    (1.0, CALLER, "COMMIT", 100.0, False),
    (1.0, CALLER, "END", 100.0, False),
    (1.0, CALLER, "ROLLBACK TO SAVEPOINT s1", 100.0, False),
    (1.0, CALLER, "ABORT", 100.0, False),
    (1.0, CALLER, 'SAVEPOINT "s1_x1"', 100.0, False),
    (1.0, CALLER, "RELEASE s1", 100.0, False),
    (1.0, CALLER, "  /* ORM */ COMMIT", 100.0, False),
    (1.0, CALLER, "SELECT * FROM commit_log", 100.0, True),  # a table, not a statement
    (1.0, CALLER, "PRAGMA x", 100.0, True),
    (1.0, CALLER, "SELECT relname FROM pg_catalog.pg_class", 100.0, True),
    (1.0, CALLER, "SET x = 1", 100.0, True),
    (1.0, CALLER, 'UPDATE "authors" SET n = 3', 100.0, True),
    (1.0, CALLER, "WITH x AS (SELECT 1) SELECT * FROM x", 100.0, True),
    (1.0, CALLER, "", 100.0, True),
]


def sql_answers(cases: list[tuple[float, str | None, str, float | None, bool]]) -> list[bool]:
    """The rule's SQL form on ``cases``, with statement types stored as the store stores them."""
    con = duckdb.connect()
    try:
        con.execute(
            "CREATE TABLE cases (i INTEGER, duration DOUBLE, caller VARCHAR, "
            "fingerprint_hash VARCHAR, slow_query_ms DOUBLE)"
        )
        fps: dict[str, str] = {}
        for i, (duration, caller, sql, ms, _) in enumerate(cases):
            fp = fingerprint(sql)
            fps[fingerprint_hash(fp)] = fp
            con.execute(
                "INSERT INTO cases VALUES (?, ?, ?, ?, ?)",
                [i, duration, caller, fingerprint_hash(fp), ms],
            )
        con.register("fingerprints", fingerprint_frame(fps))
        rule = slow_sql("c.duration", "c.caller", "f.statement_type", "c.slow_query_ms")
        rows = con.execute(
            f"SELECT {rule} FROM cases c LEFT JOIN fingerprints f USING (fingerprint_hash) "
            "ORDER BY c.i"
        ).fetchall()
        return [bool(row[0]) for row in rows]
    finally:
        con.close()


@pytest.mark.quick
def test_the_slow_query_rule_gives_the_same_answers_in_python_and_in_sql() -> None:
    expected = [case[-1] for case in SLOW_CASES]
    python = [
        is_slow(duration, caller, sql, DEFAULT_SLOW_QUERY_MS if ms is None else ms)
        for duration, caller, sql, ms, _ in SLOW_CASES
    ]
    assert python == expected
    assert sql_answers(SLOW_CASES) == expected


def test_find_slow_reports_what_the_rule_says() -> None:
    cases = [case for case in SLOW_CASES if case[3] == 100.0]
    queries = [
        query(d, sql, qseq=i, caller=caller or "") for i, (d, caller, sql, _, _) in enumerate(cases)
    ]
    expected = [i for i, case in enumerate(cases) if case[-1]]
    assert [s.qseq for s in find_slow(queries, 100.0)] == expected


_qseq = itertools.count(1)
FILE_A, FILE_B = "tests/test_a.py", "tests/test_b.py"
BOOKS = 'SELECT "books"."id" FROM "books" WHERE "books"."author_id" = {}'


def query(duration: float = 0.25, sql: str = "SELECT 1", **fields: object) -> Query:
    """A query event; durations are sums of powers of two so totals add up exactly."""
    base: dict[str, object] = {
        "file": FILE_A,
        "nodeid": f"{FILE_A}::test_one",
        "phase": "call",
        "qseq": next(_qseq),
        "start": 1_700_000_000.0,
        "duration": duration,
        "sql": sql,
        "vendor": "sqlite",
        "caller": CALLER,
        "stack_hash": "stack-a",
        "orm": "sqlalchemy",
    }
    base.update(fields)
    return Query(**base)  # type: ignore[arg-type]


def books(n: int, **fields: object) -> list[Query]:
    """``n`` lookups of books by author (ids 1..n): the classic N+1 when n >= min count."""
    return [query(sql=BOOKS.format(i + 1), **fields) for i in range(n)]


#: a page of one author's books, and a keyset page of them
PAGE = 'SELECT "books"."id" FROM "books" WHERE "books"."author_id" = ? LIMIT ? OFFSET ?'
KEYSET = (
    'SELECT "books"."id" FROM "books" WHERE "books"."author_id" = ? AND "books"."id" > ? LIMIT ?'
)

#: where the query that loaded the authors was built
QUERY_AT = "app/views.py:12 AuthorList.get_queryset"

#: the fix of a lazily loaded Author.books
SELECTIN = ".options(selectinload(Author.books))"


def first_test_of(file: str) -> dict[str, object]:
    """Fields placing a query in the first test of ``file``."""
    return {"file": file, "nodeid": f"{file}::test_one"}


#: name -> (query events in the order a child writes them, min count, allow list)
N_PLUS_ONE_CASES: dict[str, tuple[list[Query], int, list[str]]] = {
    "below the min count": (books(2), 3, []),
    "at the min count": (books(3), 3, []),
    "different stacks": ([*books(2), *books(2, stack_hash="stack-b"), *books(1)], 2, []),
    "different phases": (
        [*books(2, phase="setup"), *books(3), *books(1, phase="teardown")],
        2,
        [],
    ),
    "different tests and files": (
        [
            *books(2),
            *books(2, nodeid=f"{FILE_A}::test_two"),
            *books(3, **first_test_of(FILE_B)),
        ],
        2,
        [],
    ),
    "allow-listed by call site, stack and fingerprint": (
        [
            *books(2, caller="app/legacy/old.py:3 f"),
            *books(2, stack_hash="stack-ok"),
            *[query(sql="SELECT * FROM settings WHERE k = 'x'") for _ in range(2)],
            *books(2, stack_hash="stack-c"),
        ],
        2,
        ["app/legacy/*", "stack:stack-ok", "sql:select * from settings*"],
    ),
    "no stack hash: never grouped": (
        [
            *books(2, stack_hash="", caller=""),
            *books(3, stack_hash="", caller="", orm=""),
        ],
        2,
        [],
    ),
    "one body run again: once per run": (
        [q for run in range(5) for q in books(1, repeat=run)],
        2,
        [],
    ),
    "one body run again: a loop in two of its runs": (
        [*books(3), *books(1, repeat=1), *books(4, repeat=2)],
        2,
        [],
    ),
    "a SELECT that reads no table": (
        [*[query(sql=f"SELECT quote('{i}')") for i in range(3)], *[query() for _ in range(2)]],
        2,
        [],
    ),
    "allow-listed by the sending frame": (
        [
            *books(2, stack_hash="stack-h", sent_by="app/db.py:5 Database.execute"),
            *books(2, stack_hash="stack-i", sent_by="app/other.py:9 run"),
        ],
        2,
        ["app/db.py:Database.execute"],
    ),
    "orm of the first statement that has one": (
        [*books(1, orm=""), *books(2, orm="django")],
        2,
        [],
    ),
    "non-SELECT statements": (
        [
            *[query(sql=f"INSERT INTO books VALUES ({i})") for i in range(3)],
            *[query(sql=f"UPDATE books SET n = {i}") for i in range(3)],
            *[query(sql="DELETE FROM books") for _ in range(3)],
        ],
        2,
        [],
    ),
    "catalog lookups, transaction control and pages": (
        [
            *[query(sql="SELECT name FROM sqlite_master WHERE type = 'table'") for _ in range(3)],
            *[query(sql="SELECT relname FROM pg_catalog.pg_class") for _ in range(3)],
            *[query(sql="BEGIN") for _ in range(3)],
            *[query(sql="PRAGMA foreign_keys") for _ in range(3)],
            *[query(sql=f"SELECT * FROM books LIMIT 5 OFFSET {i}") for i in range(3)],
        ],
        2,
        [],
    ),
    "collection, without a test": (books(2, nodeid="", phase="collect"), 2, []),
    "pages: one listing's pages once, a page per parent once per parent": (
        [
            # successive pages of one listing (offset moves): counted once
            *[query(sql=PAGE, page=f"L1:p{i}") for i in range(4)],
            # the first page of each of three parents' listings: counted three times
            *[query(sql=PAGE, stack_hash="stack-p", page=f"L{i}:p0") for i in range(3)],
            # keyset pages of two parents, two pages each: counted twice
            *[
                query(sql=KEYSET, stack_hash="stack-k", page=f"K{parent}:c{at}")
                for parent in range(2)
                for at in range(2)
            ],
            # the same page of one listing read three times: three
            *[query(sql=PAGE, stack_hash="stack-r", page="L9:p0") for _ in range(3)],
            # an older child's pages, untagged: never counted
            *[query(sql=PAGE, stack_hash="stack-o") for _ in range(3)],
        ],
        2,
        [],
    ),
    "a lazy load on one row of many, below the min count": (
        [
            *books(1, relation="Author.books", peers=4, fix=SELECTIN),
            *books(1, stack_hash="stack-b", relation="Author.books", peers=1, fix=SELECTIN),
            *books(1, stack_hash="stack-c", relation="", peers=0),
        ],
        3,
        [],
    ),
    "a lazy load: the relation of the earliest, in every run of the body": (
        [
            *books(1, stack_hash="stack-d"),
            *books(2, stack_hash="stack-d", relation="Author.books", peers=2, fix=SELECTIN),
            *books(1, stack_hash="stack-d", repeat=1, relation="Book.x", peers=3, fix=".x"),
            *books(3, stack_hash="stack-e", relation="Author.books", peers=1, fix=SELECTIN),
        ],
        3,
        ["stack:stack-none"],
    ),
    "a lazy load: the frame to change is where the parents' query was built": (
        [
            *books(1, stack_hash="stack-q"),
            *books(
                2,
                stack_hash="stack-q",
                relation="Author.books",
                peers=3,
                fix=SELECTIN,
                query_at=QUERY_AT,
            ),
            *books(2, stack_hash="stack-u", relation="Author.books", peers=3, fix=SELECTIN),
        ],
        2,
        [],
    ),
    "a lazy load allow-listed": (
        books(1, relation="Author.books", peers=4, fix=SELECTIN),
        2,
        ["sql:select*books*"],
    ),
}


def live(queries: list[Query], min_count: int, allow: list[str]) -> list[NPlusOneFinding]:
    """Findings of the streaming detector the live loop runs."""
    detector = NPlusOneDetector(min_count=min_count, allow=allow)
    for event in queries:
        detector.add(event)
    return detector.drain()


def bulk(
    tmp_path: Path, queries: list[Query], min_count: int, allow: list[str]
) -> list[NPlusOneFinding]:
    """Findings of ingest's SQL grouping, over the same events written as events files."""
    paths = []
    for file in dict.fromkeys(event.file for event in queries):
        path = tmp_path / f"{len(paths)}.events.jsonl"
        writer = EventWriter(path, "run-1", file, flush_every=None)
        for event in queries:
            if event.file == file:
                writer.write(event)
        writer.close()
        paths.append(path)
    facts = read_facts(paths, slow_query_ms=100.0, min_count=min_count, allow=allow)
    return [finding for file in sorted(facts.files) for finding in facts.files[file].n_plus_one]


@pytest.mark.parametrize("name", list(N_PLUS_ONE_CASES))
def test_n_plus_one_grouping_gives_the_same_findings_live_and_at_ingest(
    tmp_path: Path, name: str
) -> None:
    queries, min_count, allow = N_PLUS_ONE_CASES[name]
    expected = find_n_plus_one(queries, min_count, allow)
    assert live(queries, min_count, allow) == expected
    assert bulk(tmp_path, queries, min_count, allow) == expected


def test_the_n_plus_one_cases_cover_findings_and_silence() -> None:
    counts = {
        name: [(f.nodeid, f.phase, f.stack_hash, f.caller, f.count) for f in find_n_plus_one(*case)]
        for name, case in N_PLUS_ONE_CASES.items()
    }
    test = f"{FILE_A}::test_one"
    assert counts["below the min count"] == []
    assert counts["at the min count"] == [(test, "call", "stack-a", CALLER, 3)]
    assert counts["different stacks"] == [
        (test, "call", "stack-a", CALLER, 3),
        (test, "call", "stack-b", CALLER, 2),
    ]
    assert [c[1] for c in counts["different phases"]] == ["setup", "call"]
    assert [c[0] for c in counts["different tests and files"]] == [
        test,
        f"{FILE_A}::test_two",
        f"{FILE_B}::test_one",
    ]
    assert counts["allow-listed by call site, stack and fingerprint"] == [
        (test, "call", "stack-c", CALLER, 2)
    ]
    assert counts["no stack hash: never grouped"] == []
    assert counts["a SELECT that reads no table"] == []
    assert counts["one body run again: once per run"] == []
    # one finding: the largest run's count
    assert counts["one body run again: a loop in two of its runs"] == [
        (test, "call", "stack-a", CALLER, 4)
    ]
    assert counts["allow-listed by the sending frame"] == [(test, "call", "stack-i", CALLER, 2)]
    assert [
        f.orm for f in find_n_plus_one(*N_PLUS_ONE_CASES["orm of the first statement that has one"])
    ] == ["django"]
    assert counts["non-SELECT statements"] == []
    assert counts["catalog lookups, transaction control and pages"] == []
    assert counts["collection, without a test"] == [("", "collect", "stack-a", CALLER, 2)]
    assert [
        c[2:] for c in counts["pages: one listing's pages once, a page per parent once per parent"]
    ] == [("stack-p", CALLER, 3), ("stack-k", CALLER, 2), ("stack-r", CALLER, 3)]
    # the ORM's rule: a lazy load for one of several rows is a finding at any count
    lazy = find_n_plus_one(*N_PLUS_ONE_CASES["a lazy load on one row of many, below the min count"])
    assert [(f.stack_hash, f.count, f.relation) for f in lazy] == [("stack-a", 1, "Author.books")]
    assert SELECTIN in lazy[0].hint and lazy[0].hint.startswith("Author.books is loaded lazily")
    runs = find_n_plus_one(
        *N_PLUS_ONE_CASES["a lazy load: the relation of the earliest, in every run of the body"]
    )
    assert [(f.stack_hash, f.count, f.relation) for f in runs] == [
        ("stack-d", 3, "Author.books"),
        ("stack-e", 3, "Author.books"),
    ]
    assert find_n_plus_one(*N_PLUS_ONE_CASES["a lazy load allow-listed"]) == []
    built = find_n_plus_one(
        *N_PLUS_ONE_CASES["a lazy load: the frame to change is where the parents' query was built"]
    )
    assert [(f.stack_hash, f.count, f.caller, f.sent_by) for f in built] == [
        ("stack-q", 3, QUERY_AT, ""),
        ("stack-u", 2, CALLER, ""),
    ]
