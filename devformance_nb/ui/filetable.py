"""The table of every file of a run: a page of rows in one HTML widget, sorted and filtered.

Its cost follows the page, never the suite: one HTML widget holds ``PAGE_ROWS`` rows, so a
run of 2,000 files sends what a run of 50 sends. Sorting, the filter and the page are plain
Python here (``ordered``, ``page_of``, ``table_html``); ``FileTable`` holds the widgets,
which the view draws from its loop thread like every other widget (trait assignments only).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w

from devformance_nb.run.state import FileState
from devformance_nb.ui import text
from devformance_nb.ui.filters import matches
from devformance_nb.ui.pane import MESSAGE_OVERHEAD, assign

#: rows a page shows
PAGE_ROWS = 50
#: the first choice of the "open" list (no file)
NO_FILE = ""


def _status_rank(fs: FileState) -> int:
    # problems first, then what runs, what waits, and what ended well
    if text.is_failing(fs):
        return 0
    return {"running": 1, "pending": 2}.get(fs.status, 3)


#: sort name -> key of a file's row (ties broken by the run's own order)
SORTS: dict[str, Callable[[FileState], Any]] = {
    "problems first": _status_rank,
    "run order": lambda fs: 0,
    "file": lambda fs: fs.key,
    "slowest": lambda fs: -(fs.duration or 0.0),
    "most N+1": lambda fs: -len(fs.n_plus_one),
    "most slow queries": lambda fs: -len(fs.slow),
    "lowest coverage": lambda fs: 101.0 if fs.coverage is None else fs.coverage,
}


def ordered(files: Sequence[FileState], sort: str, filter_text: str = "") -> list[FileState]:
    """The rows of the table: ``files`` (in the run's order) filtered, then sorted (stable)."""
    key = SORTS.get(sort, SORTS["problems first"])
    return sorted((fs for fs in files if matches(fs.key, filter_text)), key=key)


def page_of(rows: Sequence[FileState], page: int) -> tuple[list[FileState], int]:
    """The rows of page ``page`` (clamped to the pages there are) and that page's number."""
    last = max(0, (len(rows) - 1) // PAGE_ROWS)
    page = min(max(page, 0), last)
    return list(rows[page * PAGE_ROWS : (page + 1) * PAGE_ROWS]), page


def _cell(value: Any, colour: str = "inherit", right: bool = False) -> str:
    align = "right" if right else "left"
    return f'<td style="text-align:{align};color:{colour};padding:1px 10px 1px 0">{value}</td>'


def _row(fs: FileState) -> str:
    colour = text.COLOURS.get(fs.status, "inherit")
    failed = fs.counts.get("failed", 0) + fs.counts.get("error", 0)
    tests = f"{fs.done}/{fs.collected}" if fs.collected is not None else "–"
    coverage = "–" if fs.coverage is None else f"{fs.coverage:.0f}%"
    problem = text.COLOURS["failed"]
    warn = text.COLOURS["timeout"]
    return (
        "<tr>"
        + "".join(
            [
                _cell(f"{text.icon(fs.status)} {html.escape(text.label(fs.status))}", colour),
                _cell(f"<code>{html.escape(fs.key)}</code>"),
                _cell(tests, right=True),
                _cell(failed or "", problem if failed else "inherit", right=True),
                _cell(text.seconds(fs.duration, live=fs.status == "running"), right=True),
                _cell(len(fs.n_plus_one) or "", warn, right=True),
                _cell(len(fs.slow) or "", warn, right=True),
                _cell(coverage, right=True),
            ]
        )
        + "</tr>"
    )


_HEAD = "".join(
    f'<th style="text-align:{a};padding:1px 10px 1px 0">{n}</th>'
    for n, a in (
        ("status", "left"), ("file", "left"), ("tests", "right"), ("failed", "right"),
        ("time", "right"), ("N+1", "right"), ("slow", "right"), ("coverage", "right"),
    )
)  # fmt: skip


def table_html(rows: Sequence[FileState]) -> str:
    """One page of the table as HTML (one widget: one message per change)."""
    body = "".join(_row(fs) for fs in rows)
    return (
        '<table class="devformance-table" style="border-collapse:collapse;font-size:12px">'
        f"<thead><tr>{_HEAD}</tr></thead><tbody>{body}</tbody></table>"
    )


def page_text(page: int, rows: int, total: int) -> str:
    """What the page shows, e.g. 'files 51–100 of 1,980 (2,000 in the run)'."""
    if not rows:
        return f"no file matches the filter ({total:,} in the run)" if total else "no files yet"
    first, last = page * PAGE_ROWS + 1, min((page + 1) * PAGE_ROWS, rows)
    of = f"{rows:,}" if rows == total else f"{rows:,} matching ({total:,} in the run)"
    return f"files {first:,}–{last:,} of {of}"


class FileTable:
    """Widgets of the table: sort, paging, the page itself and an "open" list of its files.

    ``on_open(key)`` is called (main thread: a frontend change) when a file is picked in the
    "open" list; ``on_change()`` when the sort or page changes, so the owner redraws.
    """

    def __init__(self, on_open: Callable[[str], None], on_change: Callable[[], None]) -> None:
        self.page = 0
        self._on_open, self._on_change = on_open, on_change
        self.sort = w.Dropdown(
            options=list(SORTS), value="problems first", description="sort",
            style={"description_width": "initial"}, layout=w.Layout(width="14em"),
        )  # fmt: skip
        self.previous = w.Button(description="◀", tooltip="previous page", disabled=True,
                                 layout=w.Layout(width="3em"))  # fmt: skip
        self.next = w.Button(description="▶", tooltip="next page", disabled=True,
                             layout=w.Layout(width="3em"))  # fmt: skip
        self.where = w.HTML(value=page_text(0, 0, 0))
        self.open = w.Dropdown(
            options=[("open a file…", NO_FILE)], value=NO_FILE, description="",
            layout=w.Layout(width="24em"),
        )  # fmt: skip
        # a page scrolls inside its own box: the live panes below stay in sight
        self.table = w.HTML(
            value=table_html([]), layout=w.Layout(overflow="auto", max_height="22em")
        )
        self.sort.observe(lambda _: self._turn(0), names="value")
        self.previous.on_click(lambda _: self._turn(self.page - 1))
        self.next.on_click(lambda _: self._turn(self.page + 1))
        self.open.observe(self._picked, names="value")
        controls = w.HBox(
            [self.sort, self.previous, self.next, self.where, self.open],
            layout=w.Layout(align_items="center", flex_flow="row wrap"),
        )
        self.box = w.VBox([controls, self.table])
        self.box.add_class("devformance-files")

    def _turn(self, page: int) -> None:
        self.page = page
        self._on_change()

    def _picked(self, change: dict[str, Any]) -> None:
        if change["new"] != NO_FILE:
            self._on_open(str(change["new"]))
            self.open.value = NO_FILE  # ready to open the same file again later

    def update(self, files: Sequence[FileState], filter_text: str) -> tuple[int, int]:
        """Redraw the page from ``files`` (the run's order); returns (messages, bytes)."""
        rows = ordered(files, self.sort.value, filter_text)
        page = self.page  # read once: a click (main thread) may turn it meanwhile
        shown, number = page_of(rows, page)
        if number != page:  # past the last page (fewer rows now): the last one
            self.page = number
        body = table_html(shown)
        where = page_text(number, len(rows), len(files))
        options = [("open a file…", NO_FILE), *((fs.key, fs.key) for fs in shown)]
        sent = assign(self.table, value=body)
        size = sent * (len(body) + MESSAGE_OVERHEAD)
        sent += assign(self.where, value=where)
        sent += assign(self.previous, disabled=number == 0)
        sent += assign(self.next, disabled=(number + 1) * PAGE_ROWS >= len(rows))
        if list(self.open.options) != options:
            # the options and the value in one message; the list keeps "open a file…" chosen
            sent += assign(self.open, options=options, value=NO_FILE)
            size += sum(len(k) for k, _ in options)
        return sent, size + sent * MESSAGE_OVERHEAD
