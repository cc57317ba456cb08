"""The live view's worker timeline: one row per worker slot, a bar per file, as inline SVG.

Pure functions of the run state (``bars``, ``marks``, ``timeline_svg``, ``timeline_html``)
and the small widget that shows them (``TimelineView``). Running files are drawn up to now,
finished ones in their status's colour, each with a ``<title>`` (the browser's tooltip)
naming the file and its duration; empty space on a row is a worker waiting. The widget is
redrawn from the view's pump at most every ``REDRAW_SECONDS``, charged to the view's message
budget: never per event. Bars too narrow to see apart merge into one mark per slot (its
tooltip counts them), so a run of thousands of files stays a few hundred marks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as w

from devformance_nb.run.state import FILE_FINAL, RunState
from devformance_nb.ui import text
from devformance_nb.ui.pane import MESSAGE_OVERHEAD, Budget, assign

#: the drawing's width in SVG units (it scales to the view's width), the slot labels' gutter
#: on its left and the time axis's height below the rows
WIDTH = 720
GUTTER = 30
AXIS = 14
#: a slot's row height: at most ROW, at least ROW_MIN, all rows within ROWS_HEIGHT
ROW = 14.0
ROW_MIN = 2.0
ROWS_HEIGHT = 240.0
#: bars narrower than this (SVG units) merge with their narrow neighbours on the slot; when
#: more than MAX_MARKS marks are left, ever wider ones do (each mark is ~120 bytes)
MIN_BAR = 3.0
MAX_MARKS = 600
#: the widest a merged mark gets, in narrow bars' widths
GROUP_BARS = 8
#: the shortest interval between two redraws of a running timeline (seconds)
REDRAW_SECONDS = 1.0
#: the first tick's label starts at zero; the others are centred on their time
_START = ' text-anchor="start"'
#: the order of the statuses stacked in a merged mark (problems first)
_WORST = {status: rank for rank, status in enumerate(FILE_FINAL)}


@dataclass(frozen=True)
class Bar:
    """One file on its worker slot: seconds from the run's start to its end (now, if running)."""

    key: str
    slot: int
    start: float
    end: float
    status: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Mark:
    """One rectangle to draw: a file, or the files of one status among several narrow ones of
    a slot merged (``top`` and ``share``: the part of the row's height it takes, as the
    share of those files with that status)."""

    slot: int
    x: float
    width: float
    status: str
    title: str
    top: float = 0.0
    share: float = 1.0


def bars(state: RunState, now: float) -> list[Bar]:
    """The run's started files that have a worker slot, by slot then start; a running file
    ends at ``now`` (a wall-clock time), or at the run's end once it finished."""
    origin = state.started
    if origin is None:
        return []
    until = state.finished if state.finished is not None else now
    found = []
    for fs in state.files.values():
        if fs.worker is None or fs.started is None:
            continue
        end = fs.finished if fs.finished is not None else max(until, fs.started)
        start = max(0.0, fs.started - origin)
        found.append(Bar(fs.key, fs.worker, start, max(start, end - origin), fs.status))
    return sorted(found, key=lambda b: (b.slot, b.start, b.key))


def _title(bar: Bar) -> str:
    if bar.status == "running":
        return f"{bar.key}: running for {text.seconds(bar.duration, live=True)}"
    return f"{bar.key}: {text.seconds(bar.duration)}, {text.label(bar.status)}"


def _merged(group: Sequence[Bar], scale: float) -> list[Mark]:
    # one mark per status, stacked in the row by their share of the files (problems on top):
    # a mix of many passing and a few failing files reads as what it is
    first, last = group[0], group[-1]
    counts: dict[str, int] = {}
    for b in group:
        counts[b.status] = counts.get(b.status, 0) + 1
    statuses = sorted(counts, key=lambda s: (_WORST.get(s, len(_WORST)), s))
    said = ", ".join(f"{counts[s]} {text.label(s)}" for s in statuses)
    took = sum(b.duration for b in group)
    title = f"{len(group)} files in {text.seconds(took)} ({said}): {first.key} … {last.key}"
    x = first.start * scale
    width = max(last.end * scale - x, MIN_BAR / 2)
    out, top = [], 0.0
    for status in statuses:
        share = counts[status] / len(group)
        out.append(Mark(first.slot, x, width, status, title, top, share))
        top += share
    return out


