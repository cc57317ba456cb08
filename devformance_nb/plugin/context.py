"""Which test and phase a child is running: what the SQL capture reads per statement."""

from __future__ import annotations

import threading
from types import CodeType, FrameType


class TestContext:
    """Which test and phase is running now; the SQL capture reads it per statement.

    ``floor`` is the frame that runs the phase's hook (pluggy's), below every frame of the
    phase, or None outside a phase: the capture's stack walk stops there and reuses what it
    found below it once per phase. ``thread`` is the ident of the thread running the tests: a
    statement sent from another thread walks on through that thread's current frame.
    ``body_code`` is the code of the running test's own function (the one hypothesis runs once
    per example, not its wrapper): a new frame of it is a new run of the test body, and so is a
    new ``subTest`` of ``case``, the running unittest ``TestCase`` (None for other tests).
    """

    __test__ = False
    __slots__ = ("body_code", "case", "floor", "nodeid", "phase", "thread")

    def __init__(self) -> None:
        self.nodeid = ""
        self.phase = "collect"
        self.floor: FrameType | None = None
        self.thread = threading.get_ident()
        self.body_code: CodeType | None = None
        self.case: object | None = None
