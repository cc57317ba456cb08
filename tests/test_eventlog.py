from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from devformance_nb.core import events as ev
from devformance_nb.core.eventlog import EventTail, EventWriter, read_events

pytestmark = pytest.mark.quick


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


def test_an_unbatched_writer_hands_each_event_to_the_os_at_once(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "r", "f")  # the default, as in children and the journal
    writer.write(ev.Output(line=1, text="a"))
    writer.write_fields("output", '"line":2,"text":"b"')
    # no flush, no close: already in the file, as a process dying now would leave it
    assert [e.line for e in read_events(path)] == [1, 2]  # type: ignore[union-attr]
    writer.close()


def test_text_utf8_cannot_encode_is_written_replaced_never_raised(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "r", "tests/\udcff.py")
    writer.write(ev.Output(line=1, text="SELECT '\ud800'"))
    writer.write_fields("output", '"line":2,"text":"\udc80 ok"')
    writer.close()
    data = path.read_bytes()
    data.decode("utf-8")  # valid UTF-8 throughout
    items = list(read_events(path))
    assert [(e.file, e.text) for e in items] == [  # type: ignore[union-attr]
        ("tests/?.py", "SELECT '?'"),
        ("tests/?.py", "? ok"),
    ]


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


def test_write_fields_lines_decode_as_typed_events_numbered_in_file_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "run1", "tests/ä.py")
    writer.write(ev.Output(line=1, text="x"))
    for sql in ("SELECT 1", 'SELECT "q"\n'):
        writer.write_fields(
            "query",
            '"t":1.5,"start":1.5,"duration":0.000012000,"rows":null,"nodeid":"n","phase":"call",'
            f'"sql":{json.dumps(sql)},"vendor":"sqlite"',
            "qseq",
        )
    writer.close()
    events = list(read_events(path))
    assert [type(e).__name__ for e in events] == ["Output", "Query", "Query"]
    first, second = events[1], events[2]
    assert isinstance(first, ev.Query) and isinstance(second, ev.Query)
    assert (first.qseq, second.qseq) == (1, 2)
    assert [e.seq for e in events if isinstance(e, ev.Event)] == [1, 2, 3]
    assert (second.run_id, second.file, second.sql, second.duration) == (
        "run1",
        "tests/ä.py",
        'SELECT "q"\n',
        0.000012,
    )
    assert second.rows is None and second.params is None and second.caller == ""


def test_buffered_events_reach_the_file_promptly_without_a_flush(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "r", "f", batch=1000, flush_every=0.05)
    writer.write(ev.Output(line=1, text="x"))
    deadline = time.monotonic() + 30
    while not path.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(path.read_text().splitlines()) == 1
    writer.close()


def test_writers_from_many_threads_never_mix_or_lose_lines(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    writer = EventWriter(path, "r", "f", batch=7, flush_every=0.001)

    def work(thread: int) -> None:
        for i in range(300):
            if i % 2:
                writer.write(ev.Output(line=i, text=f"t{thread}"))
            else:
                writer.write_fields("output", f'"line":{i},"text":"t{thread}"')

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    events = list(read_events(path))
    assert all(isinstance(e, ev.Output) for e in events)
    assert [e.seq for e in events if isinstance(e, ev.Event)] == list(range(1, 1201))
