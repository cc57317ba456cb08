"""Slow queries and N+1 findings on small hand-built lists of Query events."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from devformance_nb.core.events import Query
from devformance_nb.logic.detection import (
    NPlusOneDetector,
    NPlusOneFinding,
    find_n_plus_one,
)
from devformance_nb.logic.fingerprint import fingerprint_hash
from devformance_nb.logic.hints import hint_for
from devformance_nb.logic.slow import EXAMPLE_MAX_CHARS, SlowQuery, find_slow

pytestmark = pytest.mark.quick

FILE = "tests/test_books.py"
TEST = "tests/test_books.py::test_list"
CALLER = "app/views.py:42 list_books"
BOOKS_BY_AUTHOR = 'SELECT "books"."id" FROM "books" WHERE "books"."author_id" = {}'
BOOKS_FP = 'SELECT "books"."id" FROM "books" WHERE "books"."author_id" = ?'

_qseq = itertools.count(1)


def q(sql: str = BOOKS_BY_AUTHOR.format(1), **overrides: Any) -> Query:
    """A query event with sensible defaults; every call gets the next qseq."""
    fields: dict[str, Any] = {
        "file": FILE,
        "nodeid": TEST,
        "phase": "call",
        "qseq": next(_qseq),
        "start": 0.0,
        "duration": 0.002,
        "sql": sql,
        "vendor": "sqlite",
        "caller": CALLER,
        "stack_hash": "stack-a",
        "orm": "sqlalchemy",
    }
    fields.update(overrides)
    return Query(**fields)


def books(n: int, **overrides: Any) -> list[Query]:
    """``n`` lookups of books by author id (ids 1..n): the classic N+1."""
    return [q(BOOKS_BY_AUTHOR.format(i + 1), **overrides) for i in range(n)]


def summary(findings: list[NPlusOneFinding]) -> list[tuple[str, str, str, int]]:
    return [(f.nodeid, f.phase, f.fingerprint, f.count) for f in findings]


def test_repeated_select_from_one_stack_is_a_finding() -> None:
    queries = books(3, duration=0.01)
    [finding] = find_n_plus_one(queries)
    assert finding == NPlusOneFinding(
        file=FILE,
        nodeid=TEST,
        phase="call",
        fingerprint=BOOKS_FP,
        fingerprint_hash=fingerprint_hash(BOOKS_FP),
        table="books",
        count=3,
        total_duration=pytest.approx(0.03),  # type: ignore[arg-type]
        caller=CALLER,
        stack_hash="stack-a",
        example_sql=BOOKS_BY_AUTHOR.format(1),
        orm="sqlalchemy",
        hint=hint_for("sqlalchemy", "books"),
        first_qseq=queries[0].qseq,
    )


@pytest.mark.parametrize(
    ("name", "queries"),
    [
        ("different stacks", [q(stack_hash="a"), q(stack_hash="b"), q(stack_hash="c")]),
        ("different phases", [q(phase="setup"), q(phase="call"), q(phase="teardown")]),
        ("different tests", [q(nodeid=f"{FILE}::test_{i}") for i in range(3)]),
        ("different files", [q(file=f"tests/test_{i}.py") for i in range(3)]),
        ("different statements", [q("SELECT * FROM a"), q("SELECT * FROM b")]),
        ("a single query", [q()]),
        ("updates", [q(f"UPDATE books SET n = {i} WHERE id = {i}") for i in range(3)]),
        ("inserts", [q(f"INSERT INTO books (id) VALUES ({i})") for i in range(3)]),
        ("deletes", [q(f"DELETE FROM books WHERE id = {i}") for i in range(3)]),
        ("begins", [q("BEGIN") for _ in range(3)]),
        ("commits", [q("COMMIT") for _ in range(3)]),
        ("savepoints", [q(f'SAVEPOINT "sa_savepoint_{i}"') for i in range(3)]),
        ("pragmas", [q('PRAGMA main.table_info("books")') for _ in range(3)]),
        ("sqlite catalog", [q("SELECT name FROM sqlite_master WHERE type='table'")] * 3),
        ("pg catalog", [q("SELECT relname FROM pg_catalog.pg_class WHERE oid = 1")] * 3),
        ("info schema", [q("SELECT * FROM information_schema.tables WHERE a = 1")] * 3),
        ("no stack, different callers", [q(stack_hash="", caller=f"x.py:{i} f") for i in range(3)]),
        ("pages", [q(f"SELECT title FROM books ORDER BY id LIMIT 3 OFFSET {i}") for i in (0, 3)]),
        ("bound pages", [q("SELECT id FROM books LIMIT ? OFFSET ?") for _ in range(3)]),
        ("mysql pages", [q(f"SELECT id FROM books LIMIT {i}, 10") for i in (0, 10, 20)]),
    ],
)
def test_no_finding(name: str, queries: list[Query]) -> None:
    assert find_n_plus_one(queries) == []


def test_a_limit_without_an_offset_and_a_column_named_offset_still_count() -> None:
    first_review = [q(f"SELECT * FROM reviews WHERE book_id = {i} LIMIT 1") for i in (1, 2)]
    by_offset = [q(f'SELECT "offset" FROM t WHERE offset = {i}') for i in (1, 2)]
    assert [f.count for f in find_n_plus_one(first_review + by_offset)] == [2, 2]


def test_count_below_min_count_is_not_a_finding() -> None:
    assert find_n_plus_one(books(2), min_count=3) == []
    assert summary(find_n_plus_one(books(3), min_count=3)) == [(TEST, "call", BOOKS_FP, 3)]


def test_min_count_must_be_at_least_two() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        find_n_plus_one(books(3), min_count=1)


def test_queries_without_a_stack_hash_are_never_grouped() -> None:
    # no project frame: nothing to change and nothing to tell two sources apart
    queries = books(3, stack_hash="", caller="") + books(2, stack_hash="", caller="")
    assert find_n_plus_one(queries) == []
    assert [f.count for f in find_n_plus_one(books(2))] == [2]


def test_a_select_that_reads_no_table_is_never_an_n_plus_one() -> None:
    queries = [q(f"SELECT quote('{i}')") for i in range(5)] + [q("SELECT 1") for _ in range(3)]
    assert find_n_plus_one(queries) == []


def test_the_finding_keeps_the_frame_that_sent_the_statement() -> None:
    [finding] = find_n_plus_one(books(3, sent_by="app/db.py:10 Database.execute"))
    assert (finding.caller, finding.sent_by) == (CALLER, "app/db.py:10 Database.execute")


def test_an_allow_entry_may_name_the_sending_helper() -> None:
    queries = books(3, sent_by="app/db.py:10 Database.execute")
    assert find_n_plus_one(queries, allow=["app/db.py:Database.execute"]) == []
    assert len(find_n_plus_one(queries, allow=["app/other.py"])) == 1


def test_interleaved_statements_group_separately() -> None:
    queries = []
    for i in range(3):
        queries.append(q(f"SELECT * FROM authors WHERE id = {i}", stack_hash="s-auth"))
        queries += books(1)
    assert summary(find_n_plus_one(queries)) == [
        (TEST, "call", "SELECT * FROM authors WHERE id = ?", 3),
        (TEST, "call", BOOKS_FP, 3),
    ]


def test_with_select_counts_and_in_lists_collapse() -> None:
    queries = [
        q(f"WITH x AS (SELECT 1) SELECT * FROM books WHERE id IN ({', '.join('?' * i)})")
        for i in range(1, 4)
    ]
    [finding] = find_n_plus_one(queries)
    assert finding.fingerprint == "WITH x AS (SELECT ?) SELECT * FROM books WHERE id IN (...)"
    assert finding.table == "books"


def test_findings_are_ordered_by_file_test_phase_and_first_qseq() -> None:
    queries = (
        books(2, file="tests/test_z.py", nodeid="tests/test_z.py::test_z")
        + books(2, phase="teardown")
        + books(2, phase="setup")
        + books(2, nodeid=f"{FILE}::test_a", stack_hash="later")
        + books(2, nodeid=f"{FILE}::test_a", stack_hash="sooner", qseq=0)
    )
    order = [(f.file, f.nodeid, f.phase, f.stack_hash) for f in find_n_plus_one(queries)]
    assert order == [
        (FILE, f"{FILE}::test_a", "call", "sooner"),
        (FILE, f"{FILE}::test_a", "call", "later"),
        (FILE, TEST, "setup", "stack-a"),
        (FILE, TEST, "teardown", "stack-a"),
        ("tests/test_z.py", "tests/test_z.py::test_z", "call", "stack-a"),
    ]


def test_earliest_query_is_the_example_whatever_the_input_order() -> None:
    queries = books(3)
    [finding] = find_n_plus_one(list(reversed(queries)))
    assert finding.first_qseq == queries[0].qseq
    assert finding.example_sql == queries[0].sql


def test_example_sql_is_capped() -> None:
    long_sql = f"SELECT * FROM books WHERE title = '{'x' * 10_000}'"
    [finding] = find_n_plus_one([q(long_sql), q(long_sql)])
    assert len(finding.example_sql) == EXAMPLE_MAX_CHARS
    assert finding.fingerprint == "SELECT * FROM books WHERE title = ?"


def test_orm_is_taken_from_the_queries() -> None:
    [finding] = find_n_plus_one(books(2, orm="django"))
    assert finding.orm == "django"
    assert "select_related" in finding.hint


@pytest.mark.parametrize(
    ("allow", "silenced"),
    [
        ([CALLER], True),
        (["app/views.py:42"], True),
        (["app/views.py:list_books"], True),
        (["app/views.py"], True),
        (["app/*"], True),
        (["*:list_*"], True),
        (["  app/views.py:list_books  "], True),
        (["app/views.py:43"], False),
        (["app/views.py:other"], False),
        (["lib/*"], False),
        (["sql:" + BOOKS_FP], True),
        (['sql:select "books".* from "books"*'], True),
        (["SQL:*author_id*"], True),
        (["sql:*authors*"], False),
        (["stack:stack-a"], True),
        (["stack:stack-b"], False),
        ([""], False),
        (["lib/*", "sql:*nothing*", "app/views.py"], True),
    ],
)
def test_allow_list(allow: list[str], silenced: bool) -> None:
    findings = find_n_plus_one(books(3), allow=allow)
    assert (findings == []) == silenced


def test_allow_list_silences_only_the_matching_group() -> None:
    queries = books(2) + books(2, stack_hash="other", caller="app/api.py:7 api_books")
    [finding] = find_n_plus_one(queries, allow=["app/views.py:*"])
    assert finding.caller == "app/api.py:7 api_books"


def test_a_django_finding_gets_the_hint_its_statement_suggests() -> None:
    forward = 'SELECT "m"."id" FROM "m" WHERE "m"."id" = ? LIMIT ?'
    [finding] = find_n_plus_one([q(forward, orm="django") for _ in range(2)])
    assert finding.hint == hint_for("django", "m", forward)


def test_a_lazy_load_finding_gets_the_orm_s_exact_fix() -> None:
    fix = '.select_related("m")'
    sql = 'SELECT "m"."id" FROM "m" WHERE "m"."id" = ?'
    marked = [q(sql, orm="django", relation="Loan.m", peers=2, fix=fix) for _ in range(2)]
    [finding] = find_n_plus_one(marked)
    assert finding.relation == "Loan.m"
    assert finding.hint.split(": add ")[1].startswith(fix)


def mixed_stream() -> list[Query]:
    """Two files interleaved, several tests each, as the parent's single queue sees them."""
    a, b = "tests/test_a.py", "tests/test_b.py"
    stream = []
    for i in range(3):
        stream += books(3, file=a, nodeid=f"{a}::test_{i}")
        stream += books(1, file=b, nodeid=f"{b}::test_{i}")
        stream += books(2, file=b, nodeid=f"{b}::test_{i}", phase="teardown")
        stream += [q("BEGIN", file=a, nodeid=f"{a}::test_{i}")] * 2
    return stream


