"""What a statement is, from its fingerprint: its type, the tables it names, a pretty text.

``statement_type`` and the predicates on it (``is_select``, ``is_catalog_or_control``, ...)
are regexes on the fingerprint's canonical text: cheap, and asked of every distinct
fingerprint. ``describe`` adds the tables and a pretty text through sqlparse, which costs
about a millisecond a statement and raises on long input, so it runs on distinct
fingerprints only and is cached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from devformance_nb.logic.fingerprint import fingerprint

#: fingerprints longer than this skip sqlparse (it raises past 10,000 tokens and crawls before)
SQLPARSE_MAX_CHARS = 20_000
PRETTY_MAX_CHARS = 4_000


# -- statement facts without sqlparse -------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FIRST_WORD = re.compile(r"[\s(]*([A-Za-z_]+)")
_TYPES = _words(
    """
    SELECT INSERT UPDATE DELETE REPLACE MERGE CREATE DROP ALTER TRUNCATE PRAGMA BEGIN COMMIT
    ROLLBACK SAVEPOINT RELEASE SET SHOW EXPLAIN VACUUM ANALYZE VALUES
    """
)
_TYPE_ALIASES = {"START": "BEGIN", "END": "COMMIT", "ABORT": "ROLLBACK"}
#: statement types of transaction control (``START``, ``END`` and ``ABORT`` map onto them)
TRANSACTION_TYPES = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
_CONTROL_TYPES = frozenset({*TRANSACTION_TYPES, "PRAGMA"})
_CATALOG = re.compile(
    r"\b(?:sqlite_master|sqlite_schema|sqlite_temp_master|sqlite_temp_schema"
    r"|information_schema|pg_catalog|performance_schema)\b",
    re.IGNORECASE,
)
_WITH_MAIN = re.compile(r"\"[^\"]*\"?|`[^`]*`?|[()]|\b(?:SELECT|INSERT|UPDATE|DELETE|MERGE)\b")


@lru_cache(maxsize=32_768)
def statement_type(fp: str) -> str:
    """SELECT, INSERT, UPDATE, DELETE, CREATE, PRAGMA, BEGIN, COMMIT, SAVEPOINT, ... or OTHER.

    Cheap (one regex, no sqlparse), for use on every statement. ``WITH ... SELECT`` is a
    SELECT; ``START TRANSACTION`` is BEGIN, ``END`` is COMMIT. Expects a fingerprint
    (keywords upper-cased) but tolerates raw SQL.
    """
    match = _FIRST_WORD.match(fp)
    if match is None:
        return "OTHER"
    word = match.group(1).upper()
    if word == "WITH":
        return _main_statement_after_with(fp.upper())
    word = _TYPE_ALIASES.get(word, word)
    return word if word in _TYPES else "OTHER"


def _main_statement_after_with(text: str) -> str:
    depth = 0
    for match in _WITH_MAIN.finditer(text):
        token = match.group()
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0 and token[0] not in '"`':
            return token
    return "OTHER"


def is_select(fp: str) -> bool:
    """True for a SELECT (including ``WITH ... SELECT``), from the fingerprint alone."""
    return statement_type(fp) == "SELECT"


def is_transaction_control(fp: str) -> bool:
    """True for BEGIN/START TRANSACTION, COMMIT/END, ROLLBACK (TO SAVEPOINT), SAVEPOINT, RELEASE.

    Their time is the work they end or wait for (a commit's flush, a lock), not their own:
    they are recorded, never slow-query or N+1 findings.
    """
    return statement_type(fp) in TRANSACTION_TYPES


def is_catalog_or_control(fp: str) -> bool:
    """True for transaction control, PRAGMA and catalog lookups (sqlite_master, pg_catalog, ...).

    These repeat by design (every test begins a transaction; ORMs introspect tables), so they
    are never N+1 findings.
    """
    return statement_type(fp) in _CONTROL_TYPES or _CATALOG.search(fp) is not None


# -- describe: sqlparse on distinct fingerprints --------------------------------------------


@dataclass(frozen=True)
class StatementInfo:
    """What a statement is: its type, the tables it names (quotes stripped), a pretty text."""

    statement_type: str
    tables: tuple[str, ...]
    pretty: str


_TABLE_KEYWORDS = frozenset({"FROM", "INTO", "UPDATE", "TABLE"})
_TABLE_AFTER = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+((?:\"[^\"]*\"|`[^`]*`|\[[^\]]*\]|[\w$]+)"
    r"(?:\.(?:\"[^\"]*\"|`[^`]*`|\[[^\]]*\]|[\w$]+))*)",
    re.IGNORECASE,
)
_NOT_TABLES = frozenset({"SELECT", "IF", "ONLY", "LATERAL", "EXISTS", "NOT"})
#: a common table expression's name (spacing is canonical in a fingerprint)
_CTE_NAME = re.compile(
    r"(?:\bWITH(?: RECURSIVE)?|,) (\"[^\"]*\"|`[^`]*`|[\w$]+)(?: ?\([^()]*\))?"
    r" AS (?:NOT )?(?:MATERIALIZED )?\("
)


def describe(sql: str) -> StatementInfo:
    """Type, tables and pretty text of a statement (raw SQL or a fingerprint). Never raises."""
    return _describe_fingerprint(fingerprint(sql))


@lru_cache(maxsize=8_192)
def _describe_fingerprint(fp: str) -> StatementInfo:
    kind = statement_type(fp)
    info = None
    if len(fp) <= SQLPARSE_MAX_CHARS:
        try:
            info = _describe_with_sqlparse(fp, kind)
        except Exception:  # sqlparse raises on long or odd input; the regex answer will do
            info = None
    if info is None:
        info = StatementInfo(kind, _regex_tables(fp), _cap(fp, PRETTY_MAX_CHARS))
    if fp.startswith("WITH"):  # a CTE's name is not a table
        ctes = {_unquote(name) for name in _CTE_NAME.findall(fp)}
        info = replace(info, tables=tuple(t for t in info.tables if t not in ctes))
    return info


@lru_cache(maxsize=32_768)
def names_a_table(fp: str) -> bool:
    """Whether ``describe(fp).tables`` is not empty, asked of every distinct statement by the
    N+1 detection: the regex that ``describe`` falls back on answers first, and sqlparse (about
    a millisecond a statement, 2,400 distinct ones in a real suite's run) runs only where it
    finds no table, or only the statement's own common table expressions."""
    tables = _regex_tables(fp)
    if tables and fp.startswith("WITH"):
        ctes = {_unquote(name) for name in _CTE_NAME.findall(fp)}
        tables = tuple(t for t in tables if t not in ctes)
    return bool(tables) or bool(_describe_fingerprint(fp).tables)


def _describe_with_sqlparse(fp: str, kind: str) -> StatementInfo:
    import sqlparse  # lazily: only the parent's detection needs it

    statements = sqlparse.parse(fp)
    tables: list[str] = []
    for statement in statements:
        _collect_tables(statement, tables)
    pretty = _reindented(statements)
    return StatementInfo(kind, tuple(tables) or _regex_tables(fp), _cap(pretty, PRETTY_MAX_CHARS))


def _reindented(statements: Iterable[Any]) -> str:
    """``sqlparse.format(fp, reindent=True, keyword_case="upper")`` of already parsed
    statements (changed in place): the same text, without parsing ``fp`` a second time
    (half the cost of describing a statement; same output on 7,273 fingerprints of a real
    suite)."""
    from sqlparse import filters as typed_filters
    from sqlparse.tokens import Keyword

    filters: Any = typed_filters  # its classes are untyped

    # one instance of each for all statements, as format's stack has (the reindenter
    # puts blank lines between statements)
    strip, reindent, serialize = (
        filters.StripWhitespaceFilter(),
        filters.ReindentFilter(),
        filters.SerializerUnicode(),
    )
    out = []
    for statement in statements:
        for token in statement.flatten():
            if token.ttype in Keyword:
                token.value = token.value.upper()
        strip.process(statement)
        reindent.process(statement)
        out.append(serialize.process(statement))
    return "".join(out)


def _collect_tables(group: object, tables: list[str]) -> None:
    """Names after FROM/JOIN/INTO/UPDATE/TABLE, in text order, recursing into subqueries."""
    from sqlparse.sql import Identifier, IdentifierList, TokenList
    from sqlparse.tokens import Keyword

    expect_table = False
    for token in getattr(group, "tokens", ()):
        if token.is_whitespace:
            continue
        if expect_table and isinstance(token, (Identifier, IdentifierList, TokenList)):
            items = _identifiers(token) if isinstance(token, IdentifierList) else [token]
            for item in items:
                _add_table(item, tables)
            expect_table = False
            continue
        if token.ttype in Keyword:
            word = token.normalized
            expect_table = word in _TABLE_KEYWORDS or word.endswith("JOIN")
        elif token.is_group:
            _collect_tables(token, tables)


def _identifiers(token: object) -> list[object]:
    return list(getattr(token, "get_identifiers")())  # noqa: B009 - sqlparse is untyped


def _add_table(item: object, tables: list[str]) -> None:
    from sqlparse.sql import Parenthesis

    parts = [t for t in getattr(item, "tokens", ()) if not t.is_whitespace]
    if isinstance(item, Parenthesis) or (parts and isinstance(parts[0], Parenthesis)):
        _collect_tables(item, tables)  # a subquery: its own FROM names the tables
        return
    get_name = getattr(item, "get_real_name", None)
    name = get_name() if get_name is not None else None
    if isinstance(name, str) and name and name.upper() not in _NOT_TABLES:
        _add_unique(tables, _unquote(name))


def _regex_tables(fp: str) -> tuple[str, ...]:
    tables: list[str] = []
    for match in _TABLE_AFTER.finditer(fp):
        name = _unquote(match.group(1).rsplit(".", 1)[-1])
        if name and name.upper() not in _NOT_TABLES:
            _add_unique(tables, name)
    return tuple(tables)


def _add_unique(tables: list[str], name: str) -> None:
    if name not in tables:
        tables.append(name)


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] + name[-1] in ('""', "``", "[]"):
        return name[1:-1]
    return name


def _cap(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clear_cache() -> None:
    """Forget every cached statement type and description (for tests and benchmarks)."""
    statement_type.cache_clear()
    names_a_table.cache_clear()
    _describe_fingerprint.cache_clear()
