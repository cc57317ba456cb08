"""UI cost of the live notebook view under a flood of output.

Usage: python bench/bench_ui.py [--seconds 10] [--files 20] [--rate 2000] [--suite 2000]

What it measures: 20 test files each print 2,000 lines a second (40,000
output events a second) and finish a test every 0.2 s. The events go through
the real ``LiveRunView`` the way the launcher loop delivers them (the state is
updated, then ``on_event``; ``tick`` every 0.25 s, ``close`` at the end), in
real time. The widgets talk to a counting comm (``comm.create_comm`` is
replaced): every message a kernel would send to the frontend is counted with
its JSON size; there is no kernel and no browser. "UI CPU" is the thread CPU
time spent inside the view's methods over the wall time (the run state's own
bookkeeping is the launcher's, not the UI's).

``--suite N`` measures a real run instead: N generated trivial test files (3 of them
failing), run by the real launcher (discovery, fork server, 2 workers, the readers and the
queue, coverage off) with a ``LiveRunView`` started as a notebook user starts it
(``view.start()``), widgets on the counting comm. It reports how long the view took to list
every file after discovery, the comm messages a second sampled each second of the run (the
steady state and the worst second), the widget models made, and the kernel's CPU (this
process: launcher, readers, loop and view) over the run's wall time.

Targets (DESIGN.md, the live notebook issue): under 100 messages a second,
under 10 % of a core for the UI. Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import comm
from comm.base_comm import BaseComm

from devformance_nb.core import events as ev
from devformance_nb.run.state import RunState

TICK = 0.25  # the launcher's TICK_SECONDS
STEP = 0.01  # events are delivered in 10 ms batches


class CountingComm(BaseComm):
    """A comm that counts what it would publish instead of sending it."""

    counts: dict[str, int] = {}  # noqa: RUF012 - class-wide tallies on purpose
    sizes: dict[str, int] = {}  # noqa: RUF012

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        CountingComm.counts[msg_type] = CountingComm.counts.get(msg_type, 0) + 1
        size = len(json.dumps(data, default=str, ensure_ascii=False).encode())
        CountingComm.sizes[msg_type] = CountingComm.sizes.get(msg_type, 0) + size


def install_counting_comm() -> None:
    """Every widget created from now on gets a CountingComm."""
    comm.create_comm = lambda *args, **kwargs: CountingComm(*args, **kwargs)


class Timer:
    """Thread CPU time spent in the view."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.ticks: list[float] = []

    def call(self, method: Any, *args: Any) -> float:
        start = time.thread_time()
        method(*args)
        spent = time.thread_time() - start
        self.cpu += spent
        return spent


def run(seconds: float, files: int, rate: int) -> dict[str, float]:
    """Drive the view for ``seconds`` of wall time; returns the figures."""
    install_counting_comm()
    from devformance_nb.ui.liveview import LiveRunView  # widgets only after the comm swap

    view = LiveRunView(root=".")
    keys = [f"tests/test_flood_{i:02d}.py" for i in range(files)]
    view.expect(keys)
    CountingComm.counts.clear()
    CountingComm.sizes.clear()
    state, timer = RunState(run_id="bench"), Timer()

    def deliver(*batch: ev.Event) -> None:
        # like the launcher: state first, then the observer; timed per batch so the
        # timer's own cost stays out of the figure
        for event in batch:
            state.apply(event)
        timer.call(_each, view.on_event, batch, state)

    deliver(ev.RunStarted(files=keys, root=".", workers=files, executor="spawn", t=time.time()))
    for key in keys:
        deliver(ev.FileStarted(file=key, path=key, pid=1, command=[], t=time.time()))
        deliver(ev.Collected(file=key, count=int(seconds * 5) + 1, nodeids=[]))
    lines, tests, events = 0, 0, 0
    start = time.monotonic()
    next_tick = start + TICK
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * rate)  # lines each file should have printed by now
        batch = [
            ev.Output(file=key, line=n, text=f"{key}::test_{n // 400} line {n} ok")
            for key in keys
            for n in range(lines + 1, due + 1)
        ]
        deliver(*batch)
        events += len(batch)
        lines = max(lines, due)
        while tests < int((now - start) * 5):
            tests += 1
            for key in keys:
                deliver(_phase(key, tests))
        if now >= next_tick:
            timer.ticks.append(timer.call(view.tick, state))
            next_tick += TICK
        time.sleep(max(0.0, STEP - (time.monotonic() - now)))
    wall = time.monotonic() - start
    during_run = CountingComm.counts.get("comm_msg", 0), CountingComm.sizes.get("comm_msg", 0)
    for key in keys:
        deliver(ev.FileFinished(file=key, status="passed", returncode=0, duration=wall))
    deliver(ev.RunDone(status="passed", duration=wall, t=time.time()))
    close_cpu = timer.call(view.close, state)
    return {
        "wall": wall,
        "lines_per_s": events / wall,
        "messages_per_s": during_run[0] / wall,
        "kb_per_s": during_run[1] / wall / 1000,
        "close_messages": CountingComm.counts.get("comm_msg", 0) - during_run[0],
        "ui_cpu_share": timer.cpu / wall,
        "on_event_us": (timer.cpu - sum(timer.ticks) - close_cpu) / max(events, 1) * 1e6,
        "tick_ms_mean": sum(timer.ticks) / max(len(timer.ticks), 1) * 1000,
        "tick_ms_max": max(timer.ticks, default=0.0) * 1000,
    }


def _each(method: Any, batch: tuple[ev.Event, ...], state: RunState) -> None:
    for event in batch:
        method(event, state)