def test_incremental_detector_matches_batch() -> None:
    stream = mixed_stream()
    detector = NPlusOneDetector()
    emitted = []
    for query in stream:
        emitted += detector.add(query)
        assert detector.open_tests <= 2  # one open test per file
    assert detector.findings() == find_n_plus_one(stream)
    emitted += detector.finish_file("tests/test_a.py") + detector.finish_file("tests/test_b.py")
    assert detector.open_tests == 0
    assert sorted(emitted, key=lambda f: (f.file, f.nodeid, f.first_qseq)) == find_n_plus_one(
        stream
    )
    assert len(emitted) == 6


def test_detector_emits_when_the_test_changes() -> None:
    detector = NPlusOneDetector()
    assert [detector.add(query) for query in books(3)] == [[], [], []]
    emitted = detector.add(q(nodeid=f"{FILE}::test_next"))
    assert summary(emitted) == [(TEST, "call", BOOKS_FP, 3)]
    assert detector.open_tests == 1


def test_detector_finish_test_and_drain() -> None:
    detector = NPlusOneDetector()
    for query in books(2) + books(2, file="tests/test_other.py", nodeid="other::t"):
        detector.add(query)
    assert summary(detector.finish_test(FILE, TEST)) == [(TEST, "call", BOOKS_FP, 2)]
    assert detector.finish_test(FILE, TEST) == []
    assert detector.open_tests == 1
    assert len(detector.findings()) == 2
    assert [f.nodeid for f in detector.drain()] == [TEST, "other::t"]
    assert detector.findings() == []
    assert detector.open_tests == 0


