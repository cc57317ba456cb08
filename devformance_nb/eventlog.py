"""Durable events files: an append-only JSON-lines writer and a tolerant reader."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO

from devformance_nb.events import Event, EventDecodeError, decode, encode


class EventWriter:
    """Appends events to one file, numbering them; ``flush`` makes them durable.

    Buffered on purpose: the SQL capture emits many events and must stay cheap,
    so the plugin flushes at test-phase boundaries and every ``batch`` events.
    """

    def __init__(self, path: str | os.PathLike[str], run_id: str, file: str, batch: int = 512):
        self.path = Path(path)
        self.run_id = run_id
        self.file = file
        self._batch = batch
        self._pending: list[str] = []
        self._seq = 0
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, event: Event) -> Event:
        """Stamp ``event`` with run, file, seq and time; buffer it; return the stamped event."""
        self._seq += 1
        stamped = replace(
            event, run_id=self.run_id, file=self.file, seq=self._seq, t=event.t or time.time()
        )
        self._pending.append(encode(stamped))
        if len(self._pending) >= self._batch:
            self.flush()
        return stamped

    def append(self, event: Event) -> None:
        """Buffer an event exactly as given (already stamped by its producer)."""
        self._pending.append(encode(event))
        if len(self._pending) >= self._batch:
            self.flush()

    def flush(self) -> None:
        """Write buffered events and hand them to the OS (visible to a tailing reader)."""
        if self._fh is None or not self._pending:
            return
        self._fh.write("\n".join(self._pending) + "\n")
        self._fh.flush()
        self._pending.clear()

    def close(self) -> None:
        """Flush and close; further writes are dropped silently."""
        self.flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class EventTail:
    """Reads complete lines appended to an events file since the last call.

    A partly written last line stays unread until its newline arrives, so a
    reader racing the writer never sees half an event.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._offset = 0
        self._rest = b""

    def read_lines(self) -> list[bytes]:
        """New complete lines (without newlines); empty if nothing new or no file yet."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self._offset += len(chunk)
        data = self._rest + chunk
        *lines, self._rest = data.split(b"\n")
        return [line for line in lines if line.strip()]

    def remainder(self) -> bytes:
        """A final line that never got its newline (a child killed mid-write)."""
        rest, self._rest = self._rest, b""
        return rest


def read_events(path: str | os.PathLike[str]) -> Iterator[Event | EventDecodeError]:
    """Every event of a file in order; undecodable lines come back as errors, not raised."""
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                yield decode(raw)
            except EventDecodeError as exc:
                yield exc