def _phase(key: str, n: int) -> ev.TestPhase:
    return ev.TestPhase(
        file=key, nodeid=f"{key}::test_{n}", phase="teardown", outcome="passed", duration=0.0
    )


def table(r: dict[str, float], files: int, rate: int) -> str:
    """The figures as a markdown table."""
    rows = [
        ("output lines delivered", f"{r['lines_per_s']:,.0f}/s", f"{files} files x {rate}/s"),
        ("comm messages to the frontend", f"{r['messages_per_s']:.1f}/s", "< 100/s"),
        ("final redraw at the end of the run", f"{r['close_messages']:.0f} messages, once", ""),
        ("bytes to the frontend", f"{r['kb_per_s']:.0f} kB/s", "< 1,000 kB/s (server limit)"),
        ("UI CPU (share of one core)", f"{r['ui_cpu_share'] * 100:.1f} %", "< 10 %"),
        ("on_event", f"{r['on_event_us']:.2f} µs/event", ""),
        ("tick", f"{r['tick_ms_mean']:.1f} ms mean, {r['tick_ms_max']:.1f} ms max", ""),
    ]
    out = ["| measure | value | target |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


FAILING = (3, 0, -1)  # positions of the planted failing files (first, middle, last)


def make_suite(folder: str, files: int) -> list[str]:
    """``files`` trivial test files under ``folder``/tests, three failing; their keys."""
    import os

    tests = os.path.join(folder, "tests")
    os.makedirs(tests)
    keys = [f"tests/test_{i:04d}.py" for i in range(files)]
    failing = {keys[FAILING[0]], keys[len(keys) // 2], keys[-1]}
    for key in keys:
        body = "    assert 1 + 1 == 3, 'planted'\n" if key in failing else "    assert True\n"
        with open(os.path.join(folder, key), "w", encoding="utf-8") as fh:
            fh.write(f"def test_one():\n{body}")
    with open(os.path.join(folder, "pytest.ini"), "w", encoding="utf-8") as fh:
        fh.write("[pytest]\ntestpaths = tests\n")
    return keys


def suite_run(files: int, workers: int) -> dict[str, Any]:
    """A real run of ``files`` generated files with a live view; returns the figures."""
    import tempfile

    from ipywidgets.widgets.widget import _instances

    install_counting_comm()
    from devformance_nb.ui.liveview import LiveRunView  # widgets only after the comm swap

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as folder:
        make_suite(folder, files)
        view = LiveRunView(root=folder, workers=workers, coverage=False, db=f"{folder}/s.duckdb")
        listed: list[float] = []
        expect = view.expect

        def timed_expect(keys: Any) -> None:
            began = time.perf_counter()
            expect(keys)
            listed.append(time.perf_counter() - began)

        view.expect = timed_expect  # type: ignore[method-assign]
        models_before = len(_instances)
        cpu, began = time.process_time(), time.monotonic()
        run = view.start()
        models = len(_instances) - models_before
        per_second: list[int] = []
        last = CountingComm.counts.get("comm_msg", 0)
        while not run.wait(timeout=1.0).done:
            now_count = CountingComm.counts.get("comm_msg", 0)
            per_second.append(now_count - last)
            last = now_count
        wall, cpu = time.monotonic() - began, time.process_time() - cpu
        table_text = view.table.where.value
        failing_panes = len(view.accordion.children)
    steady = sorted(per_second)[len(per_second) // 2] if per_second else 0
    return {
        "files": files,
        "wall": wall,
        "listed_s": listed[0] if listed else float("nan"),
        "models": models,
        "messages_median": steady,
        "messages_max": max(per_second, default=0),
        "messages_mean": sum(per_second) / max(len(per_second), 1),
        "kernel_cpu_share": cpu / wall,
        "table": table_text,
        "panes_at_end": failing_panes,
    }


def suite_table(r: dict[str, Any]) -> str:
    """The real run's figures as a markdown table."""
    rows = [
        ("files (3 failing), 2 workers", f"{r['files']:,}", ""),
        ("every file listed after discovery", f"{r['listed_s']:.2f} s", "< 2 s"),
        ("widget models made for the view", f"{r['models']}", "follows what is shown"),
        ("comm messages a second, median second", f"{r['messages_median']}", "< 100/s"),
        ("comm messages a second, mean / worst second",
         f"{r['messages_mean']:.1f} / {r['messages_max']}", ""),
        ("kernel CPU over the run (launcher + view)", f"{r['kernel_cpu_share'] * 100:.0f} %", ""),
        ("run wall time", f"{r['wall']:.1f} s", ""),
        ("table at the end", r["table"], ""),
        ("live panes at the end", f"{r['panes_at_end']}", "the 3 failing files"),
    ]  # fmt: skip
    out = ["| measure | value | target |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


def main() -> None:
    """Run the bench and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rate", type=int, default=2000, help="lines per second per file")
    parser.add_argument("--suite", type=int, default=0, help="a real run of this many files")
    parser.add_argument("--workers", type=int, default=2, help="workers of the real run")
    args = parser.parse_args()
    if args.suite:
        figures_ = suite_run(args.suite, args.workers)
        print(f"bench_ui --suite {args.suite}: a real run through the launcher, counting comm\n")
        print(suite_table(figures_))
        return
    figures = run(args.seconds, args.files, args.rate)
    print(
        f"bench_ui: synthetic events through the real LiveRunView, counting comm, "
        f"{figures['wall']:.1f} s wall\n"
    )
    print(table(figures, args.files, args.rate))


if __name__ == "__main__":
    main()