def test_detector_without_auto_finish_merges_a_returning_test() -> None:
    stream = [*books(1), q(nodeid="other"), *books(1)]
    assert NPlusOneDetector(auto_finish=True).findings() == []
    detector = NPlusOneDetector(auto_finish=False)
    for query in stream:
        detector.add(query)
    assert summary(detector.findings()) == [(TEST, "call", BOOKS_FP, 2)]


def test_find_slow_threshold_is_inclusive() -> None:
    queries = [
        q("SELECT * FROM books WHERE id = 1", duration=0.0999),
        q("SELECT * FROM books WHERE id = 2", duration=0.1),
        q('UPDATE "authors" SET n = 3', duration=2.5, phase="setup"),
    ]
    assert find_slow(queries, slow_query_ms=100) == [
        SlowQuery(
            file=FILE,
            nodeid=TEST,
            phase="call",
            qseq=queries[1].qseq,
            sql="SELECT * FROM books WHERE id = 2",
            fingerprint="SELECT * FROM books WHERE id = ?",
            duration=0.1,
            caller=CALLER,
            table="books",
        ),
        SlowQuery(
            file=FILE,
            nodeid=TEST,
            phase="setup",
            qseq=queries[2].qseq,
            sql='UPDATE "authors" SET n = 3',
            fingerprint='UPDATE "authors" SET n = ?',
            duration=2.5,
            caller=CALLER,
            table="authors",
        ),
    ]


