"""A running child's process tree, sampled: CPU, resident memory, threads and processes.

Each reader samples its own child a few times a second from its pump loop (no thread of
its own, nothing shared), and emits the sample as a ``resources`` event like any other.
The tree is the child and every process it started that still runs; CPU includes the
processes it started and waited for. Without psutil, or for a process this user may not
read, there is no sample (never an error).
"""

from __future__ import annotations

import time
from typing import Any

from devformance_nb.core import events as ev

#: seconds between two samples of one child
SAMPLE_INTERVAL = 0.33

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is a dependency; a broken install still runs
    psutil = None


class ProcessSampler:
    """Samples the process tree of ``pid`` (``sample`` gives None once it is gone)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._last: tuple[float, float] | None = None  # (wall, CPU seconds) of the last sample
        self._next = 0.0
        self._root: Any = None

    def due(self, now: float) -> bool:
        """Whether it is time for the next sample."""
        return psutil is not None and now >= self._next

    def sample(self, now: float | None = None) -> ev.Resources | None:
        """One sample, or None when the process is gone or cannot be read."""
        now = time.monotonic() if now is None else now
        self._next = now + SAMPLE_INTERVAL
        if psutil is None:
            return None
        try:
            if self._root is None:
                self._root = psutil.Process(self.pid)
            tree = [self._root, *self._root.children(recursive=True)]
        except (psutil.Error, OSError):
            return None
        user = system = 0.0
        rss = threads = processes = 0
        for process in tree:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    memory = process.memory_info().rss
                    count = process.num_threads()
            except (psutil.Error, OSError):
                continue  # ended between the listing and the reading
            user += times.user + times.children_user
            system += times.system + times.children_system
            rss, threads, processes = rss + memory, threads + count, processes + 1
        if not processes:
            return None
        percent = self._percent(now, user + system)
        return ev.Resources(
            cpu_percent=percent, rss=rss, threads=threads, processes=processes,
            cpu_user=user, cpu_system=system,
        )  # fmt: skip

    def _percent(self, now: float, cpu: float) -> float:
        last, self._last = self._last, (now, cpu)
        if last is None or now <= last[0]:
            return 0.0
        return max(0.0, (cpu - last[1]) / (now - last[0]) * 100.0)
