"""One test file's widgets in the live view, the message budget, and a counted trait setter.

Widgets are built on the main thread; ``FilePane.update`` runs on the
launcher's loop thread and only assigns traits (full-state replacement,
never ``with out:`` or ``clear_output``), one comm message per changed widget.
"""

from __future__ import annotations

import html
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as w

from devformance_nb.run.state import FileState
from devformance_nb.ui import sparkline
from devformance_nb.ui import text as text

#: lines a pane keeps in memory and chars it sends: the full log stays on disk
TAIL_LINES = 150
TAIL_CHARS = 10_000
#: the most of a log the "full log" button sends at once (Jupyter drops > 1 MB/s)
LOG_VIEW_BYTES = 512_000
#: a rough size of one comm update besides its payload, for the byte budget
MESSAGE_OVERHEAD = 300
#: CSS the view ships in an HTML widget: the inner output area must not shrink, or the
#: column-reverse scroller (which keeps the newest line in sight) would never scroll. On a
#: dark theme, JupyterLab draws pytest's bold colours ("12 passed", "FAILED") in its dark
#: "intense" ANSI shades (#007427 green: 2.7:1 on its dark background); in our panes they
#: take the plain shades instead, which read at 4.5:1 or better
_DARK = "body[data-jp-theme-light='false'] :is(.devformance-pane, .devformance-log) .ansi-"
_PLAIN_SHADES = {
    "green": "#00a250",
    "red": "#e75c58",
    "blue": "#208ffb",
    "magenta": "#d160c4",
    "cyan": "#60c6c8",
    "black": "#a1a6b2",
}
CSS = (
    "<style>\n"
    ".devformance-pane > .jp-OutputArea { flex-shrink: 0; }\n"
    ".devformance-pane pre, .devformance-log pre { font-size: 12px; line-height: 1.3; }\n"
    + "".join(
        f"{_DARK}{name}-intense-fg {{ color: {hex_} }}\n" for name, hex_ in _PLAIN_SHADES.items()
    )
    + "</style>"
)


def assign(widget: Any, **values: Any) -> int:
    """Set traits that differ, in one comm message; returns the messages sent (0 or 1)."""
    changed = {name: value for name, value in values.items() if getattr(widget, name) != value}
    if not changed:
        return 0
    with widget.hold_sync():
        for name, value in changed.items():  # dict order: a progress bar's max before its value
            setattr(widget, name, value)
    return 1


def stream(text_: str) -> tuple[dict[str, str], ...]:
    """An Output widget's ``outputs`` holding one stdout stream (ANSI colours render)."""
    if not text_:
        return ()
    return ({"output_type": "stream", "name": "stdout", "text": text_},)


class Budget:
    """A token bucket of comm messages and bytes, so a busy run stays under Jupyter's limits.

    Jupyter server drops messages above 1000/s and 1 MB/s; by default the view
    spends 60 messages and 400 kB a second (the target is under 100/s). A
    sender may overdraw once (so one large pane is never starved); the debt is
    paid back before anything else goes out.
    """

    def __init__(self, messages_per_s: float = 60.0, bytes_per_s: float = 400_000.0):
        self.rates = (messages_per_s, bytes_per_s)
        self.messages, self.bytes = messages_per_s / 2, bytes_per_s / 2
        self._last: float | None = None

    def refill(self, now: float) -> None:
        """Add what accrued since the last refill (capped at half a second's worth)."""
        if self._last is not None:
            elapsed = max(0.0, now - self._last)
            self.messages = min(self.rates[0] / 2, self.messages + elapsed * self.rates[0])
            self.bytes = min(self.rates[1] / 2, self.bytes + elapsed * self.rates[1])
        self._last = now

    def allows(self) -> bool:
        """Whether anything may be sent now."""
        return self.messages >= 1 and self.bytes > 0

    def charge(self, messages: int, nbytes: int) -> None:
        """Account for what was sent."""
        self.messages -= messages
        self.bytes -= nbytes


@dataclass
class FileBuffer:
    """Plain state of one file the loop thread keeps between redraws."""

    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    lines: int = 0
    version: int = 0