def test_find_slow_includes_every_kind_of_statement_but_transaction_control() -> None:
    control = ("BEGIN", "COMMIT", "ROLLBACK TO SAVEPOINT s1", 'SAVEPOINT "s1_x1"', "RELEASE s1")
    others = ("PRAGMA x", "SELECT 1", "", "SELECT relname FROM pg_catalog.pg_class", "SET x = 1")
    queries = [q(sql, duration=1.0) for sql in control + others]
    assert [s.fingerprint for s in find_slow(queries, 100)] == [
        "PRAGMA x",
        "SELECT ?",
        "",
        "SELECT relname FROM pg_catalog.pg_class",
        "SET x = ?",
    ]
    assert find_slow(queries, 1001) == []


def test_find_slow_skips_statements_no_project_code_issued() -> None:
    tooling = q('CREATE DATABASE "test_library_p42"', duration=0.3, caller="", stack_hash="")
    ours = q("SELECT * FROM loans", duration=0.3)
    assert [s.qseq for s in find_slow([tooling, ours], 100)] == [ours.qseq]


def test_find_slow_caps_the_sql() -> None:
    [slow] = find_slow([q("SELECT '" + "x" * 5000 + "'", duration=1.0)], 100)
    assert len(slow.sql) == EXAMPLE_MAX_CHARS
    assert slow.fingerprint == "SELECT ?"
