"""Which test and phase a child is running: what the SQL capture reads per statement."""

from __future__ import annotations

from types import FrameType


class TestContext:
    """Which test and phase is running now; the SQL capture reads it per statement.

    ``floor`` is the frame that runs the phase's hook (pluggy's), below every frame of the
    phase, or None outside a phase: the capture's stack walk stops there and reuses what it
    found below it once per phase.
    """

    __test__ = False
    __slots__ = ("floor", "nodeid", "phase")

    def __init__(self) -> None:
        self.nodeid = ""
        self.phase = "collect"
        self.floor: FrameType | None = None
