"""Mapped appends: durable lines without a system call each, NUL room, sealing."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devformance_nb.core import appendmap
from devformance_nb.core.appendmap import MappedAppender, seal, written_part
from devformance_nb.core.eventlog import EventTail, EventWriter, read_events

pytestmark = pytest.mark.quick


def lines_of(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().split(b"\n") if line]


def qseqs(path: Path) -> list[int]:
    """The statement numbers of the file's lines, read as a reader reads them."""
    return [json.loads(line)["qseq"] for line in EventTail(path).read_lines()]


def test_written_part_stops_at_the_first_nul() -> None:
    assert written_part(b'{"a":1}\n{"b"\0\0\0') == b'{"a":1}\n{"b"'
    assert written_part(b"no room\n") == b"no room\n"
    assert written_part(b"\0\0") == b""


def test_close_cuts_the_file_to_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "r", "f", mapped=True)
    for i in range(3):
        writer.write_fields("query", f'"n":{i}', "qseq")
    assert path.stat().st_size >= appendmap.RESERVE  # the room is reserved ahead
    writer.close()
    data = path.read_bytes()
    assert b"\0" not in data and data.endswith(b"}\n")
    assert qseqs(path) == [1, 2, 3]


def test_lines_survive_a_sigkilled_writer_and_seal_cuts_the_room(tmp_path: Path) -> None:
    """The writer's process dies by SIGKILL right after writing: every line is in the file
    (the page cache outlives the process), readers skip the room, ``seal`` cuts it."""
    path = tmp_path / "e.jsonl"
    script = textwrap.dedent(
        f"""
        import os, signal
        from devformance_nb.core.eventlog import EventWriter
        writer = EventWriter({os.fspath(path)!r}, "r", "f", mapped=True)
        for i in range(500):
            writer.write_fields("query", '"n":%d' % i, "qseq")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes().endswith(b"\0")  # the unwritten room
    assert len(list(read_events(path))) == 500  # readers stop at it
    tail = EventTail(path)
    assert len(tail.read_lines()) == 500 and tail.remainder() == b""
    seal(path)
    data = path.read_bytes()
    assert b"\0" not in data and len(lines_of(path)) == 500
    seal(path)  # sealing a plain file changes nothing
    assert path.read_bytes() == data


def test_a_tail_reads_a_line_once_it_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    appender = MappedAppender(fd)
    tail = EventTail(path)
    appender.write(b'{"a":1}\n{"b"')
    assert tail.read_lines() == [b'{"a":1}']
    appender.write(b":2}\n")
    assert tail.read_lines() == [b'{"b":2}']
    appender.close()
    os.close(fd)
    assert path.read_bytes() == b'{"a":1}\n{"b":2}\n'


def test_a_forked_process_appends_after_the_room_and_nothing_is_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(appendmap, "RESERVE", 4096)  # several reservations in a few lines
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "r", "f", mapped=True)
    tail = EventTail(path)
    for i in range(100):
        writer.write_fields("query", f'"before":{i}', "qseq")
    pid = os.fork()
    if pid == 0:  # the forked process: its writer appends to the file, not through the mapping
        try:
            for i in range(5):
                writer.write_fields("query", f'"forked":{i}', "qseq")
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    for i in range(100):
        writer.write_fields("query", f'"after":{i}', "qseq")
    writer.close()
    seen = b"\n".join(tail.read_lines())
    assert b"\0" not in path.read_bytes()
    assert seen.count(b'"before"') == 100
    assert seen.count(b'"forked"') == 5
    assert seen.count(b'"after"') == 100
    assert len(list(read_events(path))) == 205


def test_seal_turns_a_gap_inside_into_blank_lines(tmp_path: Path) -> None:
    """A writer killed after a forked process appended past its room leaves a NUL gap inside:
    sealed, the gap is empty lines and every line after it is read."""
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"a":1}\n' + b"\0" * 100 + b'{"b":2}\n' + b"\0" * 50)
    seal(path)
    assert path.read_bytes() == b'{"a":1}\n' + b"\n" * 100 + b'{"b":2}\n'
    assert [line for line in EventTail(path).read_lines()] == [b'{"a":1}', b'{"b":2}']


def test_a_failed_reservation_goes_on_with_plain_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room left on the disk for the next reservation: no line is lost, no NUL left."""
    monkeypatch.setattr(appendmap, "RESERVE", 4096)
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "r", "f", mapped=True)
    for i in range(20):
        writer.write_fields("query", f'"n":{i}', "qseq")

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    for i in range(20, 200):
        writer.write_fields("query", f'"n":{i}', "qseq")
    writer.close()
    assert b"\0" not in path.read_bytes()
    assert qseqs(path) == list(range(1, 201))
