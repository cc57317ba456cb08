"""Fingerprints (logic/fingerprint.py): table-driven cases, bounds and the cache."""

from __future__ import annotations

import os
import random

import pytest

from devformance_nb.logic import fingerprint as fp_module
from devformance_nb.logic.fingerprint import fingerprint, fingerprint_hash

FINGERPRINTS = [
    # a letter before a quote opens a literal only as a prefix (N'', E'', X'', U&''); a word
    # with a digit first, and & between words, are not literals
    (
        "SELECT N'x', E'a\\'b', U&'d', X'ff', x&y, 1abc, n FROM t WHERE u = 'q'",
        "SELECT ?, ?, ?, ?, x & y, 1abc, n FROM t WHERE u = ?",
    ),
    # literals of every kind
    ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
    ("SELECT * FROM t WHERE price = 4.25", "SELECT * FROM t WHERE price = ?"),
    (
        "SELECT * FROM t WHERE x = .5 OR y = 1. OR z = 1e-3",
        "SELECT * FROM t WHERE x = ? OR y = ? OR z = ?",
    ),
    ("SELECT * FROM t WHERE x = 6.02E+23", "SELECT * FROM t WHERE x = ?"),
    ("SELECT * FROM t WHERE name = 'Ann'", "SELECT * FROM t WHERE name = ?"),
    ("SELECT * FROM t WHERE name = 'it''s'", "SELECT * FROM t WHERE name = ?"),
    (
        "SELECT * FROM t WHERE name = E'it\\'s' AND a = 1",
        "SELECT * FROM t WHERE name = ? AND a = ?",
    ),
    ("SELECT * FROM t WHERE p = 'C:\\' AND a = 1", "SELECT * FROM t WHERE p = ? AND a = ?"),
    (
        'SELECT "a"."id" FROM "a" WHERE "a"."name" LIKE %s ESCAPE \'\\\' ORDER BY "a"."id" ASC',
        'SELECT "a"."id" FROM "a" WHERE "a"."name" LIKE ? ESCAPE ? ORDER BY "a"."id" ASC',
    ),
    ("SELECT * FROM t WHERE name = ''", "SELECT * FROM t WHERE name = ?"),
    ("SELECT * FROM t WHERE name = '-- not a comment'", "SELECT * FROM t WHERE name = ?"),
    ("SELECT * FROM t WHERE name = '/* nor this */'", "SELECT * FROM t WHERE name = ?"),
    (
        "SELECT * FROM t WHERE name = N'Zoë' OR name = E'a\\nb'",
        "SELECT * FROM t WHERE name = ? OR name = ?",
    ),
    ("SELECT * FROM t WHERE a = TRUE AND b = false", "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("SELECT * FROM t WHERE a IS NULL", "SELECT * FROM t WHERE a IS NULL"),
    ("SELECT * FROM t WHERE h = 0xDEADbeef", "SELECT * FROM t WHERE h = ?"),
    ("SELECT * FROM t WHERE b = X'00ff' OR b = x'AB'", "SELECT * FROM t WHERE b = ? OR b = ?"),
    ("SELECT * FROM t WHERE bits = B'0101'", "SELECT * FROM t WHERE bits = ?"),
    ("SELECT $$a 'quoted' body$$, $fn$ x $fn$", "SELECT ?, ?"),
    # negative numbers versus the minus operator
    ("SELECT * FROM t WHERE x = -5", "SELECT * FROM t WHERE x = ?"),
    ("SELECT * FROM t WHERE x = +5", "SELECT * FROM t WHERE x = ?"),
    ("SELECT a - 5 FROM t", "SELECT a - ? FROM t"),
    ("SELECT a-5 FROM t", "SELECT a - ? FROM t"),
    ("SELECT a - -5 FROM t", "SELECT a - ? FROM t"),
    ("SELECT (a) - 1, -1, f(-2) FROM t", "SELECT (a) - ?, ?, f(?) FROM t"),
    ("SELECT NULL - 1", "SELECT NULL - ?"),
    ("SELECT x FROM t LIMIT -1 OFFSET 20", "SELECT x FROM t LIMIT ? OFFSET ?"),
    # identifiers with digits stay
    ("SELECT t1.col2 FROM tab3 t1 WHERE t1.c4 = 5", "SELECT t1.col2 FROM tab3 t1 WHERE t1.c4 = ?"),
    ("SELECT x FROM t WHERE _x9 = 9", "SELECT x FROM t WHERE _x9 = ?"),
    ("SELECT 123abc FROM t", "SELECT 123abc FROM t"),
    ("SELECT a$b FROM t", "SELECT a$b FROM t"),
    # IN lists
    ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (...)"),
    ("SELECT * FROM t WHERE id IN (7)", "SELECT * FROM t WHERE id IN (...)"),
    ("SELECT * FROM t WHERE id in ('a','b')", "SELECT * FROM t WHERE id IN (...)"),
    ("SELECT * FROM t WHERE id IN (?, ?, ?)", "SELECT * FROM t WHERE id IN (...)"),
    ("SELECT * FROM t WHERE id IN (%s, %s)", "SELECT * FROM t WHERE id IN (...)"),
    ("SELECT * FROM t WHERE id IN ($1, $2, $3)", "SELECT * FROM t WHERE id IN (...)"),
    ("SELECT * FROM t WHERE id IN (-1, NULL, 2)", "SELECT * FROM t WHERE id IN (...)"),
    ("SELECT * FROM t WHERE id NOT IN (1,2)", "SELECT * FROM t WHERE id NOT IN (...)"),
    ("SELECT * FROM t WHERE id IN(1,2)", "SELECT * FROM t WHERE id IN (...)"),
    (
        "SELECT * FROM t WHERE id IN (SELECT a FROM u WHERE b = 1)",
        "SELECT * FROM t WHERE id IN (SELECT a FROM u WHERE b = ?)",
    ),
    ("SELECT * FROM t WHERE id IN (a, b)", "SELECT * FROM t WHERE id IN (a, b)"),
    (
        "SELECT * FROM t WHERE id = ANY(ARRAY[1, 2, 3])",
        "SELECT * FROM t WHERE id = ANY(ARRAY[...])",
    ),
    # multi-row VALUES
    ("INSERT INTO t (a, b) VALUES (1, 'x')", "INSERT INTO t (a, b) VALUES (?, ?)"),
    (
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
        "INSERT INTO t (a, b) VALUES (?, ?)",
    ),
    ("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)", "INSERT INTO t (a, b) VALUES (?, ?)"),
    ("INSERT INTO t VALUES (1, now()), (2, now())", "INSERT INTO t VALUES (?, NOW())"),
    (
        "INSERT INTO t (a) VALUES (1), (2) RETURNING id",
        "INSERT INTO t (a) VALUES (?) RETURNING id",
    ),
    # comments
    ("SELECT 1 -- trailing comment", "SELECT ?"),
    ("/* app:shop route:/books */ SELECT a FROM t", "SELECT a FROM t"),
    ("SELECT a /* inline */ FROM t", "SELECT a FROM t"),
    ("SELECT a FROM t -- first\n-- second\nWHERE b = 2", "SELECT a FROM t WHERE b = ?"),
    ("SELECT a /* multi\nline\n*/ FROM t", "SELECT a FROM t"),
    # keyword case and whitespace
    ("select   a,b\n\tfrom t  where c=1", "SELECT a, b FROM t WHERE c = ?"),
    ("Select Count(*) From Books", "SELECT COUNT(*) FROM Books"),
    ("SELECT MyColumn FROM MyTable", "SELECT MyColumn FROM MyTable"),
    ("SELECT a FROM t ORDER BY a desc limit 10;", "SELECT a FROM t ORDER BY a DESC LIMIT ?"),
    (
        "SELECT a FROM t WHERE a <= 1 AND b<>2 AND c != 3",
        "SELECT a FROM t WHERE a <= ? AND b <> ? AND c != ?",
    ),
    ("SELECT a || 'x' FROM t", "SELECT a || ? FROM t"),
    ("SELECT a::text FROM t", "SELECT a::text FROM t"),
    ("insert into books(a,b) values (1,2)", "INSERT INTO books (a, b) VALUES (?, ?)"),
    # quoted identifiers are kept verbatim
    (
        'SELECT "books"."id" FROM "books" WHERE "books"."author_id" = ?',
        'SELECT "books"."id" FROM "books" WHERE "books"."author_id" = ?',
    ),
    ('SELECT "Weird ""Name"" 1" FROM "t"', 'SELECT "Weird ""Name"" 1" FROM "t"'),
    ("SELECT `order`, `my col` FROM `Books`", "SELECT `order`, `my col` FROM `Books`"),
    ("SELECT [Order Id] FROM [dbo].[Books]", "SELECT [Order Id] FROM [dbo].[Books]"),
    ('SELECT "select" FROM "from"', 'SELECT "select" FROM "from"'),
    # placeholders of every paramstyle
    ("SELECT * FROM t WHERE a = ?", "SELECT * FROM t WHERE a = ?"),
    ("SELECT * FROM t WHERE a = ?1 AND b = ?2", "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("SELECT * FROM t WHERE a = %s", "SELECT * FROM t WHERE a = ?"),
    ("SELECT * FROM t WHERE a = %(name)s AND b = %(b_1)s", "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("SELECT * FROM t WHERE a = :name AND b = :b_1", "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("SELECT * FROM t WHERE a = :1", "SELECT * FROM t WHERE a = ?"),
    ("SELECT * FROM t WHERE a = $1 AND b = $12", "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("SELECT a % b FROM t", "SELECT a % b FROM t"),
    # statement shapes ORMs emit
    (
        'SELECT "a"."id", "a"."name" FROM "a" WHERE "a"."id" = %s LIMIT 21',
        'SELECT "a"."id", "a"."name" FROM "a" WHERE "a"."id" = ? LIMIT ?',
    ),
    (
        "SELECT books.id AS books_id FROM books WHERE ? = books.author_id",
        "SELECT books.id AS books_id FROM books WHERE ? = books.author_id",
    ),
    # savepoint names are chosen per call (Django: thread id and counter; SQLAlchemy: counter)
    ('SAVEPOINT "s140191544904576_x1"', "SAVEPOINT ?"),
    ('RELEASE SAVEPOINT "s139842015075200_x12"', "RELEASE SAVEPOINT ?"),
    ("ROLLBACK TO SAVEPOINT sa_savepoint_3", "ROLLBACK TO SAVEPOINT ?"),
    ("release sp1;", "RELEASE ?"),
    ("rollback to sp2", "ROLLBACK TO ?"),
    ("SELECT savepoint FROM t", "SELECT SAVEPOINT FROM t"),
    # generated parts of names (sqlite-utils' transform tables and savepoints, uuids) ...
    (
        'ALTER TABLE "books_new_d09c5dbfc17a" RENAME TO "books"',
        'ALTER TABLE "books_new_?" RENAME TO "books"',
    ),
    ('CREATE TEMP TABLE "tmp_0C8F1E2D4B5A" AS SELECT 1', 'CREATE TEMP TABLE "tmp_?" AS SELECT ?'),
    # an unquoted one is quoted, so that it stays one token when fingerprinted again
    ("CREATE TEMP TABLE tmp_0c8f1e2d4b5a AS SELECT 1", 'CREATE TEMP TABLE "tmp_?" AS SELECT ?'),
    ("DROP TABLE t2ca733f055947886cde0eaec6e93efaf", 'DROP TABLE "t?"'),
    ("SAVEPOINT sqlite_utils_cb832594934ee231b3dac9b10c6f7e35", "SAVEPOINT ?"),
    ('UPDATE "t" SET "u" = lambda_8729216110816("n")', 'UPDATE "t" SET "u" = "lambda_?" ("n")'),
    ('SELECT * FROM "x-0c8f1e2d-4b5a-11ee-9c7d-0242ac120002"', 'SELECT * FROM "x-?"'),
    # ... but not words, numbers or dates that look a little like them
    ("SELECT deadbeefcafe FROM t_20240101", "SELECT deadbeefcafe FROM t_20240101"),
    ("SELECT * FROM tabcde123456", "SELECT * FROM tabcde123456"),
    ("SELECT * FROM t_1a2b3c", "SELECT * FROM t_1a2b3c"),
    ("WITH c AS (SELECT 1) SELECT * FROM c", "WITH c AS (SELECT ?) SELECT * FROM c"),
]

GARBAGE = [
    "",
    "   \n\t ",
    ";",
    "'",
    "'unterminated string",
    '"unterminated identifier',
    "`unterminated",
    "[unterminated",
    "/* unterminated comment",
    "$tag$ unterminated dollar",
    "SELECT 'a\\",
    "%(",
    "\x00\x01\x02\xff\ufffd",
    "\ud800 lone surrogate",
    "🙂 SELECT 🙂",
    ")))(((",
    "--",
    "/*/",
    "$$",
    "0x",
    "1e",
    "...",
]


@pytest.mark.quick
@pytest.mark.parametrize(("sql", "expected"), FINGERPRINTS)
def test_fingerprint(sql: str, expected: str) -> None:
    assert fingerprint(sql) == expected


@pytest.mark.quick
@pytest.mark.parametrize(("sql", "expected"), FINGERPRINTS)
def test_fingerprint_is_idempotent(sql: str, expected: str) -> None:
    assert fingerprint(expected) == expected


@pytest.mark.quick
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("SELECT * FROM t WHERE id = 1", "select *  from t where id=99"),
        ("SELECT * FROM t WHERE id IN (1)", "SELECT * FROM t WHERE id IN (1, 2, 3, 4)"),
        ("SELECT * FROM t WHERE id = %s", "SELECT * FROM t WHERE id = :id"),
        ("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1), (2)"),
        ("SELECT 1 /* a */", "SELECT 2 -- b"),
    ],
)
def test_same_shape_same_fingerprint(first: str, second: str) -> None:
    assert fingerprint(first) == fingerprint(second)
    assert fingerprint_hash(fingerprint(first)) == fingerprint_hash(fingerprint(second))


@pytest.mark.quick
@pytest.mark.parametrize(
    ("first", "second"),
    [
        ('SELECT * FROM "books"', 'SELECT * FROM "authors"'),
        ("SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE b = 1"),
        ("SELECT t1.a FROM t1", "SELECT t2.a FROM t2"),
        ('SELECT "A" FROM t', 'SELECT "a" FROM t'),
    ],
)
def test_different_shape_different_fingerprint(first: str, second: str) -> None:
    assert fingerprint(first) != fingerprint(second)


@pytest.mark.quick
@pytest.mark.parametrize("sql", GARBAGE)
def test_garbage_never_raises(sql: str) -> None:
    result = fingerprint(sql)
    assert isinstance(result, str)
    assert isinstance(fingerprint_hash(result), str)


@pytest.mark.quick
def test_random_bytes_never_raise() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        text = bytes(rng.randrange(256) for _ in range(rng.randrange(200))).decode("latin-1")
        assert isinstance(fingerprint(text), str)
    assert isinstance(fingerprint(os.urandom(200_000).decode("latin-1")), str)


@pytest.mark.quick
def test_non_string_input_is_tolerated() -> None:
    assert fingerprint(b"SELECT 1") == "SELECT ?"  # type: ignore[arg-type]
    assert fingerprint(None) == ""  # type: ignore[arg-type]


def test_huge_in_list_of_numbers() -> None:
    values = ", ".join(str(i) for i in range(100_000))
    sql = f"SELECT * FROM t WHERE id IN ({values})"
    assert fingerprint(sql) == "SELECT * FROM t WHERE id IN (...)"


def test_huge_in_list_of_strings_and_placeholders() -> None:
    strings = ", ".join(f"'s{i}'" for i in range(100_000))
    assert (
        fingerprint(f"SELECT a FROM t WHERE s IN ({strings})") == "SELECT a FROM t WHERE s IN (...)"
    )
    marks = ", ".join(["?"] * 100_000)
    assert (
        fingerprint(f"SELECT a FROM t WHERE s IN ({marks})") == "SELECT a FROM t WHERE s IN (...)"
    )


def test_huge_values_list() -> None:
    rows = ", ".join(f"({i}, 'n{i}')" for i in range(50_000))
    assert (
        fingerprint(f"INSERT INTO t (a, b) VALUES {rows}") == "INSERT INTO t (a, b) VALUES (?, ?)"
    )


BULK_ROWS = [
    "({})",
    "({}) ON CONFLICT (a) DO UPDATE SET b = excluded.b RETURNING id",
    "({}), (1, 'x')",
    "({}), (f(g(?)), ?)",
    "({}) -- trailing\n, (?, ?)",
    "({}); INSERT INTO u VALUES (?), (?)",
    "({}) /* VALUES (?), (?) */",
]


@pytest.mark.parametrize("shape", BULK_ROWS)
@pytest.mark.parametrize("mark", ["?", "%s"])
def test_a_bulk_insert_of_placeholder_rows_is_cut_before_tokenizing(
    shape: str, mark: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = f"({mark}, {mark})"
    rows = ",\n ".join([row] * 3_000)
    for sql in (
        f"INSERT INTO t (a, b) values {rows}{shape.format(', ' + row)}",
        f"INSERT INTO t (a, b) VALUES{shape.format(rows)}",
        f"SELECT '{rows}' FROM t WHERE x IN (VALUES {rows})",
        f'INSERT INTO "t" ("a") VALUES {rows}, (?), ({mark}, {mark}, :name)',
    ):
        fp_module.clear_cache()
        cut = fingerprint(sql)
        fp_module.clear_cache()
        monkeypatch.setattr(fp_module, "_BULK_MIN_CHARS", 10**9)  # every token, as before
        assert fingerprint(sql) == cut
        monkeypatch.undo()
    bulk = f"INSERT INTO t (a, b) VALUES {rows}"
    assert fp_module._first_placeholder_row(bulk) == f"INSERT INTO t (a, b) VALUES {row}"
    assert fingerprint(bulk) == "INSERT INTO t (a, b) VALUES (?, ?)"


def test_five_megabyte_literal() -> None:
    blob = "x" * 5_000_000
    assert fingerprint(f"INSERT INTO t (doc) VALUES ('{blob}')") == "INSERT INTO t (doc) VALUES (?)"
    assert fingerprint(f"SELECT '{blob}") == "SELECT ?"  # unterminated


def test_five_megabyte_comment_and_identifier() -> None:
    assert fingerprint("SELECT 1 /*" + "c" * 5_000_000 + "*/") == "SELECT ?"
    name = '"' + "n" * 1_000_000 + '"'
    assert fingerprint(f"SELECT {name} FROM t") == f"SELECT {name} FROM t"


@pytest.mark.quick
def test_fingerprint_hash_is_short_stable_hex() -> None:
    digest = fingerprint_hash("SELECT ?")
    assert digest == fingerprint_hash("SELECT ?")
    assert len(digest) == 16
    int(digest, 16)
    assert digest != fingerprint_hash("SELECT ? FROM t")
    assert len(fingerprint_hash("\ud800")) == 16


@pytest.mark.quick
def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from devformance_nb.logic import fingerprint as module

    module.clear_cache()
    monkeypatch.setattr(module, "CACHE_MAX_ENTRIES", 5)
    for i in range(50):
        assert fingerprint(f"SELECT * FROM t{i} WHERE a = {i}") == f"SELECT * FROM t{i} WHERE a = ?"
    assert 0 < len(module._CACHE) <= 5
    long_sql = "SELECT " + "a, " * module.CACHE_MAX_CHARS + "b"
    assert fingerprint(long_sql).endswith("a, b")
    assert long_sql not in module._CACHE
    module.clear_cache()
    assert module._CACHE == {}
