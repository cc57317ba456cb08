"""Change-based selection against the full suite, on seeded code changes to the two demos.

For each demo (a copy of examples/bookshop and examples/library_django, the latter on
SQLite), one full run records the baseline. Then each seeded change is applied alone to the
copy: ``run_tests(changed=True)`` runs the selected subset (against a copy of the baseline
store, so every change is judged from the same baseline) and a full run gives the truth. A
*miss* is a test file whose status in the full run differs from the status the selected run
recorded for it (run, or carried) while it was not selected. Changes: a statement that
raises at the top of a function, a harmless statement in a function, a deleted last line of
a function, a renamed function, a module-level statement (harmless, and one that raises on
import), a data file a test reads (bench scaffolding: one test file and its data file are
added to each copy), the conftest (harmless, and a failing autouse fixture).

Also measured: save-to-first-child, from just before a change is written to the first
child's start as the launcher reports it, with the fork server warm and the files named
one by one (as ``devformance watch`` does after its first round; its 50 ms debounce comes
on top).

Usage: python bench/bench_selection.py [--changes 52] [--seed 7]
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # a restored file never meets a stale .pyc
sys.path.insert(0, str(REPO))

from devformance_nb.api.facade import run_tests  # noqa: E402
from devformance_nb.core import events as ev  # noqa: E402
from devformance_nb.logic.discovery import discover  # noqa: E402

DATA_TEST = """\
from pathlib import Path

def test_expected_rate():
    text = (Path(__file__).parent / "data" / "rate.txt").read_text()
    assert text.strip() == "7"
