"""Samples of a real child's process tree: memory, threads, processes and CPU."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from devformance_nb.run import sampler as sampling
from devformance_nb.run.sampler import ProcessSampler

HOLDS_MEMORY = """
import subprocess, sys
data = bytearray(120 * 1000 * 1000)  # touched: resident, not only reserved
for i in range(0, len(data), 4096):
    data[i] = 1
helper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                          stdin=subprocess.PIPE)
print("ready", flush=True)
sys.stdin.read()
helper.stdin.close()
helper.wait()
"""


def sampler_for(pid: int, way: str) -> ProcessSampler:
    """A sampler reading /proc itself (Linux) or through psutil (elsewhere)."""
    sampler = ProcessSampler(pid)
    if way == "psutil":
        sampler._usage, sampler._find = sampling._psutil_usage, sampling._psutil_tree
    return sampler


@pytest.mark.parametrize("way", ["proc", "psutil"])
def test_a_child_and_its_own_child_are_sampled_until_they_are_gone(way: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDS_MEMORY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        sampler = sampler_for(child.pid, way)
        first = sampler.sample()
        assert first is not None
        assert first.processes == 2, "the child and the process it started"
        assert first.rss >= 120e6, "the touched buffer is resident"
        assert first.threads >= 2 and first.cpu_percent == 0.0  # no earlier sample yet
        assert first.cpu_user + first.cpu_system > 0
        deadline = time.monotonic() + 30
        while not sampler.due(time.monotonic()) and time.monotonic() < deadline:
            pass  # the next sample is due a fraction of a second later
        second = sampler.sample()
        assert second is not None and second.cpu_percent >= 0.0
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert sampler_for(child.pid, way).sample() is None, "gone: no sample, no error"


@pytest.mark.parametrize("way", ["proc", "psutil"])
def test_a_child_killed_and_not_yet_reaped_gives_no_sample(way: str) -> None:
    # a sample is proof the child lives (the out-of-memory watch counts on it): a zombie,
    # whose memory is already gone, gives none
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        assert sampler_for(child.pid, way).sample() is not None
        child.kill()
        deadline = time.monotonic() + 30
        while b") Z " not in Path(f"/proc/{child.pid}/stat").read_bytes():
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)
        assert sampler_for(child.pid, way).sample() is None
    finally:
        child.wait(timeout=30)
