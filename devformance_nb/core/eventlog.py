"""Durable events files: an append-only JSON-lines writer and a tolerant reader."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import weakref
from collections.abc import Collection, Iterator
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from devformance_nb.core.appendmap import MappedAppender, written_part
from devformance_nb.core.events import EVENT_VERSION, Event, EventDecodeError, decode, encode

#: buffered events reach the file at most this many seconds after they were written
FLUSH_EVERY = 0.2
#: how text that UTF-8 cannot encode (a lone surrogate) is written: replaced, never raised
ENCODE_ERRORS = "replace"


class EventWriter:
    """Appends events to one file, numbering them. Thread-safe.

    By default (``batch=1``) every event goes to the OS as it is written, one ``os.write`` of
    its whole line to a file opened with ``O_APPEND``: once ``write`` returns, the line is in
    the kernel's page cache and survives the process, however it dies (``os._exit``, SIGKILL, a
    segfault). That costs one system call per event and is what the launcher uses.

    ``mapped=True`` (what a child uses, where Linux's ``posix_fallocate`` exists) gets the same
    durability without the system call: lines are copied into a shared mapping of room
    reserved at the end of the file (:class:`~devformance_nb.core.appendmap.MappedAppender`),
    which reads as NUL bytes until written. Readers stop at the first NUL; ``close`` cuts the
    file to its lines, and the launcher seals the file of a child that died (``appendmap.seal``).
    If the mapping fails (no room on the disk), the writer goes on with plain appends.

    ``batch > 1`` buffers that many lines in memory (a loader writing synthetic files, a
    bench): lines then reach the file when ``batch`` of them are waiting, on ``flush`` and,
    from a background thread, at most ``flush_every`` seconds after they were buffered. A
    process that dies loses what was buffered, so children never batch.

    Text is written as UTF-8 with what cannot be encoded (a lone surrogate in SQL text or a
    file name) replaced, so a line is always valid UTF-8 and writing never raises for it.

    ``write`` takes a typed event; ``write_fields`` takes an event's own fields already encoded
    as JSON, which is how the SQL capture writes a statement without building an event object.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        run_id: str,
        file: str,
        batch: int = 1,
        flush_every: float | None = FLUSH_EVERY,
        mapped: bool = False,
    ):
        self.path = Path(path)
        self.run_id = run_id
        self.file = file
        #: guards the buffer, the numbering and the file (producers may number under it too)
        self.lock = threading.Lock()
        self._batch = max(batch, 1)
        self._flush_every = flush_every if self._batch > 1 else None
        self._pending: list[str] = []
        self._seq = 0
        self._heads: dict[str, str] = {}
        self._numbers: dict[str, int] = {}
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None
        self._mapped: MappedAppender | None = None
        if mapped and self._batch == 1 and hasattr(os, "posix_fallocate"):
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            self._mapped = MappedAppender(self._fd)
        else:
            # O_APPEND: every write lands at the end, as one piece, even if a process forked by
            # the code under test writes to the same file
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        _WRITERS.add(self)

    def write(self, event: Event) -> Event:
        """Stamp ``event`` with run, file, seq and time; write it; return the stamped event."""
        with self.lock:
            self._seq += 1
            stamped = replace(
                event, run_id=self.run_id, file=self.file, seq=self._seq, t=event.t or time.time()
            )
            self._buffer(encode(stamped))
        return stamped

    def write_fields(self, kind: str, fields: str, number: str = "") -> None:
        """Write one event of ``kind`` from its own fields, already JSON-encoded.

        ``fields`` is the text between the common keys and the closing brace, such as
        ``"nodeid":"t.py::a","phase":"call"``; the writer adds ``v``, ``kind``, ``run_id``,
        ``file`` and ``seq``. ``number``, if given, names one more field the writer adds: a
        count of the ``kind`` events written this way (1, 2, ...), numbered under the same lock
        as ``seq`` so it follows the file's order (the SQL capture's ``qseq``). The caller must
        give every other field the event's decoder needs.
        """
        with self.lock:
            head = self._heads.get(kind)
            if head is None:
                head = self._heads[kind] = self._head(kind)
            self._seq += 1
            if number:
                count = self._numbers[kind] = self._numbers.get(kind, 0) + 1
                line = f'{head}{self._seq},"{number}":{count},{fields}}}\n'
            else:
                line = f"{head}{self._seq},{fields}}}\n"
            if self._batch == 1:  # the hot path of the SQL capture: straight out, inline
                mapped = self._mapped
                if mapped is not None:
                    try:
                        mapped.write(line.encode("utf-8", ENCODE_ERRORS))
                    except (OSError, ValueError):
                        self._unmap(line)
                    return
                fd = self._fd
                if fd >= 0:
                    data = line.encode("utf-8", ENCODE_ERRORS)
                    written = os.write(fd, data)
                    if written < len(data):  # rare: a short write; finish it
                        self._write_rest(data, written)
                return
            pending = self._pending
            pending.append(line)
            if len(pending) >= self._batch:
                self._write_pending()
            elif self._flusher is None and self._flush_every is not None:
                self._start_flusher()

    def append(self, event: Event) -> None:
        """Write an event exactly as given (already stamped by its producer)."""
        with self.lock:
            self._buffer(encode(event))

    def flush(self) -> None:
        """Hand buffered events to the OS (visible to a tailing reader); a no-op unbatched."""
        with self.lock:
            self._write_pending()

    def close(self) -> None:
        """Flush and close; further writes are dropped silently."""
        self._closed.set()
        with self.lock:
            self._write_pending()
            mapped, self._mapped = self._mapped, None
            if mapped is not None:
                mapped.close()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._pending.clear()
        flusher = self._flusher
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()

    def _head(self, kind: str) -> str:
        return (
            f'{{"v":{EVENT_VERSION},"kind":{json.dumps(kind)},"run_id":{json.dumps(self.run_id)},'
            f'"file":{json.dumps(self.file, ensure_ascii=False)},"seq":'
        )

    def _buffer(self, line: str) -> None:
        if self._batch == 1:
            self._write_out(line + "\n")
            return
        self._pending.append(line + "\n")
        if len(self._pending) >= self._batch:
            self._write_pending()
        elif self._flusher is None and self._flush_every is not None:
            self._start_flusher()

    def _write_out(self, text: str) -> None:
        """Write ``text`` (whole lines) to the file now; dropped once the writer is closed."""
        if self._mapped is not None:
            try:
                self._mapped.write(text.encode("utf-8", ENCODE_ERRORS))
            except (OSError, ValueError):
                self._unmap(text)
            return
        if self._fd < 0:
            return
        data = text.encode("utf-8", ENCODE_ERRORS)
        written = os.write(self._fd, data)
        if written < len(data):
            self._write_rest(data, written)

    def _unmap(self, text: str) -> None:
        """The mapping failed (no room left on the disk for a reservation): cut the file to
        what was written and go on with plain appends, starting with ``text``."""
        mapped, self._mapped = self._mapped, None
        if mapped is not None:
            with contextlib.suppress(OSError):  # the file keeps a NUL tail: readers skip it
                mapped.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1  # not a number another open file may get, if the next line fails
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._write_out(text)

    def _write_rest(self, data: bytes, written: int) -> None:
        """Finish a short write (a signal arrived, a huge line, a nearly full disk)."""
        while written < len(data):
            written += os.write(self._fd, data[written:])

    def _write_pending(self) -> None:
        if self._fd < 0:
            self._pending.clear()  # closed: dropped
            return
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        self._write_out(text)

    def _start_flusher(self) -> None:
        if self._closed.is_set():
            return
        self._flusher = threading.Thread(
            target=self._flush_loop, name="devformance-events-flush", daemon=True
        )
        self._flusher.start()

    def _after_fork(self) -> None:
        """In a child forked by the code under test: fresh lock, no flusher, no inherited buffer.

        The parent writes what was buffered; the child must not write it a second time. A
        mapped writer's child must not write through the parent's mapping either: it appends
        to the same file instead (after the parent's room, which the parent then leaves blank).
        """
        self.lock = threading.Lock()
        self._flusher = None
        self._pending.clear()
        mapped, self._mapped = self._mapped, None
        if mapped is not None:
            mapped.forget()
            if self._fd >= 0:
                os.close(self._fd)  # the parent's descriptor stays open in the parent
                self._fd = -1  # dropped, if the file can no longer be opened
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _flush_loop(self) -> None:
        interval = self._flush_every or FLUSH_EVERY
        while not self._closed.wait(interval):
            try:
                self.flush()
            except (OSError, ValueError):  # the disk is full or the file went away: stop trying
                return


