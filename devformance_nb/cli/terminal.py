"""TerminalView: the CLI's observer of a run.

On an interactive terminal it draws a live table of the running files (rich) with a summary
bar under it, and prints one line per finished file above the table. On a pipe, or a terminal
rich finds unfit for cursor movement (``TERM=dumb``), it prints only those lines and the
summary, as plain text.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import TextIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from devformance_nb.cli.findings import n_plus_one_lines, slow_lines, unused_eager_lines
from devformance_nb.core import events as ev
from devformance_nb.logic.eager import eager_order
from devformance_nb.run.state import FILE_PROBLEMS, FileState, RunState

LABELS = {
    "passed": "PASSED",
    "failed": "FAILED",
    "error": "ERROR",
    "crashed": "CRASHED",
    "timeout": "TIMEOUT",
    "stopped": "STOPPED",
    "empty": "NO TESTS",
    "interrupted": "INTERRUPTED",
    "carried": "CARRIED",
}
_COLOURS = {"PASSED": "32", "NO TESTS": "33", "STOPPED": "33", "CARRIED": "2"}
_BAR = 24
#: the live table is redrawn at most this often (the launcher ticks every 0.25 s)
REDRAW_SECONDS = 0.2
#: columns of the live table, one row per running file
COLUMNS = ("file", "tests", "CPU", "memory", "elapsed", "last output")
#: terminal lines the table leaves for its header, its rule and the summary bar
_CHROME_LINES = 6


def file_line(fs: FileState, colour: bool = False) -> str:
    """One line for a finished file: status, key, counts, duration and any error."""
    label = LABELS.get(fs.status, fs.status.upper())
    shown = f"\x1b[{_COLOURS.get(label, '31')}m{label:<8}\x1b[0m" if colour else f"{label:<8}"
    counts = ", ".join(f"{n} {c}" for c, n in sorted(fs.counts.items()) if n)
    took = f"{fs.duration:.2f}s" if fs.duration is not None else ""
    line = f"{shown} {fs.key}  {counts or 'no tests'}  {took}"
    if fs.status == "passed":
        return line
    if fs.carried_from is not None:  # not run: its result (and time) are the run named
        return f"{line}  (from run {fs.carried_from}, not re-run)"
    details = _details(fs)
    if fs.worker_address:  # a remote child: where to look (its worker's logs, its machine)
        details.append(f"on Dask worker {fs.worker_address}")
    for detail in details:
        line += f"\n         {detail[:160]}"
    return line


def _details(fs: FileState) -> list[str]:
    # a crash: what happened (its first line) and the crashing frame of a fatal-error dump;
    # an error: its last line (the exception)
    if fs.crash:
        lines = [t.strip() for t in fs.crash.strip().splitlines() if t.strip()]
        frame = next((t for t in lines if t.startswith('File "')), None)
        return lines[:1] + ([frame] if frame else [])
    if fs.errors and fs.errors[0].strip():
        return [fs.errors[0].strip().splitlines()[-1]]
    return []


def progress_text(state: RunState) -> str:
    """The run so far in words: files done, tests done, failures, elapsed time."""
    files = list(state.files.values())
    finished = sum(fs.is_finished for fs in files)
    totals = state.totals()
    bad = totals.get("failed", 0) + totals.get("error", 0)
    return (
        f"{finished}/{len(files)} files  {totals['tests']} tests  {bad} failed  "
        f"{state.duration or 0:.1f}s"
    )


def file_row(fs: FileState) -> tuple[str, ...]:
    """A running file's cells, in ``COLUMNS`` order (a dash where no sample came yet)."""
    collected = "?" if fs.collected is None else str(fs.collected)
    cpu = "–" if fs.cpu_percent is None else f"{fs.cpu_percent:.0f}%"
    # MB of 10^6, as the notebook's badges and ``ps`` near enough say
    memory = "–" if fs.rss is None else f"{fs.rss / 1e6:,.0f} MB"
    return (fs.key, f"{fs.done}/{collected}", cpu, memory, _elapsed(fs.duration), fs.last_output)


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def fit_left(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters from the left: a path keeps its file name."""
    if len(text) <= width:
        return text
    return "…" + text[len(text) - width + 1 :] if width > 1 else text[-width:]


def running_table(state: RunState, max_rows: int = 20, width: int = 120) -> Table:
    """The running files (oldest first), at most ``max_rows`` rows; the rest are counted.

    ``width`` is the terminal's: a file's path takes at most a third of it (cut from the
    left), the last output line takes what the other columns leave (cut on the right).
    """
    running = sorted(
        (fs for fs in state.files.values() if fs.status == "running"),
        key=lambda fs: fs.started or 0.0,
    )
    shown = running if len(running) <= max_rows else running[: max(max_rows - 1, 0)]
    more = f"+{len(running) - len(shown)} more" if len(shown) < len(running) else ""
    longest = max([len(more), *(len(fs.key) for fs in shown)])
    key_width = max(len(COLUMNS[0]), min(longest, max(12, width // 3)))
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False, show_edge=False)
    table.add_column(COLUMNS[0], width=key_width, no_wrap=True)
    for name in COLUMNS[1:-1]:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column(COLUMNS[-1], ratio=1, no_wrap=True, overflow="ellipsis")
    for fs in shown:
        key, *cells, last = file_row(fs)
        failing = fs.counts.get("failed") or fs.counts.get("error")
        # the child's own colours stay; a tab never reaches the table
        output = Text.from_ansi(last.expandtabs(), no_wrap=True, overflow="ellipsis")
        table.add_row(fit_left(key, key_width), *cells, output, style="red" if failing else None)
    if more:
        table.add_row(more, style="dim")
    return table


def summary_bar(state: RunState) -> Table:
    """A progress bar of finished files and the run's progress in words."""
    files = len(state.files)
    finished = sum(fs.is_finished for fs in state.files.values())
    totals = state.totals()
    failing = totals.get("failed") or totals.get("error")
    failing = failing or any(fs.status in FILE_PROBLEMS for fs in state.files.values())
    cut_short = state.status in ("stopped", "interrupted")
    # named colours: rich's default rgb ones turn grey on a 16-colour terminal
    bar = ProgressBar(
        total=max(files, 1),
        completed=finished,
        width=_BAR,
        complete_style="red" if failing else "cyan",
        finished_style="red" if failing else "yellow" if cut_short else "green",
    )
    grid = Table.grid(padding=(0, 1))
    grid.add_row(bar, progress_text(state))
    return grid


def live_display(state: RunState, height: int = 25, width: int = 120) -> RenderableType:
    """What the live view draws on a terminal of ``height`` x ``width``: the running files'
    table, then the summary bar."""
    rows = max(height - _CHROME_LINES, 1)
    return Group(running_table(state, rows, width), summary_bar(state))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class TerminalView:
    """Shows a run in a terminal: a live table on a terminal, plain lines elsewhere.

    ``console``: the rich Console to draw on (its ``is_interactive`` decides the live
    table). Without one, the view writes to ``out`` (default stdout) and draws the table
    only when ``out`` is a terminal that rich finds interactive (``TERM=dumb`` is not; a
    forced colour setting does not make a pipe one). ``live`` overrides either choice.

    The launcher calls the view from its one loop thread, and the live display has no
    refresh thread of its own (``auto_refresh=False``): the view redraws in ``tick``, so
    the table is always built from one consistent state.
    """

    def __init__(
        self, out: TextIO | None = None, live: bool | None = None, console: Console | None = None
    ):
        if console is not None:
            self.out = console.file
            self.live = console.is_interactive if live is None else live
        else:
            self.out = out or sys.stdout
            if live is None:
                live = _isatty(self.out) and Console(file=self.out).is_interactive
            self.live = live
            if live:
                console = Console(file=self.out, force_terminal=True, force_interactive=True)
        self.console = console
        self._live: Live | None = None
        self._drawn = 0.0

    def _say(self, text: str) -> None:
        """Print ``text`` (which may hold colour codes) above the live table, or plainly."""
        if self.live and self.console is not None:
            self.console.print(Text.from_ansi(text), soft_wrap=True)
        else:
            self.out.write(text + "\n")
            self.out.flush()

    def _start(self, state: RunState) -> None:
        if self.console is None or self._live is not None:
            return
        # stdout and stderr go through the console while the table shows, so another
        # print (a failing observer's report, say) lands above the table, not across it
        self._live = Live(
            live_display(state, *self._size()),
            console=self.console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._live.start(refresh=True)
        self._drawn = time.monotonic()

    def _size(self) -> tuple[int, int]:
        # asked each time: the terminal may have been resized
        assert self.console is not None
        return self.console.height, self.console.width

    def stop(self) -> None:
        """Stop the live table (idempotent): the cursor shows and stdout is restored."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def on_event(self, event: ev.Event, state: RunState) -> None:
        if isinstance(event, ev.RunStarted):
            self._say(
                f"devformance: run {state.run_id}: {len(state.files)} files, "
                f"{state.workers} workers ({state.executor})"
            )
            note = state.meta.get("executor_note")
            if note:  # how the code reached a cluster's workers, and what was left out
                self._say(f"devformance: {note}")
            if self.live:
                self._start(state)
        elif isinstance(event, ev.FileCarried):
            self._say(file_line(state.file(event.file), colour=self.live))
        elif isinstance(event, ev.FileFinished):
            if self._live is not None and self.console is not None:
                # redraw first: the line's print redraws the table as last drawn, which
                # must not show the file that just ended as running
                self._live.update(live_display(state, *self._size()), refresh=True)
                self._drawn = time.monotonic()
            self._say(file_line(state.file(event.file), colour=self.live))

    def tick(self, state: RunState) -> None:
        if self._live is None or self.console is None:
            return
        now = time.monotonic()
        if now - self._drawn >= REDRAW_SECONDS:
            self._drawn = now
            self._live.update(live_display(state, *self._size()), refresh=True)

    def close(self, state: RunState) -> None:
        try:
            if self._live is not None:
                # what stays on the screen (stop draws it): the finished run's bar, no table
                self._live.update(summary_bar(state))
        finally:
            self.stop()
        for line in findings_report(state):
            self._say(line)
        coverage = coverage_line(state)
        if coverage:
            self._say(coverage)
        totals = state.totals()
        parts = [f"{n} {c}" for c, n in sorted(totals.items()) if c != "tests" and n]
        carried = state.status_counts().get("carried", 0)
        if carried:  # their tests are in the counts: say they did not run now
            parts.append(f"{carried} files carried, not re-run")
        self._say(
            f"devformance: {state.status} - {totals['tests']} tests in {len(state.files)} files "
            f"({', '.join(parts) or 'nothing ran'}) in {state.duration or 0:.1f}s"
        )


def coverage_line(state: RunState) -> str:
    """``coverage: 91.7% of 1,234 statements ...`` for a measured run, else ''."""
    result = state.coverage_result
    if result is None:
        return ""
    total, notes = result.total, [*result.notes]
    if total is None:
        reasons = sorted({s.reason for s in result.skipped if s.reason})
        return "coverage: not measured" + (f" ({'; '.join(reasons)})" if reasons else "")
    text = f"coverage: {total.percent:.1f}% of {total.statements:,} statements"
    if total.branches:
        text += f" and {total.branches:,} branches"
    contributed = len(result.data_files)
    ran = contributed + len(result.skipped)
    if contributed < ran:
        notes.insert(0, f"{contributed} of {ran} test files contributed")
    if state.status_counts().get("carried"):  # a --changed run: the stored total has them
        files = "the file" if ran == 1 else f"the {ran} files"
        notes.insert(0, f"{files} run now, not the carried ones")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def findings_report(state: RunState, top: int = 10) -> list[str]:
    """The run's slowest queries (top ``top``) and every N+1 finding, as text lines."""
    slow = sorted((q for fs in state.files.values() for q in fs.slow), key=lambda q: -q.duration)
    found = [f for fs in state.files.values() for f in fs.n_plus_one]
    lines = []
    if slow:
        lines.append(f"slow queries (>= {state.slow_query_ms:g} ms): {len(slow)}, slowest:")
        lines += slow_lines(
            {
                "ms": q.duration * 1000,
                "caller": q.caller,
                "nodeid": q.nodeid,
                "file": q.file,
                "sql": q.sql,
            }
            for q in slow[:top]
        )
    if found:
        lines.append(f"N+1 findings: {len(found)}")
        lines += n_plus_one_lines(
            {
                "count": f.count,
                "table_name": f.table,
                "caller": f.caller,
                "sent_by": f.sent_by,
                "nodeid": f.nodeid,
                "ms": f.total_duration * 1000,
                "hint": f.hint,
                "example_sql": f.example_sql,
            }
            for f in sorted(found, key=lambda f: -f.count)
        )
    unused = sorted((u for fs in state.files.values() for u in fs.unused_eager), key=eager_order)
    if unused:
        lines.append(f"unused eager loads: {len(unused)}")
        lines += unused_eager_lines(asdict(u) for u in unused)
    return lines
