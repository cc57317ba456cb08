"""Describing a new stack: its hash, the line to change, the frames told once."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from devformance_nb.plugin.capture.frames import FrameIndex
from devformance_nb.plugin.capture.stacks import Site, StackDescriber, is_task_step

pytestmark = pytest.mark.quick

APP = """
import sys

def send(sql, probe):
    return probe(sys._getframe())

def helper(sql, probe):
    return send(sql, probe)

def report(probe):
    return helper("SELECT * FROM t", probe)

def report_twice(probe):
    return [helper("SELECT * FROM t", probe), helper("SELECT * FROM t", probe)]

def per_row(probe, n):
    found = []
    for _ in range(n):
        found.append(helper("SELECT 1", probe))
    return found
"""

Probe = Callable[[FrameType], Any]


def load_app(root: Path) -> dict[str, Any]:
    """The app's functions, compiled with their file under ``root`` (project code)."""
    path = root / "app" / "senders.py"
    path.parent.mkdir(parents=True)
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace


def describer(root: Path) -> tuple[StackDescriber, FrameIndex]:
    index = FrameIndex(str(root))
    return index.stacks, index


def test_the_line_to_change_is_past_the_helpers_and_the_sender_is_innermost(
    tmp_path: Path,
) -> None:
    app = load_app(tmp_path)
    stacks, _ = describer(tmp_path)
    floor = sys._getframe()
    site = app["report"](lambda frame: stacks.describe(frame, floor, 0))
    assert isinstance(site, Site)
    # send and helper were handed the statement's text: report's line is the one to change
    assert site.caller == "app/senders.py:11 report"
    assert site.sent_by == "app/senders.py:5 send"
    assert len(site.stack_hash) == 12


def test_two_lines_are_two_stacks_and_one_line_again_is_one(tmp_path: Path) -> None:
    app = load_app(tmp_path)
    stacks, _ = describer(tmp_path)
    floor = sys._getframe()

    def probe(frame: FrameType) -> Site | None:
        return stacks.describe(frame, floor, 0)

    first, second = app["report_twice"](probe)
    assert first.stack_hash != second.stack_hash  # two calls on one line: two offsets
    assert app["report"](probe).stack_hash == app["report"](probe).stack_hash
    looped = app["per_row"](probe, 3)
    assert len({site.stack_hash for site in looped}) == 1
    assert looped[0].caller == "app/senders.py:19 per_row"  # the line in the loop


def test_the_direct_reading_equals_the_general_one(tmp_path: Path) -> None:
    app = load_app(tmp_path)
    stacks, _ = describer(tmp_path)
    floor = sys._getframe()
    readings: list[Any] = []

    def probe(frame: FrameType) -> None:
        direct = stacks._direct(frame, floor)
        general = stacks._crossed(frame, floor, 0)
        readings.append((direct, general))

    app["per_row"](probe, 1)
    direct, general = readings[0]
    assert direct is not None
    assert [found[3] for found in direct[0]] == [found[3] for found in general[0]]
    assert direct[1] == general[1]  # the hash parts, library frames above the project's too


def test_each_stack_is_told_once_and_clear_forgets_nothing_it_should_tell_again(
    tmp_path: Path,
) -> None:
    app = load_app(tmp_path)
    stacks, _ = describer(tmp_path)
    told: list[tuple[str, list[tuple[str, int, str]]]] = []
    stacks.on_stack = lambda digest, frames: told.append((digest, frames))
    floor = sys._getframe()

    def probe(frame: FrameType) -> Site | None:
        return stacks.describe(frame, floor, 0)

    site = app["report"](probe)
    stacks.clear()
    assert app["report"](probe) == site  # described again, the same
    assert [digest for digest, _ in told] == [site.stack_hash]
    assert told[0][1] == [
        ("app/senders.py", 11, "report"),
        ("app/senders.py", 8, "helper"),
        ("app/senders.py", 5, "send"),
    ]


def test_set_up_work_has_no_hash_and_is_never_told(tmp_path: Path) -> None:
    app = load_app(tmp_path)
    stacks, _ = describer(tmp_path)
    told: list[str] = []
    stacks.on_stack = lambda digest, frames: told.append(digest)
    floor = sys._getframe()
    site = app["report"](lambda frame: stacks.describe(frame, floor, 0, setup=True))
    assert site.caller == "app/senders.py:11 report"
    assert site.stack_hash == ""
    assert told == []


def test_no_project_frame_is_no_site(tmp_path: Path) -> None:
    stacks, _ = describer(tmp_path / "elsewhere")
    assert stacks.describe(sys._getframe(), None, 0) is None


def test_a_task_step_is_told_apart(tmp_path: Path) -> None:
    _, index = describer(tmp_path)
    steps: list[bool] = []

    async def main() -> None:
        # the frame below this coroutine's is the event loop running the task's step
        frame = sys._getframe()
        while frame is not None and frame.f_code.co_name != "_run":
            frame = frame.f_back  # type: ignore[assignment]
        steps.append(frame is not None and is_task_step(frame, index.kind))

    asyncio.run(main())
    assert steps == [True]
    assert not is_task_step(sys._getframe(), index.kind)
