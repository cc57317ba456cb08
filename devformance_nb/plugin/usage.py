"""What this test process used: CPU seconds and memory, as the OS counts them.

Read by the plugin at the end of the session (``own_usage``, sent with ``file_done``) and
around each test (``TestCost``: the CPU seconds a test took and how much its process grew,
sent with the test's teardown report, as pytest-monitor measures a test).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident memory now (None where it cannot be read cheaply)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


class TestCost:
    """CPU seconds and memory growth of one test, from its set-up to its teardown's end."""

    __test__ = False  # not a test class

    def __init__(self) -> None:
        self._cpu = 0.0
        self._rss: int | None = None

    def start(self) -> None:
        """The test's set-up begins."""
        self._cpu, self._rss = time.process_time(), resident_bytes()

    def stop(self) -> dict[str, Any]:
        """The teardown's report fields: ``cpu`` seconds and ``memory_growth`` bytes."""
        now = resident_bytes()
        growth = None if now is None or self._rss is None else now - self._rss
        return {"cpu": time.process_time() - self._cpu, "memory_growth": growth}


def own_usage() -> dict[str, Any]:
    """This process's CPU seconds and peak resident bytes, with the children it waited for,
    as the OS counts them (empty where ``resource`` does not exist: Windows)."""
    try:
        import resource
    except ImportError:
        return {}
    mine, theirs = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    # ru_maxrss: kilobytes on Linux, bytes on macOS; the larger of the two peaks (not a sum:
    # they need not have happened at once)
    unit = 1 if sys.platform == "darwin" else 1024
    return {
        "cpu_user": mine.ru_utime + theirs.ru_utime,
        "cpu_system": mine.ru_stime + theirs.ru_stime,
        "max_rss": max(mine.ru_maxrss, theirs.ru_maxrss) * unit,
    }
