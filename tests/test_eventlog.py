from __future__ import annotations

from pathlib import Path

from devformance_nb import events as ev
from devformance_nb.eventlog import EventTail, EventWriter, read_events


def test_writer_stamps_and_buffers_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "run1", "tests/a.py", batch=100)
    stamped = writer.write(ev.Output(line=1, text="x"))
    assert (stamped.run_id, stamped.file, stamped.seq) == ("run1", "tests/a.py", 1)
    assert stamped.t > 0
    assert path.read_text() == ""  # buffered
    writer.write(ev.Output(line=2, text="y"))
    writer.flush()
    assert [e.seq for e in read_events(path)] == [1, 2]  # type: ignore[union-attr]
    writer.close()
    writer.write(ev.Output(line=3, text="z"))  # after close: dropped, no error
    writer.close()


def test_writer_flushes_by_batch(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "r", "f", batch=2)
    writer.write(ev.Output(line=1, text="a"))
    writer.write(ev.Output(line=2, text="b"))
    assert len(path.read_text().splitlines()) == 2


def test_tail_never_returns_half_a_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    tail = EventTail(path)
    assert tail.read_lines() == []  # no file yet
    path.write_bytes(b'{"a":1}\n{"b":')
    assert tail.read_lines() == [b'{"a":1}']
    with open(path, "ab") as fh:
        fh.write(b'2}\n{"c"')
    assert tail.read_lines() == [b'{"b":2}']
    assert tail.remainder() == b'{"c"'


def test_read_events_reports_bad_lines_without_raising(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    good = ev.encode(ev.Output(line=1, text="x"))
    path.write_text(f"{good}\ngarbage\n\n{good}\n")
    items = list(read_events(path))
    assert [type(i).__name__ for i in items] == ["Output", "EventDecodeError", "Output"]
