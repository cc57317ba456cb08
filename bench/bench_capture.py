"""Overhead of SQL capture per statement, inside real pytest children.

Run: python bench/bench_capture.py [--n 100000] [--orm-n 5000] [--stacks-n 2000] [--repeat 3]

Each workload is a generated pytest file run in a fresh child process, in four modes:

- off: plain pytest, the devformance plugin not loaded;
- plugin: the plugin loaded with ``capture_sql`` false (test events only);
- capture: the plugin with SQL capture on, exactly as the launcher runs a child;
- capture, null writer: capture on (test, phase and stack floor set as the plugin sets them)
  with a writer that drops events, to split the cost between the capture itself (timing,
  stack walk, encoding) and the events writer.

A paired run follows: one child alternating capture on and off round by round (a fresh
process per mode varies by 10-20% from one process to the next on a busy machine; rounds in
one process vary less). ``--instructions`` adds a count that no machine load disturbs:
instructions and simulated L1 cache misses per statement under valgrind's callgrind.

Workloads: ``sqlite3`` (N raw ``INSERT``/``SELECT`` statements on an in-memory database),
``orm`` (SQLAlchemy 2: ORM_N single-row inserts, each flushed, then ORM_N ORM selects) and
``new stacks`` (STACKS_N raw ``SELECT`` statements, each sent from a function of its own
through seven more project frames, a helper among them: every statement is a stack the child
has not seen, which it describes, hashes and writes once, as a library testing its own deep
code makes one for about every second statement).
The time reported is the workload loop measured inside the test: the best of ``--inner`` loops
in each of ``--repeat`` fresh children per mode (modes interleaved, so a burst of machine load
hits every mode). The per-statement figures use the child's CPU time (``time.process_time``,
every thread of it, so the events writer's flush thread counts), which other processes on a busy
machine disturb far less than wall time; the wall-time ratio is shown too. The best run is the
least disturbed one. Prints a markdown table (paste it into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SQLITE_TEST = """
import json, os, sqlite3, time

