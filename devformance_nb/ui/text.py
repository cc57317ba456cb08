"""Text and HTML the live notebook view shows: pure functions of the run state.

No ipywidgets here, so every string the dashboard draws can be tested (and
reused by other surfaces) without a kernel. Status icons are plain text
symbols that DejaVu Sans (and most UI fonts) carry, never emoji: a fresh
Debian machine has no emoji font and would draw empty boxes.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from devformance_nb.run.state import FILE_PROBLEMS, FileState, RunState

ICONS = {
    "pending": "○",
    "running": "▶",
    "passed": "✔",
    "failed": "✘",
    "error": "⚠",
    "timeout": "◷",
    "crashed": "✖",
    "stopped": "■",
    "empty": "∅",
    "not_run": "–",
    "interrupted": "↯",
    "carried": "↺",
}
#: text colour of each status in HTML: JupyterLab's theme colours (Notebook 7 and Voila have
#: them too), so they stay readable on a dark theme; the fallbacks suit a white page
COLOURS = {
    "pending": "var(--jp-ui-font-color2, #6e7781)",
    "running": "var(--jp-info-color1, #0969da)",
    "passed": "var(--jp-success-color1, #1a7f37)",
    "failed": "var(--jp-error-color1, #cf222e)",
    "error": "var(--jp-error-color1, #cf222e)",
    "crashed": "var(--jp-error-color1, #cf222e)",
    "timeout": "var(--jp-warn-color1, #bc4c00)",
    "stopped": "var(--jp-warn-color1, #9a6700)",
    "interrupted": "var(--jp-warn-color1, #9a6700)",
    "empty": "var(--jp-ui-font-color2, #6e7781)",
    "not_run": "var(--jp-ui-font-color2, #6e7781)",
    "carried": "var(--jp-ui-font-color2, #6e7781)",
}
#: muted text (durations, counts) and borders, from the theme as well
MUTED = COLOURS["pending"]
BORDER = "var(--jp-border-color2, #d0d7de)"
#: ipywidgets progress bar style per status ('' is the theme's default)
BAR_STYLES = {
    "running": "info",
    "passed": "success",
    "failed": "danger",
    "error": "danger",
    "crashed": "danger",
    "timeout": "danger",
    "stopped": "warning",
    "interrupted": "warning",
}
#: statuses of a file whose child was cut short (its bar keeps the tests it finished)
_CUT_SHORT = frozenset({"crashed", "timeout", "stopped", "interrupted"})
LABELS = {"not_run": "not run", "timeout": "timed out"}
#: list items shown per side list; the rest is counted
SIDE_ITEMS = 8
#: lines and characters of a crash message shown above a pane (the log has all of it)
CRASH_LINES = 8
CRASH_CHARS = 800

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: a failure word anywhere in a line wins over a pass word (two plain searches are fast)
_RED = re.compile(r"\b(?:FAILED|ERROR|Error|Traceback|\d+ failed|\d+ errors?)\b|^E\s")
_GREEN = re.compile(r"\bPASSED\b|\b\d+ passed\b")


def icon(status: str) -> str:
    """The status symbol of a file (a question mark for a status this version does not know)."""
    return ICONS.get(status, "?")


def label(status: str) -> str:
    """The status as words."""
    return LABELS.get(status, status.replace("_", " "))


def seconds(value: float | None, *, live: bool = False) -> str:
    """A duration for a badge: whole seconds while it still grows (fewer redraws), else 2 digits."""
    if value is None:
        return ""
    if live:
        return f"{int(value)} s"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def clock(value: float | None) -> str:
    """Elapsed time as m:ss (whole seconds, so the header changes at most once a second)."""
    total = int(value or 0)
    return f"{total // 60}:{total % 60:02d}"


def is_failing(fs: FileState) -> bool:
    """A file that ended badly, or that already reported a failed or erroring test."""
    return fs.status in FILE_PROBLEMS or bool(fs.counts.get("failed") or fs.counts.get("error"))


def badges(fs: FileState) -> list[str]:
    """Short facts for the title: duration, N+1 and slow query counts, coverage."""
    out = [carried_text(fs)] if fs.carried_from is not None else []
    took = seconds(fs.duration, live=fs.status == "running")
    if took:
        out.append(took)
    if fs.n_plus_one:
        out.append(f"N+1 ×{len(fs.n_plus_one)}")
    if fs.slow:
        out.append(f"slow ×{len(fs.slow)}")
    if fs.unused_eager:
        out.append(f"unused eager ×{len(fs.unused_eager)}")
    if fs.coverage is not None:
        out.append(f"cov {fs.coverage:.0f}%")
    if fs.status == "running" and fs.rss is not None:
        out.append(f"CPU {fs.cpu_percent or 0:.0f}%, {megabytes(fs.rss)}")
    elif fs.is_finished and fs.peak_rss:
        out.append(f"peak {megabytes(fs.peak_rss)}")
    return out


def carried_text(fs: FileState) -> str:
    """``from run R (passed), not re-run`` for a file a --changed run carried, else ''."""
    if fs.carried_from is None:
        return ""
    was = f" ({label(fs.carried_status)})" if fs.carried_status else ""
    return f"from run {fs.carried_from}{was}, not re-run"


def megabytes(value: int | None) -> str:
    """Bytes as whole megabytes (MB of 10^6: what ``ps`` and ``top`` near enough say)."""
    return "–" if value is None else f"{value / 1e6:,.0f} MB"


def title(fs: FileState) -> str:
    """An Accordion title: icon, status, path and badges (plain text: titles are not HTML)."""
    parts = [f"{icon(fs.status)} {label(fs.status)}", fs.key, *badges(fs)]
    return "  ·  ".join(parts)


def colourize(line: str) -> str:
    """Colour a pass or fail line that carries no colour of its own (e.g. ``--color=no``)."""
    if "\x1b[" in line:
        return line
    if _RED.search(line):
        return f"\x1b[31m{line}\x1b[0m"
    if _GREEN.search(line):
        return f"\x1b[32m{line}\x1b[0m"
    return line


def tail_text(
    lines: Sequence[str], total: int, max_chars: int, cache: dict[str, str] | None = None
) -> str:
    """The last lines of a pane, at most ``max_chars`` long, saying how many lines it left out.

    Whole lines are dropped from the front so no colour escape is cut in two;
    a single line longer than the cap loses its colours and its beginning.
    ``cache`` maps lines to their colourized form between two redraws of a
    pane (most lines are the same): it is refilled with the lines kept.
    """
    old = dict(cache) if cache is not None else {}
    if cache is not None:
        cache.clear()
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        if size + len(line) + 1 > max_chars:
            if not kept:
                kept.append("…" + _ANSI.sub("", line)[-(max_chars - 1) :])
            break
        shown = old.get(line)
        if shown is None:
            shown = colourize(line)
        if cache is not None:
            cache[line] = shown
        kept.append(shown)
        size += len(line) + 1
    kept.reverse()
    hidden = total - len(kept)
    head = f"\x1b[2m… {hidden:,} earlier lines: see the full log\x1b[0m\n" if hidden > 0 else ""
    return head + "\n".join(kept) + ("\n" if kept else "")


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML."""
    return html.escape(str(value), quote=True)


