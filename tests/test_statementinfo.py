"""What a statement is (logic/statementinfo.py): statement types, the predicates on them, and
describe()'s tables and pretty text; table-driven cases."""

from __future__ import annotations

import pytest
from test_fingerprint import GARBAGE

from devformance_nb.logic.fingerprint import fingerprint
from devformance_nb.logic.statementinfo import (
    StatementInfo,
    clear_cache,
    describe,
    is_catalog_or_control,
    is_select,
    is_transaction_control,
    names_a_table,
    statement_type,
)


@pytest.mark.quick
@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", "SELECT"),
        ("  (SELECT 1) UNION (SELECT 2)", "SELECT"),
        ("select a from t", "SELECT"),
        ("WITH c AS (SELECT 1) SELECT * FROM c", "SELECT"),
        ("WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c", "INSERT"),
        ('WITH "c" AS (SELECT 1), d AS (SELECT 2) DELETE FROM t', "DELETE"),
        ("INSERT INTO t VALUES (1)", "INSERT"),
        ("UPDATE t SET a = 1", "UPDATE"),
        ("DELETE FROM t", "DELETE"),
        ("CREATE TABLE t (a INTEGER)", "CREATE"),
        ("DROP TABLE t", "DROP"),
        ("PRAGMA foreign_keys = ON", "PRAGMA"),
        ("BEGIN", "BEGIN"),
        ("BEGIN IMMEDIATE", "BEGIN"),
        ("START TRANSACTION", "BEGIN"),
        ("COMMIT", "COMMIT"),
        ("END", "COMMIT"),
        ("ROLLBACK TO SAVEPOINT s1", "ROLLBACK"),
        ('SAVEPOINT "s1"', "SAVEPOINT"),
        ("RELEASE SAVEPOINT s1", "RELEASE"),
        ("FROBNICATE", "OTHER"),
        ("", "OTHER"),
        ("?", "OTHER"),
    ],
)
def test_statement_type(sql: str, kind: str) -> None:
    fp = fingerprint(sql)
    assert statement_type(fp) == kind
    assert describe(sql).statement_type == kind
    assert is_select(fp) == (kind == "SELECT")


@pytest.mark.quick
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("BEGIN", True),
        ("COMMIT", True),
        ("ROLLBACK", True),
        ('SAVEPOINT "x"', True),
        ('RELEASE SAVEPOINT "x"', True),
        ("PRAGMA table_info('books')", True),
        ("SELECT name FROM sqlite_master WHERE type = 'table'", True),
        ("SELECT name FROM sqlite_schema", True),
        ("SELECT * FROM information_schema.tables", True),
        ("SELECT c.relname FROM pg_catalog.pg_class c", True),
        ('SELECT * FROM "books"', False),
        ("SELECT * FROM my_sqlite_master_copy", False),
        ("INSERT INTO t VALUES (1)", False),
    ],
)
def test_catalog_or_control(sql: str, expected: bool) -> None:
    assert is_catalog_or_control(fingerprint(sql)) == expected


@pytest.mark.quick
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("BEGIN", True),
        ("START TRANSACTION", True),
        ("COMMIT", True),
        ("END", True),
        ("ROLLBACK TO SAVEPOINT s1", True),
        ('SAVEPOINT "s123_x1"', True),
        ('RELEASE SAVEPOINT "s123_x1"', True),
        ("PRAGMA foreign_keys = ON", False),
        ("SELECT c.relname FROM pg_catalog.pg_class c", False),
        ("SET CONSTRAINTS ALL IMMEDIATE", False),
        ("SELECT 1", False),
    ],
)
def test_transaction_control(sql: str, expected: bool) -> None:
    assert is_transaction_control(fingerprint(sql)) == expected


@pytest.mark.quick
@pytest.mark.parametrize(
    ("sql", "tables"),
    [
        ('SELECT "books"."id" FROM "books" WHERE "books"."author_id" = ?', ("books",)),
        ("SELECT * FROM Books", ("Books",)),
        (
            "SELECT * FROM a JOIN b ON a.id = b.a_id LEFT OUTER JOIN c AS cc ON 1 = 1",
            ("a", "b", "c"),
        ),
        ("SELECT * FROM a, b WHERE a.x = b.x", ("a", "b")),
        ("SELECT * FROM (SELECT id FROM inner_t) AS sub", ("inner_t",)),
        ("SELECT * FROM t WHERE id IN (SELECT t_id FROM u)", ("t", "u")),
        ('INSERT INTO "books" ("a", "b") VALUES (?, ?)', ("books",)),
        ("INSERT INTO books(a, b) VALUES (1, 2)", ("books",)),
        ("UPDATE `authors` SET name = ? WHERE id = ?", ("authors",)),
        ("DELETE FROM [Orders] WHERE id = 1", ("Orders",)),
        ("SELECT * FROM main.books", ("books",)),
        ("WITH c AS (SELECT * FROM src) SELECT * FROM c JOIN other ON 1 = 1", ("src", "other")),
        ("BEGIN", ()),
        ("SELECT 1", ()),
    ],
)
def test_describe_tables(sql: str, tables: tuple[str, ...]) -> None:
    assert describe(sql).tables == tables
    assert names_a_table(fingerprint(sql)) is bool(tables)


@pytest.mark.quick
@pytest.mark.parametrize(
    ("sql", "names"),
    [
        # only its own common table expression: no table, as describe says
        ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c", False),
        ('WITH "q" AS (SELECT 1) SELECT * FROM "q"', False),
        ("WITH q AS (SELECT * FROM books) SELECT * FROM q", True),
        ("SELECT ?", False),
        ("SELECT count(*) FROM (SELECT 1) AS sub", False),
        ('SELECT * FROM "Go""sh" WHERE rowid = ?', True),
    ],
)
def test_names_a_table_answers_as_describe_does(sql: str, names: bool) -> None:
    fp = fingerprint(sql)
    assert names_a_table(fp) is names
    assert bool(describe(fp).tables) is names


@pytest.mark.quick
def test_describe_pretty_is_reindented() -> None:
    info = describe("select a, b from t where x = 1 order by a")
    assert info.pretty.splitlines() == [
        "SELECT a,",
        "       b",
        "FROM t",
        "WHERE x = ?",
        "ORDER BY a",
    ]


@pytest.mark.quick
def test_describe_survives_input_sqlparse_cannot_take() -> None:
    # over 10,000 tokens: sqlparse raises, the regex fallback answers
    columns = ", ".join(f"c{i}" for i in range(12_000))
    info = describe(f"SELECT {columns} FROM wide JOIN other ON 1 = 1")
    assert info.statement_type == "SELECT"
    assert info.tables == ("wide", "other")
    assert len(info.pretty) <= 4_000


@pytest.mark.quick
@pytest.mark.parametrize("sql", GARBAGE)
def test_garbage_is_described_without_raising(sql: str) -> None:
    assert isinstance(describe(sql), StatementInfo)
    assert isinstance(statement_type(fingerprint(sql)), str)


@pytest.mark.quick
def test_clear_cache_forgets_types_and_descriptions() -> None:
    from devformance_nb.logic import statementinfo

    describe("SELECT * FROM t WHERE a = 1")
    assert statementinfo._describe_fingerprint.cache_info().currsize > 0
    clear_cache()
    assert statement_type.cache_info().currsize == 0
    assert statementinfo._describe_fingerprint.cache_info().currsize == 0
