"""The out-of-memory verdict of a SIGKILL, and the cgroup files' text it reads (pure logic)."""

from __future__ import annotations

import pytest

from devformance_nb.logic import oom
from devformance_nb.logic.oom import CgroupMount, MemorySeen, Verdict

pytestmark = pytest.mark.quick

MB = 1_000_000
KILLER = "the kernel's out-of-memory killer: cgroup oom_kill went"
GUESS = "a guess: SIGKILL with RSS at"

#: /proc/PID/cgroup of a process on a hybrid host: v1 hierarchies and an empty unified one
HYBRID = """\
9:name=systemd:/
4:memory:/process_api/1cdda6
1:cpu,cpuacct:/
0::/
"""
#: the same on a cgroup v2 host (systemd)
UNIFIED = "0::/user.slice/user-1000.slice/session-3.scope\n"
#: a mountinfo holding both kinds, a v1 hierarchy that is not memory's, and no cgroup at all
MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_the_cgroup_file_gives_the_unified_path_and_the_memory_controllers() -> None:
    assert oom.cgroup_paths(HYBRID) == ("/", "/process_api/1cdda6")
    assert oom.cgroup_paths(UNIFIED) == ("/user.slice/user-1000.slice/session-3.scope", None)
    assert oom.cgroup_paths("7:cpu,memory,blkio:/docker/abc\n") == (None, "/docker/abc")
    assert oom.cgroup_paths("") == (None, None)
    assert oom.cgroup_paths("garbage\n3:memory\n") == (None, None)


def test_mountinfo_gives_the_v2_mounts_and_the_memory_controllers_v1_mount() -> None:
    assert oom.cgroup_mounts(MOUNTINFO) == [
        CgroupMount(1, "/", "/sys/fs/cgroup/memory"),
        CgroupMount(2, "/", "/sys/fs/cgroup/unified"),
    ]
    # a path with a space is written as an octal escape; a short line is skipped
    line = r"40 31 0:38 /a\040b /sys/fs/my\040cg rw - cgroup2 cgroup2 rw"
    assert oom.cgroup_mounts(f"{line}\n1 2 - x\n") == [CgroupMount(2, "/a b", "/sys/fs/my cg")]


def test_a_cgroup_path_becomes_its_folder_under_the_mount() -> None:
    mounts = oom.cgroup_mounts(MOUNTINFO)
    assert (
        oom.cgroup_folder("/process_api/1cdda6", mounts, 1)
        == "/sys/fs/cgroup/memory/process_api/1cdda6"
    )
    assert oom.cgroup_folder("/", mounts, 2) == "/sys/fs/cgroup/unified"
    # a container that mounts only its own part of the hierarchy
    own = [CgroupMount(2, "/docker/abc", "/sys/fs/cgroup")]
    assert oom.cgroup_folder("/docker/abc", own, 2) == "/sys/fs/cgroup"
    assert oom.cgroup_folder("/docker/abc/job", own, 2) == "/sys/fs/cgroup/job"
    assert oom.cgroup_folder("/docker/abcd", own, 2) is None, "a sibling, not a sub-folder"
    assert oom.cgroup_folder("/x", own, 1) is None, "no mount of that version"


def test_counters_and_limits_are_read_from_their_files() -> None:
    events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n"
    assert oom.counter(events, "oom_kill") == 2
    assert oom.counter(events, "oom") == 3, "the whole name, not a prefix"
    assert oom.counter("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n", "oom_kill") == 7
    assert oom.counter("oom_kill_disable 0\nunder_oom 0\n", "oom_kill") is None  # Linux < 4.13
    assert oom.counter("oom_kill x\n", "oom_kill") is None
    assert oom.limit_bytes("104857600\n") == 104_857_600
    assert oom.limit_bytes("max\n") is None
    assert oom.limit_bytes("9223372036854771712\n") is None, "v1's 'no limit'"
    assert oom.limit_bytes("") is None


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        # the kernel's counter went up: the out-of-memory killer, said as a fact
        (
            MemorySeen(kills_before=0, kills_after=1, rss=120 * MB, limit=400 * MB),
            Verdict(
                "out of memory",
                "the kernel's out-of-memory killer: cgroup oom_kill went 0 -> 1, limit 400 MB",
            ),
        ),
        (
            MemorySeen(kills_before=4, kills_after=6),
            Verdict(
                "out of memory", "the kernel's out-of-memory killer: cgroup oom_kill went 4 -> 6"
            ),
        ),
        # the counter did not move: another kill, even with memory at the limit
        (MemorySeen(kills_before=2, kills_after=2, rss=399 * MB, limit=400 * MB), None),
        # no counter: memory within 10% of the limit is a guess, worded as one
        (
            MemorySeen(rss=380 * MB, limit=400 * MB, limit_name="the machine's RAM"),
            Verdict(
                "probably out of memory",
                "a guess: SIGKILL with RSS at 380 MB of limit 400 MB, the machine's RAM",
            ),
        ),
        (
            MemorySeen(rss=360 * MB, limit=400 * MB),
            Verdict(
                "probably out of memory", "a guess: SIGKILL with RSS at 360 MB of limit 400 MB"
            ),
        ),
        (MemorySeen(rss=359 * MB, limit=400 * MB), None),
        (MemorySeen(rss=None, limit=400 * MB), None),
        (MemorySeen(rss=399 * MB, limit=None), None),
        (MemorySeen(), None),
        # a counter read only before (the cgroup went away): no verdict from it, memory decides
        (
            MemorySeen(kills_before=0, kills_after=None, rss=399 * MB, limit=400 * MB),
            Verdict(
                "probably out of memory", "a guess: SIGKILL with RSS at 399 MB of limit 400 MB"
            ),
        ),
    ],
)
def test_the_verdict(seen: MemorySeen, expected: Verdict | None) -> None:
    assert oom.verdict(seen) == expected


def test_a_verdict_reads_as_its_cause_and_its_evidence() -> None:
    said = Verdict(
        "out of memory", "the kernel's out-of-memory killer: cgroup oom_kill went 0 -> 1"
    )
    assert str(said) == (
        "out of memory (the kernel's out-of-memory killer: cgroup oom_kill went 0 -> 1)"
    )