def loop(n):
    con = sqlite3.connect(":memory:")
    cur = con.cursor()
    cur.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(n // 2):
        cur.execute("INSERT INTO t (v) VALUES (?)", (i,))
        cur.execute("SELECT v FROM t WHERE id = ?", (i + 1,))
    return time.perf_counter() - began, time.process_time() - cpu

def test_statements():
    n = int(os.environ["BENCH_N"])
    times = [loop(n) for _ in range(int(os.environ["BENCH_INNER"]))]
    with open(os.environ["BENCH_OUT"], "w") as fh:
        json.dump({"times": times, "statements": n // 2 * 2}, fh)
"""

ORM_TEST = """
import json, os, time
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

class Base(DeclarativeBase):
    pass

class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))

def loop(n):
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        began, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            session.add(Item(name=f"item {i}"))
            session.flush()
        for i in range(n):
            session.execute(select(Item.name).where(Item.id == i + 1)).scalar_one()
        return time.perf_counter() - began, time.process_time() - cpu

def test_orm():
    n = int(os.environ["BENCH_ORM_N"])
    times = [loop(n) for _ in range(int(os.environ["BENCH_INNER"]))]
    with open(os.environ["BENCH_OUT"], "w") as fh:
        json.dump({"times": times, "statements": 2 * n}, fh)
"""

STACKS_TEST = """
import json, os, sqlite3, time
import stackapp

def loop(calls):
    con = sqlite3.connect(":memory:")
    cur = con.cursor()
    began, cpu = time.perf_counter(), time.process_time()
    for call in calls:
        call(cur)
    return time.perf_counter() - began, time.process_time() - cpu

def test_new_stacks():
    times = [loop(calls) for calls in stackapp.LOOPS]  # each loop its own functions
    with open(os.environ["BENCH_OUT"], "w") as fh:
        json.dump({"times": times, "statements": len(stackapp.LOOPS[0])}, fh)
"""


def stack_app(loops: int, per_loop: int) -> str:
    """A project module whose every function sends one statement from a stack of its own:
    ``s<loop>_<k>`` -> ``step0`` ... ``step5`` -> ``send`` (a helper: handed the SQL)."""
    lines = ["def send(cur, sql, i):", "    return cur.execute(sql, (i,)).fetchone()", ""]
    for level in range(6):
        then = f"step{level + 1}(cur, i)" if level < 5 else 'send(cur, "SELECT ?", i)'
        lines += [f"def step{level}(cur, i):", f"    return {then}", ""]
    names = []
    for loop in range(loops):
        row = []
        for k in range(per_loop):
            lines += [f"def s{loop}_{k}(cur):", f"    return step0(cur, {k})", ""]
            row.append(f"s{loop}_{k}")
        names.append("[" + ", ".join(row) + "]")
    lines.append("LOOPS = [" + ", ".join(names) + "]")
    return "\n".join(lines) + "\n"


#: in "null writer" mode this conftest starts capture itself, on a writer that drops events
CONFTEST = """
import os
import sys

import pytest

if os.environ.get("BENCH_NULL_WRITER"):
    from devformance_nb.plugin.capture import start_capture
    from devformance_nb.core.contract import ChildOptions
    from devformance_nb.plugin import TestContext

    class NullWriter:
        def write(self, event):
            return event

        def write_fields(self, kind, fields, number=""):
            pass

        def flush(self):
            pass

    CONTEXT = TestContext()
    CAPTURE = start_capture(NullWriter(), CONTEXT, ChildOptions(root=os.path.dirname(__file__)))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(item):
        # as the plugin does: the test and phase, and the hook's frame as the walk's floor
        CONTEXT.nodeid, CONTEXT.phase, CONTEXT.floor = item.nodeid, "call", sys._getframe(1)
        try:
            return (yield)
        finally:
            CONTEXT.floor = None
"""

PAIRED_TEST = """
import json, os, sys
from devformance_nb.plugin.capture import start_capture
from devformance_nb.core.contract import ChildOptions
from devformance_nb.plugin import TestContext, events_writer
import test_orm, test_sqlite  # SQLAlchemy is imported before capture: its listeners go on at once

def test_paired():
    here = os.path.dirname(os.path.abspath(__file__))
    context = TestContext()
    context.nodeid, context.phase, context.floor = "paired", "call", sys._getframe(1)
    workloads = {
        "sqlite3": lambda: test_sqlite.loop(int(os.environ["BENCH_N"])),
        "orm": lambda: test_orm.loop(int(os.environ["BENCH_ORM_N"])),
    }
    cpu = {name: {"off": [], "on": []} for name in workloads}
    for round_ in range(int(os.environ["BENCH_ROUNDS"])):
        for mode in ("on", "off") if round_ % 2 else ("off", "on"):
            for name, run in workloads.items():
                if mode == "on":
                    # the child's own writer, as the plugin opens it
                    writer = events_writer(os.path.join(here, "paired.jsonl"), "bench", "bench")
                    capture = start_capture(writer, context, ChildOptions(root=here))
                cpu[name][mode].append(run()[1])
                if mode == "on":
                    capture.stop()
                    writer.close()
    with open(os.environ["BENCH_OUT"], "w") as fh:
        json.dump(cpu, fh)
"""

#: one workload loop under valgrind, capture on or off (``--instructions``)
COUNTED = """
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
mode, workload, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "on":
    from devformance_nb.plugin.capture import start_capture
    from devformance_nb.core.contract import ChildOptions
    from devformance_nb.plugin import TestContext, events_writer
    context = TestContext()
    context.nodeid, context.phase, context.floor = "counted", "call", sys._getframe()
    here = os.path.dirname(os.path.abspath(__file__))
    writer = events_writer(os.path.join(here, "counted.jsonl"), "b", "b")
    capture = start_capture(writer, context, ChildOptions(root=here))
import test_orm, test_sqlite
(test_sqlite if workload == "sqlite3" else test_orm).loop(n)
if mode == "on":
    capture.stop()
    writer.close()
"""
#: callgrind's events with --cache-sim=yes, in the order of its "Collected" line
CALLGRIND_EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")

MODES = ["off", "plugin", "capture", "capture, null writer"]


def make_suite(folder: Path, stacks: int = 2_000, loops: int = 3) -> dict[str, Path]:
    """Write the workload files and the conftest; return workload name -> file. ``stacks``
    statements a loop, ``loops`` loops, for the new-stacks workload."""
    files = {
        "sqlite3": folder / "test_sqlite.py",
        "orm": folder / "test_orm.py",
        "new stacks": folder / "test_stacks.py",
    }
    files["sqlite3"].write_text(textwrap.dedent(SQLITE_TEST), encoding="utf-8")
    files["orm"].write_text(textwrap.dedent(ORM_TEST), encoding="utf-8")
    files["new stacks"].write_text(textwrap.dedent(STACKS_TEST), encoding="utf-8")
    (folder / "stackapp.py").write_text(stack_app(loops, stacks), encoding="utf-8")
    (folder / "paired_test.py").write_text(textwrap.dedent(PAIRED_TEST), encoding="utf-8")
    (folder / "counted.py").write_text(textwrap.dedent(COUNTED), encoding="utf-8")
    (folder / "conftest.py").write_text(textwrap.dedent(CONFTEST), encoding="utf-8")
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    return files


def child_env(mode: str, folder: Path, sizes: dict[str, int], out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVFORMANCE_")}
    env.update(
        BENCH_N=str(sizes["n"]),
        BENCH_ORM_N=str(sizes["orm_n"]),
        BENCH_INNER=str(sizes["inner"]),
        BENCH_OUT=str(out),
    )
    if mode == "capture, null writer":
        env["BENCH_NULL_WRITER"] = "1"
    if mode in ("plugin", "capture"):
        env.update(
            DEVFORMANCE_EVENTS=str(folder / "events.jsonl"),
            DEVFORMANCE_RUN_ID="bench",
            DEVFORMANCE_FILE="bench",
            DEVFORMANCE_OPTIONS=json.dumps({"capture_sql": mode == "capture", "root": str(folder)}),
        )
    return env


@dataclass
class Row:
    """One workload: statements, query events, loop CPU and wall seconds per mode."""

    workload: str
    statements: int = 0
    events: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)


def run_once(mode: str, test_file: Path, sizes: dict[str, int]) -> tuple[float, float, int, int]:
    """(best loop CPU s, best loop wall s, statements per loop, query events) for one child."""
    folder = test_file.parent
    out = folder / "result.json"
    events = folder / "events.jsonl"
    for stale in (out, events):
        stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider"]
    if mode in ("plugin", "capture"):
        command += ["-p", "devformance_nb.plugin"]
    env = child_env(mode, folder, sizes, out)
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    result = json.loads(out.read_text(encoding="utf-8"))
    written = 0
    if events.exists():
        with open(events, encoding="utf-8") as fh:
            written = sum('"kind":"query"' in line for line in fh)
    wall = min(float(w) for w, _ in result["times"])
    cpu = min(float(c) for _, c in result["times"])
    return cpu, wall, int(result["statements"]), written // len(result["times"])


def measure(files: dict[str, Path], sizes: dict[str, int], repeat: int) -> list[Row]:
    """Best loop time of every workload in every mode (modes interleaved per repeat)."""
    rows = []
    for workload, test_file in files.items():
        row = Row(workload)
        cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
        wall: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(repeat):
            for mode in MODES:  # interleaved, so a burst of machine load hits every mode
                seconds, elapsed, row.statements, written = run_once(mode, test_file, sizes)
                cpu[mode].append(seconds)
                wall[mode].append(elapsed)
                row.events = max(row.events, written)
        row.seconds = {mode: min(times) for mode, times in cpu.items()}
        row.wall = {mode: min(times) for mode, times in wall.items()}
        rows.append(row)
    return rows


def paired(folder: Path, sizes: dict[str, int], rounds: int) -> str:
    """Capture on and off alternating in one child: the ratios, best and median of rounds."""
    out = folder / "paired.json"
    env = child_env("off", folder, sizes, out)
    env["BENCH_ROUNDS"] = str(rounds)
    command = [sys.executable, "-m", "pytest", "paired_test.py", "-q", "-p", "no:cacheprovider"]
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    cpu: dict[str, dict[str, list[float]]] = json.loads(out.read_text(encoding="utf-8"))
    statements = {"sqlite3": sizes["n"] // 2 * 2, "orm": 2 * sizes["orm_n"]}
    lines = [
        "| workload | off us/stmt (best) | on us/stmt (best) | overhead us/stmt | x off (best) "
        "| x off (median of rounds) |",
        "|---|---|---|---|---|---|",
    ]
    for name, modes in cpu.items():
        off, on = min(modes["off"]), min(modes["on"])
        ratios = sorted(a / b for a, b in zip(modes["on"], modes["off"], strict=True))
        per = 1e6 / statements[name]
        lines.append(
            f"| {name} | {off * per:.2f} | {on * per:.2f} | {(on - off) * per:+.2f} "
            f"| {on / off:.2f} | {ratios[len(ratios) // 2]:.2f} |"
        )
    return "\n".join(lines)


def counted(folder: Path, mode: str, workload: str, n: int) -> dict[str, int]:
    """Callgrind's event counts (instructions, simulated cache misses) for one run."""
    out = folder / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", "--cache-sim=yes", f"--callgrind-out-file={out}"]
    script = [sys.executable, str(folder / "counted.py"), mode, workload, str(n)]
    proc = subprocess.run(
        [*valgrind, *script], cwd=folder, capture_output=True, text=True, check=True
    )
    line = next(x for x in proc.stderr.splitlines() if "Collected :" in x)
    values = [int(v) for v in line.split("Collected :")[1].split()]
    return dict(zip(CALLGRIND_EVENTS, values, strict=False))


def instructions(folder: Path) -> str:
    """Per-statement instructions and L1 misses, capture on against off, under callgrind.

    Deterministic: each workload runs at two sizes and the difference is divided by the extra
    statements, so start-up costs cancel out. Machine load does not change these counts.
    """
    runs = {"sqlite3": (2_000, 12_000), "orm": (200, 700)}
    per_loop = {"sqlite3": 1, "orm": 2}  # statements per unit of n
    lines = [
        "| workload | instructions/stmt off | on | x off | L1 misses/stmt off (I+D) | on |",
        "|---|---|---|---|---|---|",
    ]
    for workload, (small, large) in runs.items():
        per: dict[str, dict[str, float]] = {}
        for mode in ("off", "on"):
            low, high = (
                counted(folder, mode, workload, small),
                counted(folder, mode, workload, large),
            )
            extra = (large - small) * per_loop[workload]
            per[mode] = {k: (high[k] - low[k]) / extra for k in high}
        off, on = per["off"], per["on"]
        l1 = {m: per[m]["I1mr"] + per[m]["D1mr"] + per[m]["D1mw"] for m in per}
        lines.append(
            f"| {workload} | {off['Ir']:,.0f} | {on['Ir']:,.0f} | {on['Ir'] / off['Ir']:.2f} "
            f"| {l1['off']:,.0f} | {l1['on']:,.0f} |"
        )
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    """The markdown table of per-statement costs and ratios against "off"."""
    lines = [
        "| workload | statements (events) | mode | loop CPU s | us/stmt | overhead us/stmt "
        "| x off (CPU) | x off (wall) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        off = row.seconds["off"]
        for mode in MODES:
            seconds = row.seconds[mode]
            per = seconds / row.statements * 1e6
            extra = (seconds - off) / row.statements * 1e6
            lines.append(
                f"| {row.workload} | {row.statements} ({row.events}) | {mode} | {seconds:.3f} "
                f"| {per:.2f} | {extra:+.2f} | {seconds / off:.2f} "
                f"| {row.wall[mode] / row.wall['off']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="raw sqlite3 statements")
    parser.add_argument("--orm-n", type=int, default=5_000, help="ORM inserts, as many selects")
    parser.add_argument(
        "--stacks-n", type=int, default=2_000, help="statements from new stacks, a loop"
    )
    parser.add_argument("--repeat", type=int, default=5, help="fresh children per mode")
    parser.add_argument("--inner", type=int, default=3, help="workload loops per child")
    parser.add_argument("--rounds", type=int, default=6, help="on/off rounds, paired child")
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions under callgrind"
    )
    args = parser.parse_args()
    sizes = {"n": args.n, "orm_n": args.orm_n, "inner": args.inner}
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        files = make_suite(Path(tmp), args.stacks_n, args.inner)
        rows = measure(files, sizes, args.repeat)
        pairs = paired(Path(tmp), sizes, args.rounds)
        counts = instructions(Path(tmp)) if args.instructions else ""
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
        f"{os.getloadavg()[0]:.1f}\n\nfresh children (SQLAlchemy imported after capture starts), "
        f"best of {args.repeat} children x {args.inner} loops; events per loop\n"
    )
    print(table(rows))
    print(
        f"\npaired: capture on and off alternating in one child, {args.rounds} rounds "
        "(SQLAlchemy imported before capture starts, as in a fork-server child)\n"
    )
    print(pairs)
    if counts:
        print("\ninstructions and simulated L1 misses per statement (valgrind callgrind)\n")
        print(counts)


if __name__ == "__main__":
    main()
