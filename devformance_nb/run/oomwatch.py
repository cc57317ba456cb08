"""Follows a running child's memory cgroup, so a death by SIGKILL can be told apart.

By the time its reader learns that a child died, ``/proc/PID`` is gone: so the child's cgroup
folder and memory limit are looked up when it starts, and the cgroup's ``oom_kill`` count is
read with each sample, just before it. The sample counts as proof the child still lived (the
sampler gives none of a child that is exiting), and the kernel raises the count before it
sends its SIGKILL: so a count read just before a live sample is from before any kill of this
child, and a higher count after its death means the out-of-memory killer killed it
(``logic.oom`` words the verdict). Reading the count at each sample, not only at the start,
keeps a sibling killed earlier in the same cgroup from being blamed on this child.

Nothing here raises: a file that cannot be read means no counter (and then only the guess
from memory near the limit), never an error.
"""

from __future__ import annotations

import os

from devformance_nb.core import events as ev
from devformance_nb.logic import oom
from devformance_nb.run.sampler import ProcessSampler


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def machine_ram() -> int | None:
    """The machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _v2_limit(folder: str, top: str) -> int | None:
    """The tightest ``memory.max`` from ``folder`` up to the mount point ``top``."""
    found: list[int] = []
    current = folder
    while True:
        text = _read(os.path.join(current, "memory.max"))
        value = oom.limit_bytes(text) if text is not None else None
        if value is not None:
            found.append(value)
        if current == top or len(current) <= len(top):
            break
        current = os.path.dirname(current)
    return min(found, default=None)


class OomWatch:
    """The memory cgroup of child ``pid``: its ``oom_kill`` count and limit, and the last
    resident memory of the child's tree seen while it lived."""

    def __init__(self, pid: int, *, ram: int | None = None, proc: str = "/proc") -> None:
        """Look the child's cgroup up now, while it runs; ``ram`` overrides the machine's
        memory (the limit of a child in no limited cgroup)."""
        self.pid = pid
        #: the file holding the cgroup's oom_kill count (None: no counter here)
        self.counter_file: str | None = None
        self.limit: int | None = None
        self.limit_name = ""
        self.kills: int | None = None
        self.rss: int | None = None
        self._locate(proc)
        ram = machine_ram() if ram is None else ram
        if ram and (self.limit is None or ram < self.limit):
            self.limit, self.limit_name = ram, "the machine's RAM"
        self.kills = self.read_kills()

    def _locate(self, proc: str) -> None:
        text, mountinfo = _read(f"{proc}/{self.pid}/cgroup"), _read(f"{proc}/self/mountinfo")
        if text is None or mountinfo is None:
            return  # not Linux, or the child is already gone
        unified, memory = oom.cgroup_paths(text)
        mounts = oom.cgroup_mounts(mountinfo)
        folder = oom.cgroup_folder(unified, mounts, 2) if unified is not None else None
        events = os.path.join(folder, "memory.events") if folder else ""
        if folder and os.path.exists(events):  # cgroup v2 with the memory controller on
            self.counter_file = events
            top = next(
                (m.point for m in mounts if m.version == 2 and folder.startswith(m.point)), folder
            )
            self.limit = _v2_limit(folder, top)
            self.limit_name = "the cgroup's memory.max"
            return
        folder = oom.cgroup_folder(memory, mounts, 1) if memory is not None else None
        if folder is None:
            return
        control = os.path.join(folder, "memory.oom_control")
        if oom.counter(_read(control) or "", "oom_kill") is not None:  # Linux 4.13 on
            self.counter_file = control
        stat = _read(os.path.join(folder, "memory.stat")) or ""
        # the tightest limit of the cgroup and its ancestors, as the kernel sums it up
        limit = oom.counter(stat, "hierarchical_memory_limit")
        self.limit = oom.limit_bytes(str(limit)) if limit is not None else None
        self.limit_name = "the cgroup's memory.limit_in_bytes"

    def read_kills(self) -> int | None:
        """The cgroup's oom_kill count now (None: no counter)."""
        if self.counter_file is None:
            return None
        return oom.counter(_read(self.counter_file) or "", "oom_kill")

    def sample(self, sampler: ProcessSampler, now: float | None = None) -> ev.Resources | None:
        """``sampler``'s next sample; the count read just before it becomes the baseline
        when the sample shows the child alive."""
        kills = self.read_kills()
        sample = sampler.sample(now)
        if sample is not None:
            if kills is not None:
                self.kills = kills
            self.rss = sample.rss
        return sample

    def seen(self) -> oom.MemorySeen:
        """What was seen of the child, the count read again now (call it after its death)."""
        return oom.MemorySeen(
            kills_before=self.kills,
            kills_after=self.read_kills() if self.kills is not None else None,
            rss=self.rss,
            limit=self.limit,
            limit_name=self.limit_name,
        )

    def verdict(self) -> oom.Verdict | None:
        """Why the child's SIGKILL happened when memory explains it (``logic.oom.verdict``)."""
        return oom.verdict(self.seen())
