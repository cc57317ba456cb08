"""The cost of sampling running children's process trees (CPU, memory, threads).

Run: python bench/bench_sampler.py [--children 32] [--seconds 10]

``--children`` idle Python processes (each as a test file's child would be, with one
process of its own under it) are sampled the way the readers do (through ``OomWatch``, which
reads the memory cgroup's out-of-memory count before each sample), each every
``SAMPLE_INTERVAL`` seconds, for ``--seconds``; the parent's CPU time over the wall time
is the sampler's cost, as a share of one core. Target (issue "Live CPU and memory"): under
1% of a core with 32 children running. Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from devformance_nb.run.oomwatch import OomWatch
from devformance_nb.run.sampler import SAMPLE_INTERVAL, ProcessSampler

CHILD = (
    "import subprocess, sys; "
    "p = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], "
    "stdin=subprocess.PIPE); sys.stdin.read(); p.stdin.close(); p.wait()"
)


def measure(children: int, seconds: float) -> dict[str, float]:
    """Sample ``children`` process trees for ``seconds``; the figures."""
    procs = [
        subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE)
        for _ in range(children)
    ]
    try:
        samplers = [(ProcessSampler(p.pid), OomWatch(p.pid)) for p in procs]
        for sampler, watch in samplers:  # the first sample finds each tree's processes
            watch.sample(sampler)
        samples, began, cpu = 0, time.monotonic(), time.process_time()
        while (now := time.monotonic()) - began < seconds:
            for sampler, watch in samplers:
                if sampler.due(now) and watch.sample(sampler, now) is not None:
                    samples += 1
            time.sleep(0.05)  # the readers' select timeout
        wall, used = time.monotonic() - began, time.process_time() - cpu
    finally:
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in procs:
            p.wait()
    return {
        "children": children,
        "samples_per_s": samples / wall,
        "per_sample_us": used / max(samples, 1) * 1e6,
        "core_share": used / wall,
    }


def main() -> None:
    """Run the bench and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    r = measure(args.children, args.seconds)
    print(f"sampling every {SAMPLE_INTERVAL} s, {args.seconds:g} s\n")
    print("| children | samples a second | CPU per sample | share of one core | target |")
    print("|---|---|---|---|---|")
    print(
        f"| {r['children']} | {r['samples_per_s']:.0f} | {r['per_sample_us']:.0f} us "
        f"| {r['core_share'] * 100:.2f} % | < 1 % |"
    )


if __name__ == "__main__":
    main()