def _chip(text: str, colour: str) -> str:
    return (
        f'<span style="display:inline-block;padding:0 6px;margin-right:4px;border-radius:8px;'
        f'border:1px solid {colour};color:{colour};font-size:90%">{esc(text)}</span>'
    )


def head_html(fs: FileState) -> str:
    """The line above a pane: the status in colour, test counts, queries, crash reason."""
    colour = COLOURS.get(fs.status, MUTED)
    parts = [
        f'<b style="color:{colour}">{esc(icon(fs.status))} {esc(label(fs.status))}</b>',
        f"<code>{esc(fs.key)}</code>",
    ]
    counts = ", ".join(f"{n} {c}" for c, n in sorted(fs.counts.items()) if n)
    if counts:
        parts.append(esc(counts))
    if fs.is_finished and fs.duration is not None:
        parts.append(_chip(seconds(fs.duration), MUTED))
    if fs.queries:
        parts.append(_chip(f"{fs.queries} queries, {fs.query_time * 1000:.0f} ms", MUTED))
    if fs.worker_address:  # a remote child: which machine ran it (its logs are there)
        parts.append(_chip(f"on Dask worker {fs.worker_address}", MUTED))
    text = " ".join(parts)
    if fs.carried_from is not None:  # no output below: say where the result comes from
        why = f": {fs.reason}" if fs.reason else ""
        text += f'<div style="color:{MUTED}">{esc(carried_text(fs) + why)}</div>'
    elif fs.reason:  # a --changed run: why this file runs again
        text += f'<div style="color:{MUTED}">{esc("runs because " + fs.reason)}</div>'
    if fs.crash and fs.status != "passed":
        # what happened first, then the top of a fatal-error dump (the crashing frames)
        shown = "\n".join(fs.crash.strip().splitlines()[:CRASH_LINES])[:CRASH_CHARS]
        text += (
            f'<div style="color:{COLOURS["failed"]};white-space:pre-wrap;font-size:90%">'
            f"{esc(shown)}</div>"
        )
    return text