def marks(
    found: Sequence[Bar], span: float, width: float = WIDTH - GUTTER, min_bar: float = MIN_BAR
) -> list[Mark]:
    """What to draw for ``found`` on ``width`` units showing ``span``
    seconds: a mark per file, except that finished files narrower than ``min_bar`` that
    follow each other on a slot merge (up to ``GROUP_BARS`` times ``min_bar`` wide), one mark
    per status stacked by its share of them."""
    scale = width / span if span > 0 else 0.0
    out: list[Mark] = []
    group: list[Bar] = []

    def flush() -> None:
        if len(group) == 1:
            out.append(_single(group[0], scale))
        elif group:
            out.extend(_merged(group, scale))
        group.clear()

    for bar in sorted(found, key=lambda b: (b.slot, b.start)):
        narrow = bar.status != "running" and bar.duration * scale < min_bar
        # a neighbour on the slot, and the mark stays short enough for its tooltip to say
        # where it is
        joins = (
            group
            and group[-1].slot == bar.slot
            and (bar.start - group[-1].end) * scale < 1
            and (bar.end - group[0].start) * scale <= min_bar * GROUP_BARS
        )
        if not (narrow and joins):
            flush()
        if narrow:
            group.append(bar)
        else:
            out.append(_single(bar, scale))
    flush()
    return out


def fit_marks(
    found: Sequence[Bar], span: float, width: float = WIDTH - GUTTER, limit: int = MAX_MARKS
) -> list[Mark]:
    """``marks``, merging ever wider bars until at most ``limit`` marks are left (a run of
    thousands of short files: the redraw's size stays bounded)."""
    min_bar = MIN_BAR
    drawn = marks(found, span, width, min_bar)
    while len(drawn) > limit and min_bar < width:
        min_bar *= 2
        drawn = marks(found, span, width, min_bar)
    return drawn


def _single(bar: Bar, scale: float) -> Mark:
    # at least half a unit wide: a file done in a blink still shows
    width = max(bar.duration * scale, MIN_BAR / 4)
    return Mark(bar.slot, bar.start * scale, width, bar.status, _title(bar))


