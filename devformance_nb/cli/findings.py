"""Text for slow queries and N+1 findings, shared by the terminal view and the CLI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


#: frames of a stored stack shown around the frame to change (callers first)
CONTEXT_OUTER = 3
CONTEXT_INNER = 1


def context_frames(frames: Sequence[str], caller: str) -> list[str]:
    """About five frames of ``frames`` (outermost first) around ``caller``, the frame to
    change marked with ``>``; [] when the stack is unknown."""
    if not frames:
        return []
    at = frames.index(caller) if caller in frames else len(frames) - 1
    start, end = max(0, at - CONTEXT_OUTER), min(len(frames), at + CONTEXT_INNER + 1)
    return [("> " if i == at else "  ") + frames[i] for i in range(start, end)]


def n_plus_one_lines(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """N+1 findings (keys: count, table_name, caller, nodeid, ms, hint, example_sql; optional:
    sent_by, frames) as text: the frame to change first, the sending helper when it is
    another frame, and the stack around it."""
    out = []
    for row in rows:
        caller = row["caller"] or "?"
        out.append(
            f"  x{row['count']:<4} {row['table_name'] or '?':<14} {caller}  "
            f"({row['nodeid']}, {row['ms']:.1f} ms)"
        )
        sent_by = row.get("sent_by") or ""
        if sent_by and sent_by != row["caller"]:
            out.append(f"        sent by: {sent_by}")
        for frame in context_frames(list(row.get("frames") or []), row["caller"]):
            out.append(f"        {frame}")
        out.append(f"        e.g. {one_line(row['example_sql'], 96)}")
        out.append(f"        fix: {row['hint']}")
    return out


def unused_eager_lines(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Unused eager loads (keys: relation, option, count, caller, nodeid, hint; optional:
    sent_by) as text: the relation and the query that loaded it, then what to drop."""
    out = []
    for row in rows:
        times = f" x{row['count']}" if row["count"] > 1 else ""
        out.append(f"  {row['relation']}{times}  {row['caller'] or '?'}  ({row['nodeid']})")
        sent_by = row.get("sent_by") or ""
        if sent_by and sent_by != row["caller"]:
            out.append(f"        sent by: {sent_by}")
        out.append(f"        fix: {row['hint']}")
    return out
