"""Where a stack walk goes on when a statement's stack ends before the test: greenlets and
threads.

A statement sent in a greenlet (SQLAlchemy's asyncio bridge) or in another thread (a web
framework's worker thread) has a stack that stops at the greenlet's or thread's start. The
code that asked for it is elsewhere: in the parent greenlet's suspended frames, or in the test
thread, when that thread waits for the work it handed over.
"""

from __future__ import annotations

import _thread
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import NamedTuple

#: threading's functions a thread blocks in while it waits for a result (a future, a queue,
#: an event); any other of threading's functions on top of a stack (``Thread.start``,
#: ``join``, ``__init__``) means the thread is creating, starting or joining threads
_WAITING = {
    threading.Condition.wait.__code__,
    threading.Condition.wait_for.__code__,
    threading.Event.wait.__code__,
    threading.Semaphore.acquire.__code__,
    threading.Barrier.wait.__code__,
}
#: threading's frames looked through at the top of the test thread's stack
MAX_THREADING_FRAMES = 8


class Crossing(NamedTuple):
    """Where a walk goes on after a boundary; ``managing``: the thread there is not waiting
    for the work (it starts or joins threads, or runs on), so its frames above the floor,
    which say nothing about who asked for the statement, are left out of the stack;
    ``running``: the frame is another thread's, which moves on while the statements run (a
    test client's request line is first inside ``submit``, then inside ``result``), so only
    its lines are stable, not the instructions it stands at (a greenlet parent's suspended
    frame stays put)."""

    frame: FrameType
    managing: bool
    running: bool = False


def crossings(thread: int, project: Callable[[str], bool]) -> Iterator[Crossing]:
    """Where a walk goes on once a stack ended before the test's floor.

    First the suspended frame of each parent greenlet (greenlet imported only if the project
    did), then, off the test thread (``thread``, an ident; 0 if unknown), that thread's
    current frame: a test waiting for a request it sent to a worker thread (a web framework's
    test client) is at the line that sent it. A test thread that is not (running on in project
    code, or creating, starting and joining threads) is at no line that matters
    (``managing``). ``project`` tells whether a file is project code.
    """
    greenlet = sys.modules.get("greenlet")
    if greenlet is not None:
        try:
            parent = greenlet.getcurrent().parent
        except Exception:  # a greenlet build without getcurrent: no crossing
            parent = None
        while parent is not None:
            frame = getattr(parent, "gr_frame", None)
            if frame is not None:
                yield Crossing(frame, False)
            parent = parent.parent
    if thread and _thread.get_ident() != thread:
        frame = sys._current_frames().get(thread)
        if frame is not None:
            yield Crossing(frame, not _waits_for_work(frame, project), True)


def _waits_for_work(frame: FrameType, project: Callable[[str], bool]) -> bool:
    """Whether the test thread, stopped at ``frame``, is inside a call that hands work to
    another thread and waits for it (a test client's request: waiting for the response, or
    still on its way there inside a library, which may be starting its worker thread), rather
    than running on in the project's own code or starting and joining the project's own
    threads (where it stands then is one of several lines, whichever the race gives)."""
    if project(frame.f_code.co_filename):
        return False  # running on
    managing = False
    current: FrameType | None = frame
    for _ in range(MAX_THREADING_FRAMES):
        if current is None:
            break
        code = current.f_code
        if code.co_filename != threading.__file__:
            # the first frame outside threading: who waits, or who starts and joins threads
            return not (managing and project(code.co_filename))
        if code not in _WAITING:
            managing = True
        current = current.f_back
    return True