class FilePane:
    """The body of one Accordion item: progress, live terminal, side lists and the full log."""

    def __init__(self, key: str):
        self.key = key
        self.log_path: Path | None = None
        self.sent_version = -1
        self.sent_at = 0.0
        self._colour_cache: dict[str, str] = {}
        #: called with the pane's key when its "close" button is pressed (main thread)
        self.on_close: Any = None
        #: rebound to another file since the last update (its full log is hidden then)
        self._rebound = False
        self.progress = w.IntProgress(
            value=0, min=0, max=1, description="waiting", style={"description_width": "initial"}
        )
        self.head = w.HTML(value=f"<code>{html.escape(key)}</code>")
        self.pane = w.Output(
            # column-reverse keeps the scroll position at the newest line
            layout=w.Layout(
                width="100%",
                max_height="22em",
                overflow="auto",
                display="flex",
                flex_flow="column-reverse",
                border=f"1px solid {text.BORDER}",
            )
        )
        self.pane.add_class("devformance-pane")
        # below the output, not beside it: pytest's long lines get the cell's whole width
        self.side = w.HTML(layout=w.Layout(width="100%", padding="4px 0 0 0"))
        self.log_button = w.Button(description="full log", tooltip="show this file's whole log")
        self.log_link = w.HTML()
        self.log_view = w.Output(
            layout=w.Layout(display="none", max_height="30em", overflow="auto")
        )
        self.log_view.add_class("devformance-log")
        self.log_button.on_click(self._toggle_log)
        self.close_button = w.Button(description="close", tooltip="hide this file's pane")
        self.close_button.on_click(lambda _: self.on_close and self.on_close(self.key))
        self.box = w.VBox(
            [
                w.HBox([self.progress, self.head], layout=w.Layout(align_items="center")),
                self.pane,
                self.side,
                w.HBox(
                    [self.log_button, self.close_button, self.log_link],
                    layout=w.Layout(align_items="center"),
                ),
                self.log_view,
            ]
        )

    def rebind(self, key: str, log_path: Path | None) -> None:
        """Show another file from now on (loop thread: plain state; its next ``update`` sends
        every widget, and hides the previous file's full log)."""
        self.key, self.log_path = key, log_path
        self.sent_version = -1
        self._colour_cache = {}
        self._rebound = True

    def update(self, fs: FileState, buffer: FileBuffer) -> tuple[int, int]:
        """Redraw from the file's state; returns (messages, bytes) sent. Loop thread only."""
        tail = text.tail_text(list(buffer.tail), buffer.lines, TAIL_CHARS, self._colour_cache)
        # the sparklines lead the header: their place stays put while the counts after grow
        head, side = sparkline.resources_html(fs) + text.head_html(fs), text.side_html(fs)
        link = f"log: <code>{html.escape(str(self.log_path))}</code>" if self.log_path else ""
        sent = assign(self.progress, **text.progress_values(fs))
        if self._rebound:
            self._rebound = False
            sent += assign(self.log_view.layout, display="none")
        sent_bytes = sent * MESSAGE_OVERHEAD
        for widget, values, size in (
            (self.head, {"value": head}, len(head)),
            (self.side, {"value": side}, len(side)),
            (self.log_link, {"value": link}, len(link)),
            (self.pane, {"outputs": stream(tail)}, len(tail)),
        ):
            n = assign(widget, **values)
            sent += n
            sent_bytes += n * (size + MESSAGE_OVERHEAD)
        self.sent_version = buffer.version
        return sent, sent_bytes

    def _toggle_log(self, _: Any = None) -> None:
        # a button click arrives on the main thread: reading the file here is fine
        if self.log_view.layout.display != "none":
            self.log_view.layout.display = "none"
            return
        self.log_view.outputs = stream(self.read_log())
        self.log_view.layout.display = "block"

    def read_log(self) -> str:
        """The file's log from disk (its last LOG_VIEW_BYTES when larger)."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log yet: the file has not started)\n"
        size = self.log_path.stat().st_size
        with open(self.log_path, "rb") as log:
            if size > LOG_VIEW_BYTES:
                log.seek(size - LOG_VIEW_BYTES)
            data = log.read(LOG_VIEW_BYTES)
        note = ""
        if size > LOG_VIEW_BYTES:
            hidden = size - LOG_VIEW_BYTES
            note = f"… first {hidden:,} bytes not shown; open {os.fspath(self.log_path)}\n"
        return note + data.decode("utf-8", "replace")

    def close(self) -> None:
        """Close every widget of the pane (frees their comms)."""
        _close_tree(self.box)


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