_WRITERS: weakref.WeakSet[EventWriter] = weakref.WeakSet()


def _reset_writers_after_fork() -> None:
    for writer in list(_WRITERS):
        writer._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_writers_after_fork)


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
                chunk = _read_written(fh)
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


#: a tail reads this much at a time, so it stops soon after a mapped writer's unwritten room
_TAIL_BLOCK = 1 << 16


def _read_written(fh: BinaryIO) -> bytes:
    """The rest of ``fh`` up to its first NUL byte (a mapped writer's room: read it later)."""
    parts = []
    while block := fh.read(_TAIL_BLOCK):
        kept = written_part(block)
        parts.append(kept)
        if len(kept) < len(block):
            break
    return b"".join(parts)


def read_events(
    path: str | os.PathLike[str], skip_kinds: Collection[str] = ()
) -> Iterator[Event | EventDecodeError]:
    """Every event of a file in order; undecodable lines come back as errors, not raised.

    Lines of the ``skip_kinds`` are passed over without being decoded (a bulk loader reads
    them another way). A line is recognised by its ``"kind":"NAME"`` text, which can only be
    the event's own kind: inside a JSON string a quote is always escaped.
    """
    markers = [f'"kind":{json.dumps(kind)}'.encode() for kind in skip_kinds]
    marker = markers.pop() if len(markers) == 1 else None  # the common case, kept cheap
    with open(path, "rb") as fh:
        for raw in fh:
            if b"\0" in raw:  # a mapped writer's unwritten room (it died, or still writes)
                raw = written_part(raw)
            if (marker is not None and marker in raw) or any(m in raw for m in markers):
                continue
            if not raw.strip():
                continue
            try:
                yield decode(raw)
            except EventDecodeError as exc:
                yield exc
