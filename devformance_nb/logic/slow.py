"""The slow-query rule, in one place: a Python predicate and the same rule in SQL.

A statement is a slow query when it took at least ``slow_query_ms`` (default 100 ms, the
original devformance default), project code issued it (a caller: statements no project frame
is on the stack of are test tooling, such as pytest-django creating the test database), and
it is not transaction control. The live loop (``find_slow``), ingest, analysis and compare all
use it; ``tests/test_detection_sql.py`` holds the Python and SQL forms to the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from devformance_nb.core.events import Query
from devformance_nb.logic.fingerprint import fingerprint
from devformance_nb.logic.statementinfo import TRANSACTION_TYPES, describe, statement_type

#: longest statement text kept in a finding (the store keeps the full text)
EXAMPLE_MAX_CHARS = 2_000


@dataclass(frozen=True)
class SlowQuery:
    """One statement at or above the slow threshold; ``duration`` in seconds."""

    file: str
    nodeid: str
    phase: str
    qseq: int
    sql: str
    fingerprint: str
    duration: float
    caller: str
    table: str


#: statement types that are never slow-query findings, however long they took: transaction
#: control, whose time is the work it ends or waits for (a commit's flush, a lock)
SLOW_EXEMPT_TYPES = TRANSACTION_TYPES
#: the slow threshold when a run recorded none (the original devformance default)
DEFAULT_SLOW_QUERY_MS = 100.0


def is_slow(duration: float, caller: str | None, sql: str, slow_query_ms: float) -> bool:
    """The slow-query rule: ``duration`` (seconds) at or over ``slow_query_ms``, issued by
    project code (a ``caller``), and not transaction control (``SLOW_EXEMPT_TYPES``).

    Statements no project code issued (no project frame on the stack, so no caller) are test
    tooling, such as pytest-django creating and dropping the test database. ``sql`` is the raw
    text or its fingerprint; it is only fingerprinted for statements over the threshold.
    ``slow_sql`` is the same rule in SQL.
    """
    # "not under" rather than "at or over": a NaN duration is slow, as DuckDB orders NaN above
    # every number, so both forms agree on it
    return (
        not duration * 1000.0 < slow_query_ms
        and bool(caller)
        and statement_type(fingerprint(sql)) not in SLOW_EXEMPT_TYPES
    )


def over_threshold_sql(duration: str, slow_query_ms: str) -> str:
    """SQL of the threshold half of the rule alone, for a pre-filter before ``is_slow``."""
    return f"({duration} * 1000.0 >= {slow_query_ms})"


def slow_sql(
    duration: str = "duration",
    caller: str = "caller",
    kind: str = "statement_type",
    slow_query_ms: str = "slow_query_ms",
) -> str:
    """The rule of ``is_slow`` as a DuckDB boolean expression over the given SQL expressions.

    ``kind`` is the statement type (the ``fingerprints.statement_type`` of the statement's
    fingerprint, which is ``statement_type`` of it); ``slow_query_ms`` may be NULL for a run
    that recorded none (the default then applies). A NULL caller or type counts as empty.
    """
    exempt = ", ".join(f"'{name}'" for name in SLOW_EXEMPT_TYPES)
    threshold = f"coalesce({slow_query_ms}, {DEFAULT_SLOW_QUERY_MS!r})"
    return (
        f"({over_threshold_sql(duration, threshold)} AND coalesce({caller}, '') <> '' "
        f"AND coalesce({kind}, '') NOT IN ({exempt}))"
    )


def find_slow(queries: Iterable[Query], slow_query_ms: float) -> list[SlowQuery]:
    """Every query the slow-query rule (``is_slow``) reports, in input order.

    ``sql`` is capped at ``EXAMPLE_MAX_CHARS``; the store keeps the full text.
    """
    found: list[SlowQuery] = []
    for query in queries:
        if not is_slow(query.duration, query.caller, query.sql, slow_query_ms):
            continue
        fp = fingerprint(query.sql)
        found.append(
            SlowQuery(
                file=query.file,
                nodeid=query.nodeid,
                phase=query.phase,
                qseq=query.qseq,
                sql=cap_example(query.sql),
                fingerprint=fp,
                duration=query.duration,
                caller=query.caller,
                table=first_table(fp),
            )
        )
    return found


def first_table(fp: str) -> str:
    tables = describe(fp).tables
    return tables[0] if tables else ""


def cap_example(sql: str) -> str:
    if len(sql) <= EXAMPLE_MAX_CHARS:
        return sql
    return sql[: EXAMPLE_MAX_CHARS - 1] + "…"