def _n_plus_one_item(item: Any) -> str:
    table = getattr(item, "table", "") or "?"
    count = getattr(item, "count", "?")
    caller = getattr(item, "caller", "") or ""
    sent_by = getattr(item, "sent_by", "") or ""
    hint = getattr(item, "hint", "") or ""
    sql = getattr(item, "example_sql", "") or ""
    total = getattr(item, "total_duration", None)
    took = f", {total * 1000:.0f} ms" if isinstance(total, (int, float)) else ""
    sender = f" (sent by <code>{esc(sent_by)}</code>)" if sent_by and sent_by != caller else ""
    return (
        f"<li><b>{esc(table)}</b> ×{esc(count)}{took} <code>{esc(caller)}</code>{sender}"
        + (f'<br><span style="opacity:.8">{esc(hint)}</span>' if hint else "")
        + (f"<br><code>{esc(sql[:200])}</code>" if sql else "")
        + "</li>"
    )


def _unused_eager_item(item: Any) -> str:
    relation = getattr(item, "relation", "") or "?"
    caller = getattr(item, "caller", "") or ""
    hint = getattr(item, "hint", "") or ""
    return (
        f"<li><b>{esc(relation)}</b> <code>{esc(caller)}</code>"
        + (f'<br><span style="opacity:.8">{esc(hint)}</span>' if hint else "")
        + "</li>"
    )


def _slow_item(item: Any) -> str:
    duration = getattr(item, "duration", None)
    took = f"{duration * 1000:.0f} ms" if isinstance(duration, (int, float)) else "?"
    caller = getattr(item, "caller", "") or ""
    sql = getattr(item, "sql", "") or ""
    return (
        f"<li><b>{esc(took)}</b> <code>{esc(caller)}</code><br><code>{esc(sql[:200])}</code></li>"
    )


def _side_list(name: str, items: Sequence[Any], render: Any) -> str:
    if not items:
        return f"<div><b>{name}</b>: none</div>"
    shown = "".join(render(item) for item in items[:SIDE_ITEMS])
    more = f"<li>… {len(items) - SIDE_ITEMS} more</li>" if len(items) > SIDE_ITEMS else ""
    return (
        f"<div><b>{name}</b> ({len(items)})"
        f'<ul style="margin:0;padding-left:1.2em">{shown}{more}</ul></div>'
    )


def side_html(fs: FileState) -> str:
    """The side lists of a file: its N+1 findings, slow queries, coverage and collection errors."""
    cov = "not measured" if fs.coverage is None else f"{fs.coverage:.1f}%"
    parts = [
        _side_list("N+1", fs.n_plus_one, _n_plus_one_item),
        _side_list("Slow queries", fs.slow, _slow_item),
        *(
            [_side_list("Unused eager loads", fs.unused_eager, _unused_eager_item)]
            * bool(fs.unused_eager)
        ),
        f"<div><b>Coverage</b>: {esc(cov)}</div>",
    ]
    if fs.errors:
        errors = "".join(
            f"<pre style='white-space:pre-wrap;margin:0'>{esc(e[-600:])}</pre>"
            for e in fs.errors[:3]
        )
        parts.append(
            f'<div style="color:{COLOURS["error"]}"><b>Collection errors</b>{errors}</div>'
        )
    # side by side under the output, wrapping on a narrow page
    return '<div style="display:flex;flex-wrap:wrap;gap:4px 32px">' + "".join(parts) + "</div>"


def status_html(state: RunState | None, notice: str = "", stopping: bool = False) -> str:
    """The header's status: the run's id and status, elapsed time and any notice."""
    parts = []
    if state is not None and state.run_id:
        status = "stopping…" if stopping and state.status == "running" else label(state.status)
        colour = COLOURS.get(state.status, "inherit")
        parts.append(
            f'run <code>{esc(state.run_id)}</code>: <b style="color:{colour}">{esc(status)}</b>'
            f" · elapsed {clock(state.duration)}"
        )
    if notice:
        parts.append(f"<i>{esc(notice)}</i>")
    return " · ".join(parts) or "<i>no run yet: press Run</i>"


def progress_values(fs: FileState) -> dict[str, Any]:
    """Traits of a file's progress bar: exact counts from ``collected``, style from its status."""
    total = max(fs.collected or 0, fs.done)
    done = fs.done
    # a file that ended normally is complete; one cut short shows how far it got
    if fs.is_finished and fs.status not in _CUT_SHORT:
        total = done = max(total, 1)
    text = f"{fs.done}/{fs.collected} tests" if fs.collected is not None else "collecting…"
    if fs.status == "pending":
        text = "waiting"
    return {
        "max": max(total, 1),
        "value": done,
        "description": text,
        "bar_style": BAR_STYLES.get(fs.status, ""),
    }