"""


@dataclass
class Change:
    kind: str
    path: str
    old: str
    new: str
    what: str


def functions(source: str) -> list[ast.FunctionDef]:
    tree = ast.parse(source)
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.body]


def body_start(fn: ast.FunctionDef) -> ast.stmt:
    first = fn.body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    return fn.body[1] if is_doc and len(fn.body) > 1 else first


def insert_before(source: str, line: int, text: str) -> str:
    lines = source.splitlines(keepends=True)
    indent = lines[line - 1][: len(lines[line - 1]) - len(lines[line - 1].lstrip())]
    lines.insert(line - 1, f"{indent}{text}\n")
    return "".join(lines)


def seeded_changes(
    root: Path, package: str, conftest: str, rng: random.Random, n: int
) -> list[Change]:
    """``n`` changes to the copy at ``root``: mostly in functions, a few of every other kind."""
    sources = sorted(p for p in (root / package).rglob("*.py") if "migrations" not in p.parts)
    out: list[Change] = []
    fixed = [
        ("data", "tests/data/rate.txt", "7\n", "8\n", "the data file test_bench_data reads"),
        ("conftest", conftest, None, "\n# a comment\nMUTATED = 1\n", "harmless conftest line"),
        (
            "conftest",
            conftest,
            None,
            "\n\nimport pytest as _p\n\n@_p.fixture(autouse=True)\ndef _mutated():\n"
            "    raise RuntimeError('mutated')\n",
            "failing autouse fixture",
        ),
    ]
    for kind, rel, old, add, what in fixed:
        text = (root / rel).read_text()
        out.append(Change(kind, rel, text, add if old is not None else text + add, what))
    while len(out) < n:
        path = rng.choice(sources)
        rel = path.relative_to(root).as_posix()
        text = path.read_text()
        fns = functions(text)
        kind = rng.choice(
            ["raise", "raise", "raise", "benign", "benign", "delete", "rename", "module", "import"]
        )
        if kind in ("module", "import") or not fns:
            line = "MUTATED_CONSTANT = 1" if kind == "module" else "raise RuntimeError('import')"
            out.append(Change(kind if fns else "module", rel, text, text + f"\n{line}\n", line))
            continue
        fn = rng.choice(fns)
        first = body_start(fn)
        if kind == "raise":
            new = insert_before(text, first.lineno, "raise RuntimeError('mutated')")
        elif kind == "benign":
            new = insert_before(text, first.lineno, "_mutated = 0")
        elif kind == "delete":
            last = fn.body[-1]
            if len(fn.body) < 2 or last.end_lineno is None:
                continue
            lines = text.splitlines(keepends=True)
            new = "".join(lines[: last.lineno - 1] + lines[last.end_lineno :])
        else:
            lines = text.splitlines(keepends=True)
            lines[fn.lineno - 1] = lines[fn.lineno - 1].replace(
                f"def {fn.name}(", f"def {fn.name}_renamed(", 1
            )
            new = "".join(lines)
        out.append(Change(kind, rel, text, new, f"{fn.name} ({kind})"))
    return out


class FirstStart:
    """Observer: when the first child started (monotonic)."""

    def __init__(self) -> None:
        self.at: float | None = None

    def on_event(self, event: Any, state: Any) -> None:
        if isinstance(event, ev.FileStarted) and self.at is None:
            self.at = time.monotonic()

    def tick(self, state: Any) -> None:
        pass

    def close(self, state: Any) -> None:
        pass


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def statuses(run: Any) -> dict[str, str]:
    return {fs.key: fs.status for fs in run.files}


def bench_app(
    name: str, package: str, conftest: str, n: int, seed: int, work: Path
) -> dict[str, Any]:
    root = work / name
    shutil.copytree(
        REPO / "examples" / name,
        root,
        ignore=shutil.ignore_patterns(".devformance", "__pycache__", "*.sqlite3"),
    )
    (root / "tests" / "data").mkdir(exist_ok=True)
    (root / "tests" / "data" / "rate.txt").write_text("7\n")
    (root / "tests" / "test_bench_data.py").write_text(DATA_TEST)
    base_db = work / f"{name}-base.duckdb"
    t = time.monotonic()
    base = run_tests(root=root, db=base_db, executor="forkserver")
    print(
        f"{name}: baseline {base.status}, {len(base.files)} files, {time.monotonic() - t:.1f} s",
        flush=True,
    )
    baseline = statuses(base)
    files = [str(f.path) for f in discover(root)]
    rows = []
    for i, change in enumerate(seeded_changes(root, package, conftest, random.Random(seed), n)):
        db = work / f"{name}-{i}.duckdb"
        shutil.copy(base_db, db)
        first = FirstStart()
        saved = time.monotonic()
        (root / change.path).write_text(change.new)
        try:
            t0 = time.monotonic()
            sel = run_tests(
                files, root=root, db=db, executor="forkserver", changed=True, observers=[first]
            )
            t_sel = time.monotonic() - t0
            t0 = time.monotonic()
            full = run_tests(files, root=root, store=False, executor="forkserver")
            t_full = time.monotonic() - t0
        finally:
            (root / change.path).write_text(change.old)
        assert sel.selection is not None
        chosen = set(sel.selection.selected)
        recorded = {
            d.file: (statuses(sel).get(d.file) if d.run else baseline.get(d.file))
            for d in sel.selection.decisions
        }
        truth = statuses(full)
        misses = [f for f, s in truth.items() if f not in chosen and recorded.get(f) != s]
        row = {
            "app": name,
            "kind": change.kind,
            "change": f"{change.path}: {change.what}",
            "files": len(truth),
            "selected": len(chosen),
            "changed_outcomes": sum(1 for f, s in truth.items() if baseline.get(f) != s),
            "misses": misses,
            "t_sel": t_sel,
            "t_full": t_full,
            "first_child": (first.at - saved) if first.at is not None else None,
        }
        rows.append(row)
        print(
            f"  {i:2d} {change.kind:8s} sel {len(chosen):2d}/{len(truth)} outcomes changed "
            f"{row['changed_outcomes']:2d} misses {len(misses)} sel {t_sel:.1f}s "
            f"full {t_full:.1f}s  {row['change']}",
            flush=True,
        )
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=52, help="seeded changes in all")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-selection-") as tmp:
        work = Path(tmp)
        half = args.changes // 2
        rows += bench_app(
            "bookshop", "bookshop", "tests/conftest.py", args.changes - half, args.seed, work
        )["rows"]
        rows += bench_app("library_django", "library", "tests/conftest.py", half, args.seed, work)[
            "rows"
        ]
    misses = [(r["change"], m) for r in rows for m in r["misses"]]
    fn_kinds = ("raise", "benign", "delete")
    saved = sum(r["t_full"] for r in rows) - sum(r["t_sel"] for r in rows)
    firsts = [r["first_child"] for r in rows if r["first_child"] is not None]
    print()
    head = "| app | changes | misses | median fraction selected | one-function changes: "
    print(head + "median fraction selected | selected runs s | full runs s |")
    print("|---|---|---|---|---|---|---|")
    for app in ("bookshop", "library_django", "all"):
        rs = [r for r in rows if app in ("all", r["app"])]
        fr = [r["selected"] / r["files"] for r in rs]
        ff = [r["selected"] / r["files"] for r in rs if r["kind"] in fn_kinds]
        n_miss = sum(len(r["misses"]) for r in rs)
        t_sel, t_full = sum(r["t_sel"] for r in rs), sum(r["t_full"] for r in rs)
        print(
            f"| {app} | {len(rs)} | {n_miss} | {med(fr):.0%} | {med(ff):.0%} "
            f"| {t_sel:.1f} | {t_full:.1f} |"
        )
    print()
    by_kind: dict[str, list[float]] = {}
    for r in rows:
        by_kind.setdefault(r["kind"], []).append(r["selected"] / r["files"])
    print("| kind | changes | median fraction selected |")
    print("|---|---|---|")
    for kind, fr in sorted(by_kind.items()):
        print(f"| {kind} | {len(fr)} | {med(fr):.0%} |")
    print()
    print(f"time saved: {saved:.1f} s of {sum(r['t_full'] for r in rows):.1f} s")
    if firsts:
        print(
            f"save to first child (selected runs that ran a file, n={len(firsts)}): "
            f"median {med(firsts) * 1000:.0f} ms, max {max(firsts) * 1000:.0f} ms"
        )
    for change, miss in misses:
        print(f"MISS: {miss} after {change}")


if __name__ == "__main__":
    main()
