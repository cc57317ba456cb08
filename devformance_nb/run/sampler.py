"""A running child's process tree, sampled: CPU, resident memory, threads and processes.

Each reader samples its own child a few times a second from its pump loop (no thread of
its own, nothing shared), and emits the sample as a ``resources`` event like any other.
The tree is the child and every process it started that still runs (looked up again
every ``TREE_REFRESH`` seconds); CPU includes the processes it started and waited for.

On Linux a sample reads one ``/proc/PID/stat`` line per process of the tree and finds the
tree through ``/proc/PID/task/*/children``: no scan of every process on the machine, so
32 children sampled three times a second cost well under 1% of a core (bench_sampler.py).
Elsewhere psutil does the same work. A process that is gone or cannot be read gives no
sample, never an error.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from devformance_nb.core import events as ev

#: seconds between two samples of one child
SAMPLE_INTERVAL = 0.33
#: seconds between two lookups of the processes in a child's tree
TREE_REFRESH = 1.0

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is a dependency; a broken install still runs
    psutil = None

#: (user s, system s, threads, resident bytes, ending) of one process, children it waited for
#: included; ending: it was killed or exits (a zombie, or the kernel's PF_EXITING flag)
Usage = tuple[float, float, int, int, bool]
#: proc(5)'s flag of a process that started to exit (set as it acts on a fatal signal)
_PF_EXITING = 0x4


def _proc_children_works() -> bool:
    me = os.getpid()
    return sys.platform.startswith("linux") and os.path.exists(f"/proc/{me}/task/{me}/children")


_PROC = _proc_children_works()
_TICK = os.sysconf("SC_CLK_TCK") if _PROC else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if _PROC else 4096


def _proc_usage(pid: int) -> Usage | None:
    """One process's figures from ``/proc/PID/stat`` (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # the fields after the command name (which may hold spaces and parentheses); field N of
    # proc(5) is at N - 3 here: state 3, flags 9, utime 14, stime 15, cutime 16, cstime 17,
    # threads 20, rss 24
    fields = data[data.rindex(b")") + 2 :].split()
    try:
        user = (int(fields[11]) + int(fields[13])) / _TICK
        system = (int(fields[12]) + int(fields[14])) / _TICK
        ending = fields[0] in (b"Z", b"X") or bool(int(fields[6]) & _PF_EXITING)
        return user, system, int(fields[17]), int(fields[21]) * _PAGE, ending
    except (IndexError, ValueError):
        return None


def _proc_tree(pid: int) -> list[int]:
    """``pid`` and every process under it, through each task's ``children`` file."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children", "rb") as fh:
                    todo.extend(int(child) for child in fh.read().split())
            except (OSError, ValueError):
                continue
    return found


def _psutil_usage(pid: int) -> Usage | None:
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            times = process.cpu_times()
            return (
                times.user + times.children_user,
                times.system + times.children_system,
                process.num_threads(),
                process.memory_info().rss,
                process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD),
            )
    except (psutil.Error, OSError):
        return None


def _psutil_tree(pid: int) -> list[int]:
    try:
        return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
    except (psutil.Error, OSError):
        return [pid]


class ProcessSampler:
    """Samples the process tree of ``pid`` (``sample`` gives None once it is gone, or dying:
    a sample is taken only of a child that lives)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._last: tuple[float, float] | None = None  # (wall, CPU seconds) of the last sample
        self._next = 0.0
        self._tree: list[int] = []
        self._tree_at = -TREE_REFRESH
        self._usage: Any = _proc_usage if _PROC else _psutil_usage
        self._find: Any = _proc_tree if _PROC else _psutil_tree

    def due(self, now: float) -> bool:
        """Whether it is time for the next sample."""
        return (_PROC or psutil is not None) and now >= self._next

    def sample(self, now: float | None = None) -> ev.Resources | None:
        """One sample, or None when the process is gone or cannot be read."""
        now = time.monotonic() if now is None else now
        self._next = now + SAMPLE_INTERVAL
        if not (_PROC or psutil is not None):
            return None
        if now - self._tree_at >= TREE_REFRESH:
            self._tree, self._tree_at = self._find(self.pid), now
        user = system = 0.0
        rss = threads = processes = 0
        for pid in self._tree:
            usage = self._usage(pid)
            if usage is None or (usage[4] and pid == self.pid):
                if pid == self.pid:
                    # the child itself is gone or going: a sample now would only show it
                    # letting go of its memory, and a sample is proof it still lived
                    return None
                continue  # a process of the tree that ended since the last lookup
            user, system = user + usage[0], system + usage[1]
            threads, rss, processes = threads + usage[2], rss + usage[3], processes + 1
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
