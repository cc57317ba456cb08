"""Who awaits the running asyncio task: the frames a statement's stack skips at the event loop.

A statement sent by a task that ``asyncio.gather`` or ``create_task`` started has a stack that
goes from the task's coroutines straight into the event loop (``Handle._run``) and down to the
code that started the loop: the line of the parent coroutine that awaits the task is not on it.
So two ``gather`` calls on two lines of a test look like one loop. Python exposes that line in
the waiting task: its ``_fut_waiter`` is the task itself (``await task``) or a gathering future
holding it (``await asyncio.gather(...)``), and its coroutines are suspended at the ``await``.
A task nobody awaits yet (created and left running) has no such line: nothing is added.
"""

from __future__ import annotations

import sys
from types import FrameType

#: tasks above tasks followed at most (nested gathers)
MAX_PARENTS = 4
#: coroutines one suspended chain follows at most
MAX_AWAITS = 64


def awaiting_frames() -> list[FrameType]:
    """The suspended frames of the tasks that await the running task, innermost first (the
    parent's innermost coroutine, at its ``await``, to its outermost; then its own parent's),
    or [] outside a task or when no task awaits it."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return []
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        return []
    frames: list[FrameType] = []
    for _ in range(MAX_PARENTS):
        if task is None:
            break
        parent = _waiting_on(task, asyncio.all_tasks())
        if parent is None:
            break
        frames.extend(_suspended(parent))
        task = parent
    return frames


def _waiting_on(task: object, tasks: set[object]) -> object | None:
    """The task whose current await is ``task``, or a gathering future holding it."""
    for other in tasks:
        waiter = getattr(other, "_fut_waiter", None)
        if waiter is None:
            continue
        if waiter is task or task in (getattr(waiter, "_children", None) or ()):
            return other
    return None


def _suspended(task: object) -> list[FrameType]:
    """The frames of ``task``'s coroutine chain, innermost first."""
    chain: list[FrameType] = []
    get_coro = getattr(task, "get_coro", None)
    coro = get_coro() if get_coro is not None else None
    for _ in range(MAX_AWAITS):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        chain.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    chain.reverse()
    return chain
