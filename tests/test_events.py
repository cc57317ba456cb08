from __future__ import annotations

import pytest

from devformance_nb.core import events as ev

pytestmark = pytest.mark.quick


@pytest.mark.parametrize(
    "event",
    [
        ev.RunStarted(run_id="r", root="/p", files=["a.py"], workers=2, executor="spawn"),
        ev.Collected(file="a.py", seq=3, count=2, nodeids=["a.py::t1", "a.py::t2"]),
        ev.TestPhase(
            nodeid="a.py::t1",
            phase="call",
            outcome="failed",
            duration=0.5,
            category="failed",
            message="AssertionError",
        ),
        ev.TestPhase(
            nodeid="a.py::t1",
            phase="teardown",
            outcome="passed",
            duration=0.1,
            cpu=0.25,
            memory_growth=4096,
            max_queries=3,
        ),
        ev.Query(
            nodeid="a.py::t",
            phase="call",
            qseq=1,
            start=1.0,
            duration=0.001,
            sql="SELECT 1",
            vendor="sqlite",
            rows=None,
        ),
        ev.FileStarted(file="a.py", path="/p/a.py", pid=7, command=["pytest"], worker=3),
        ev.Output(file="a.py", line=7, text="héllo \x1b[32mok\x1b[0m"),
        ev.FileFinished(file="a.py", status="passed", returncode=0, duration=1.5),
    ],
)
def test_round_trip(event: ev.Event) -> None:
    assert ev.decode(ev.encode(event)) == event


def test_every_event_carries_the_protocol_fields() -> None:
    data = ev.Output(run_id="r", file="f.py", seq=4, line=1, text="x").to_dict()
    assert {"v", "kind", "run_id", "file", "seq"} <= data.keys()
    assert data["v"] == ev.EVENT_VERSION and data["kind"] == "output"


def test_a_file_start_written_before_worker_slots_reads_without_one() -> None:
    line = '{"v": 1, "kind": "file_started", "file": "a.py", "path": "/p/a.py", "pid": 7, '
    line += '"command": []}'
    assert ev.decode(line) == ev.FileStarted(file="a.py", path="/p/a.py", pid=7, command=[])
    assert ev.FileStarted(file="a.py", path="", pid=7, command=[]).worker is None


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    line = '{"v": 1, "kind": "output", "line": 1, "text": "x", "future": true}'
    assert ev.decode(line) == ev.Output(line=1, text="x")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"kind": "nope"}', "unknown event kind"),
        ('{"v": 99, "kind": "output", "line": 1, "text": ""}', "newer"),
        ('{"v": 1, "kind": "output"}', "bad output event"),
    ],
)
def test_bad_lines_raise_a_clear_error(line: str, message: str) -> None:
    with pytest.raises(ev.EventDecodeError, match=message):
        ev.decode(line)
