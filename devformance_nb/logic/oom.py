"""Was a child that died of SIGKILL killed for memory? The verdict, and the cgroup files' text.

Linux's out-of-memory killer ends a process with SIGKILL, which looks like any other kill.
The kernel counts its kills per memory cgroup: ``oom_kill`` in cgroup v2's ``memory.events``
and in cgroup v1's ``memory.oom_control`` (Linux 4.13 on), raised before the signal is sent.
A count that went up while the child ran says the killer did it. Without a counter, a tree
whose last sampled resident memory stood within ``NEAR_LIMIT`` of the memory it could have
(its cgroup's limit, or the machine's RAM) is reported as a guess, and said to be one.

Pure functions of text and numbers: ``devformance_nb.run.oomwatch`` reads the files.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

#: the share of a limit a killed tree's memory must reach for "probably out of memory"
NEAR_LIMIT = 0.9
#: a cgroup v1 limit at or above this is "no limit" (the kernel shows one as 2^63 - 4096)
_V1_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class CgroupMount:
    """A mounted cgroup hierarchy: ``root`` (the hierarchy's folder mounted) at ``point``."""

    version: int  # 2: the unified hierarchy; 1: a v1 hierarchy holding the memory controller
    root: str
    point: str


def cgroup_paths(text: str) -> tuple[str | None, str | None]:
    """(the cgroup v2 path, the v1 memory controller's path) from ``/proc/PID/cgroup``."""
    unified = memory = None
    for line in text.splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path:
            continue
        if number == "0" and controllers == "":
            unified = path
        elif "memory" in controllers.split(","):
            memory = path
    return unified, memory


def _unescape(field: str) -> str:
    # mountinfo writes a space, tab, newline and backslash of a path as octal escapes
    for escaped, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, char)
    return field


def cgroup_mounts(mountinfo: str) -> list[CgroupMount]:
    """The cgroup v2 mounts and the v1 mounts of the memory controller, from
    ``/proc/self/mountinfo`` (proc(5): fields, ``-``, file system type, source, options)."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 4:
            continue
        kind, options = fields[dash + 1], fields[dash + 3].split(",")
        root, point = _unescape(fields[3]), _unescape(fields[4])
        if kind == "cgroup2":
            found.append(CgroupMount(2, root, point))
        elif kind == "cgroup" and "memory" in options:
            found.append(CgroupMount(1, root, point))
    return found


def cgroup_folder(path: str, mounts: list[CgroupMount], version: int) -> str | None:
    """The folder of cgroup ``path`` under a mount of that ``version`` (None: not mounted).

    A container may mount only its part of the hierarchy (the mount's root is then a
    folder, which the process's path starts with).
    """
    for mount in mounts:
        if mount.version != version:
            continue
        root = mount.root.rstrip("/")
        if path == mount.root or path == root or path.startswith(root + "/"):
            inside = path[len(root) :].lstrip("/")
            return posixpath.normpath(posixpath.join(mount.point, inside))
    return None


def counter(text: str, name: str) -> int | None:
    """The value of ``name`` in a file of ``name value`` lines (``memory.events``,
    ``memory.oom_control``); None when it has no such line."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def limit_bytes(text: str) -> int | None:
    """A memory limit file's bytes (v2 ``memory.max``, v1 ``memory.limit_in_bytes``); None
    for no limit (``max``, or v1's huge number) or text that is not one."""
    value = text.strip()
    if not value.isdigit():
        return None
    number = int(value)
    return number if number < _V1_UNLIMITED else None


def megabytes(value: int) -> str:
    """Bytes as whole megabytes (10^6, as the live view's badges say them)."""
    return f"{value / 1e6:,.0f} MB"


@dataclass(frozen=True)
class MemorySeen:
    """What the parent saw of a child's memory while it ran, and after it died."""

    #: the cgroup's oom_kill count when the child was last seen alive (None: no counter)
    kills_before: int | None = None
    #: the same count read after the child died
    kills_after: int | None = None
    #: the tree's resident bytes in the last sample taken while it lived
    rss: int | None = None
    #: the memory it could have (bytes) and what that limit is, for the message
    limit: int | None = None
    limit_name: str = ""


@dataclass(frozen=True)
class Verdict:
    """Why a SIGKILL happened: the ``cause`` in a few words (first in a message, before the
    running test) and the ``evidence`` for it (after)."""

    cause: str
    evidence: str

    def __str__(self) -> str:
        return f"{self.cause} ({self.evidence})"


def verdict(seen: MemorySeen) -> Verdict | None:
    """Why a SIGKILL happened, when memory explains it; None when nothing says so.

    The kernel's counter decides when it is there (it went up: the out-of-memory killer; it
    did not: another kill). Without it, memory near the limit is a guess, worded as one.
    """
    if seen.kills_before is not None and seen.kills_after is not None:
        if seen.kills_after > seen.kills_before:
            limit = f", limit {megabytes(seen.limit)}" if seen.limit else ""
            return Verdict(
                "out of memory",
                "the kernel's out-of-memory killer: "
                f"cgroup oom_kill went {seen.kills_before} -> {seen.kills_after}{limit}",
            )
        return None
    if seen.rss is not None and seen.limit and seen.rss >= NEAR_LIMIT * seen.limit:
        name = f", {seen.limit_name}" if seen.limit_name else ""
        return Verdict(
            "probably out of memory",
            "a guess: SIGKILL with RSS at "
            f"{megabytes(seen.rss)} of limit {megabytes(seen.limit)}{name}",
        )
    return None