def _ticks(span: float) -> list[float]:
    """Round times on the axis: at most six, from zero."""
    if span <= 0:
        return [0.0]
    steps = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
    step = next((s for s in steps if span / s <= 6), float(steps[-1]))
    return [i * step for i in range(int(span // step) + 1)]


def _tick_label(seconds: float, step: float) -> str:
    return f"{seconds / 60:g} min" if step >= 60 else f"{seconds:g} s"


def row_height(slots: int) -> float:
    """The height of one slot's row: rows shrink as slots grow, all within ROWS_HEIGHT."""
    return max(ROW_MIN, min(ROW, ROWS_HEIGHT / max(slots, 1)))


def timeline_svg(found: Sequence[Bar], slots: int, span: float) -> str:
    """An inline SVG of ``found`` on ``slots`` rows over ``span`` seconds: each row's track,
    a rect per mark (grouped by status colour, each with a ``<title>``), the time axis."""
    row = row_height(slots)
    gap = row * 0.2 if row >= 6 else 0.0
    height = slots * row + AXIS
    inner = WIDTH - GUTTER
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:g}" '
        f'role="img" aria-label="worker timeline" class="devformance-timeline" '
        f'style="width:100%;max-width:{WIDTH * 1.25:g}px;height:auto;display:block;'
        f'color:{text.MUTED};font-size:10px">'
    ]
    tracks = "".join(
        f'<rect x="{GUTTER}" y="{i * row:g}" width="{inner}" height="{row - gap:g}"/>'
        for i in range(slots)
    )
    parts.append(f'<g style="fill:{text.BORDER};opacity:.35">{tracks}</g>')
    if row >= 8:  # room for the slot numbers
        labels = "".join(
            f'<text x="{GUTTER - 4}" y="{i * row + (row - gap) / 2:g}" dy=".35em">{i}</text>'
            for i in range(slots)
        )
        parts.append(f'<g style="fill:currentColor;text-anchor:end">{labels}</g>')
    by_status: dict[str, list[str]] = {}
    for m in fit_marks(found, span, inner):
        by_status.setdefault(m.status, []).append(
            f'<rect x="{GUTTER + m.x:.1f}" y="{m.slot * row + m.top * (row - gap):.1f}" '
            f'width="{m.width:.1f}" height="{m.share * (row - gap):.1f}">'
            f"<title>{text.esc(m.title)}</title></rect>"
        )
    for status, rects in by_status.items():
        colour = text.COLOURS.get(status, text.MUTED)
        parts.append(
            f'<g style="fill:{colour}" data-status="{text.esc(status)}">{"".join(rects)}</g>'
        )
    ticks = _ticks(span)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    scale = inner / span if span > 0 else 0.0
    axis = "".join(
        f'<text x="{GUTTER + t * scale:.1f}" y="{height - 3:g}"{_START if t == 0 else ""}>'
        f"{_tick_label(t, step)}</text>"
        for t in ticks
        if GUTTER + t * scale < WIDTH - 16  # the last label must fit
    )
    parts.append(f'<g style="fill:currentColor;text-anchor:middle">{axis}</g></svg>')
    return "".join(parts)


def timeline_html(state: RunState | None, now: float) -> str:
    """The live view's timeline block: a line saying how busy the workers were, and the
    SVG; '' before any file started on a known slot."""
    if state is None:
        return ""
    found = bars(state, now)
    if not found:
        return ""
    slots = max(state.workers, max(b.slot for b in found) + 1)
    until = state.finished if state.finished is not None else now
    span = max(max(b.end for b in found), (until - state.started) if state.started else 0.0)
    busy = sum(b.duration for b in found) / (span * slots) if span > 0 else 0.0
    running = sum(b.status == "running" for b in found)
    now_text = f", {running} running" if running else ""
    caption = (
        f"<b>Workers</b> · {slots} slots busy {busy:.0%} of {text.seconds(span, live=True)}"
        f"{now_text} · hover a bar for its file"
    )
    return (
        f'<div class="devformance-workers" style="margin:4px 0;color:{text.MUTED}">'
        f'<div style="font-size:90%">{caption}</div>{timeline_svg(found, slots, span)}</div>'
    )


class TimelineView:
    """The timeline's widget in the live view; ``update`` runs on the launcher's loop thread."""

    def __init__(self) -> None:
        self.widget = w.HTML(value="", layout=w.Layout(width="100%"))
        self._drawn_at: float | None = None

    def update(
        self, state: RunState | None, now: float, budget: Budget, *, final: bool
    ) -> tuple[int, int]:
        """Redraw from ``state`` (``now``: the view's monotonic clock) when ``final``, or
        when REDRAW_SECONDS passed since the last bars were drawn (at once when none are) and
        the budget allows; returns (messages, bytes) sent."""
        if not final:
            # an empty timeline draws its first bars at once; a drawn one waits its turn
            last = self._drawn_at if self.widget.value else None
            if last is not None and now - last < REDRAW_SECONDS:
                return 0, 0
            if not budget.allows():
                return 0, 0
        self._drawn_at = now
        value = timeline_html(state, time.time())
        sent = assign(self.widget, value=value)
        return sent, sent * (len(value) + MESSAGE_OVERHEAD)
