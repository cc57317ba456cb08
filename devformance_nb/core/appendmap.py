"""Appending to a file through a shared memory mapping: durable without a system call a line.

A child's SQL capture writes one event line per statement, and every line must survive the
process however it dies. ``os.write`` gives that at the price of a system call a line (about
1.2 us here, a quarter of the capture's whole budget). A shared mapping gives it for the price
of a memory copy: the bytes land in the kernel's page cache, which outlives the process (a
SIGKILL or a segfault included). The file grows in reserved chunks; until the writer closes,
the part not written yet reads as NUL bytes, which readers treat as "not written yet":
:func:`written_part` cuts a read there and :func:`seal` trims the file once its writer is gone.
"""

from __future__ import annotations

import mmap
import os

#: bytes reserved (allocated and mapped) ahead of the writer each time it runs out of room
RESERVE = 1 << 20
_GRANULE = mmap.ALLOCATIONGRANULARITY


def written_part(chunk: bytes) -> bytes:
    """``chunk`` up to its first NUL byte: a mapped writer's room not written yet (JSON text
    never holds a raw NUL: json escapes it)."""
    cut = chunk.find(b"\0")
    return chunk if cut < 0 else chunk[:cut]


class MappedAppender:
    """Appends bytes to the file open on ``fd`` (read-write) through a shared mapping.

    Not thread-safe (its owner holds a lock). ``close`` cuts the file to what was written.
    Another process appending to the same file (a process forked by the code under test, which
    writes with ``O_APPEND`` once it forked) lands after the reserved room: the writer then
    leaves the rest of its room as blank lines and reserves after the other's lines, so no line
    is overwritten.
    """

    def __init__(self, fd: int):
        self._fd = fd
        self._map: mmap.mmap | None = None
        self._base = 0  # where the mapping starts in the file (a multiple of the granule)
        self._at = os.fstat(fd).st_size  # where the next line goes, in the file
        self._limit = self._at  # where the reserved room ends, in the file

    def write(self, data: bytes) -> None:
        """Copy ``data`` to the file (reserving more room first if it does not fit)."""
        end = self._at + len(data)
        if end > self._limit or self._map is None:
            self._reserve(len(data))
            end = self._at + len(data)
        self._map[self._at - self._base : end - self._base] = data  # type: ignore[index]
        self._at = end

    def close(self) -> None:
        """Unmap, and cut the file to what was written (unless another process wrote after)."""
        self.forget()
        size = os.fstat(self._fd).st_size
        if size > self._limit:
            self._blank()
        elif size > self._at:
            os.ftruncate(self._fd, self._at)

    def forget(self) -> None:
        """Drop the mapping without touching the file (in a forked child: the inherited one)."""
        mapping, self._map = self._map, None
        if mapping is not None:
            mapping.close()

    def _reserve(self, needed: int) -> None:
        size = os.fstat(self._fd).st_size
        self.forget()
        if size > self._limit:  # someone appended after our room: leave it blank, go after
            self._blank()
            self._at = size
        start = self._at  # else the room's unwritten rest is reused: no gap is left
        base = start - start % _GRANULE
        length = start - base + max(needed, RESERVE)
        # allocated now, so writing through the mapping never faults for disk space (no
        # SIGBUS on a full disk: this raises here instead, and the caller falls back)
        os.posix_fallocate(self._fd, base, length)
        self._map = mmap.mmap(self._fd, length, mmap.MAP_SHARED, offset=base)
        self._base, self._limit = base, base + length

    def _blank(self) -> None:
        """Fill our unwritten room with newlines: empty lines every reader skips."""
        gap = self._limit - self._at
        if gap > 0:
            os.pwrite(self._fd, b"\n" * gap, self._at)
            self._at = self._limit


def seal(path: str | os.PathLike[str]) -> None:
    """Make a mapped events file whose writer died plain: its unwritten NUL tail cut off, and
    any NUL gap left inside (room it left before another process's lines) made newlines.

    Only for a file no process writes through a mapping any more (cutting a live writer's room
    would kill it): the launcher seals a child's file after reaping the child. A file that
    does not end in a NUL byte (closed by its writer, or never mapped) is left as it is.
    """
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) != b"\0":
            return
        end = _written_end(fd, size)
        offset = 0
        while offset < end:  # a gap inside: only if another process appended after the room
            chunk = os.pread(fd, min(_SCAN, end - offset), offset)
            if b"\0" in chunk:
                os.pwrite(fd, chunk.replace(b"\0", b"\n"), offset)
            offset += len(chunk)
        os.ftruncate(fd, end)
    finally:
        os.close(fd)


_SCAN = 1 << 20


def _written_end(fd: int, size: int) -> int:
    """Where the trailing run of NUL bytes of the file open on ``fd`` begins."""
    end = size
    while end > 0:
        start = max(0, end - _SCAN)
        kept = os.pread(fd, end - start, start).rstrip(b"\0")
        if kept:
            return start + len(kept)
        end = start
    return 0
