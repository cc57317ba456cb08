"""Who awaits the running asyncio task: the frames a stack walk adds at the event loop."""

from __future__ import annotations

import asyncio

import pytest

from devformance_nb.plugin.capture.tasks import awaiting_frames

pytestmark = pytest.mark.quick


async def child() -> list[tuple[str, int]]:
    await asyncio.sleep(0)
    return [(f.f_code.co_name, f.f_lineno) for f in awaiting_frames()]


async def parent() -> tuple[object, object, object, object]:
    (gathered,) = await asyncio.gather(child())
    awaited = await asyncio.create_task(child())
    # nested: a task gathered by a task gathered here
    (nested,) = await asyncio.gather(middle())
    # a task nobody awaits while it runs (this one waits for an event it sets): nothing to add
    done = asyncio.Event()
    loose = asyncio.create_task(signalling(done))
    await done.wait()
    return gathered, awaited, nested, loose.result()


async def signalling(done: asyncio.Event) -> list[tuple[str, int]]:
    found = await child()
    done.set()  # the task ends in this same step, before its creator wakes up
    return found


async def middle() -> list[tuple[str, int]]:
    (inner,) = await asyncio.gather(child())
    return inner


def line_of(text: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        return next(n for n, line in enumerate(source, start=1) if text in line)


def test_a_task_knows_the_line_of_the_coroutine_that_awaits_it() -> None:
    gathered, awaited, nested, loose = asyncio.run(parent())
    assert gathered == [("parent", line_of("(gathered,) = await"))]
    assert awaited == [("parent", line_of("awaited = await"))]
    # innermost first: the middle task's await, then the line that gathered the middle task
    assert nested == [("middle", line_of("(inner,) = await")), ("parent", line_of("(nested,)"))]
    assert loose == []


def test_outside_a_task_there_is_nothing_to_add() -> None:
    assert awaiting_frames() == []

    async def main() -> list[object]:
        return list(awaiting_frames())

    assert asyncio.run(main()) == []  # the main task: awaited by no task
