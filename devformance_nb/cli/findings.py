"""Text for slow queries and N+1 findings, shared by the terminal view and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SQL_WIDTH = 110


def one_line(sql: str, width: int = SQL_WIDTH) -> str:
    """SQL squeezed onto one line, cut at ``width``."""
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def slow_lines(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Slow queries (keys: ms, caller, nodeid, sql) as indented text lines."""
    out = []
    for row in rows:
        out.append(
            f"  {row['ms']:8.1f} ms  {row['caller'] or '?'}  ({row['nodeid'] or row['file']})"
        )
        out.append(f"              {one_line(row['sql'])}")
    return out


def n_plus_one_lines(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """N+1 findings (keys: count, table_name, caller, nodeid, ms, hint, example_sql) as text."""
    out = []
    for row in rows:
        out.append(
            f"  x{row['count']:<4} {row['table_name'] or '?':<14} {row['caller'] or '?'}  "
            f"({row['nodeid']}, {row['ms']:.1f} ms)"
        )
        out.append(f"        e.g. {one_line(row['example_sql'], 96)}")
        out.append(f"        fix: {row['hint']}")
    return out
