"""N+1 findings on real open-source test suites, grouped for reading by hand.

Run: python bench/detect_real_suites.py [--workdir DIR] [--suite NAME ...] [--src CHECKOUT]

Each suite is fetched as its PyPI sdist and installed into a virtualenv of its own, as
``bench_real_suites.py`` does (the same ``--workdir`` layout, so both share downloads). Then
``devformance run --workers 2 --no-coverage`` runs the suite, with SQL capture, and the run's
findings are printed grouped by (table, frame to change), each group with its tests, counts,
the frame that sent the statement and the innermost frames of its stored stack: what a person
needs to classify each finding against the code (genuine N+1 or not; is the frame shown the
line to change). The classification itself is in bench/RESULTS.md.

``--src CHECKOUT`` runs the children with another checkout of devformance_nb first on
``PYTHONPATH`` (an older commit, to show what changed); its store has no stacks table before
schema 4, so only findings are printed then.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from bench_real_suites import SUITES, Suite, prepare

DETECTION_SUITES = {s.name: s for s in SUITES}


def findings(store: Path) -> list[tuple[object, ...]]:
    """(table, frame to change, count, test, sent by, frames, relation) of the store's newest
    run (relation: the ORM relation loaded lazily; '' before schema 5)."""
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        has_stacks = bool(
            con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'stacks'"
            ).fetchone()[0]  # type: ignore[index]
        )
        has_relation = bool(
            con.execute(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'n_plus_one' AND column_name = 'relation'"
            ).fetchone()[0]  # type: ignore[index]
        )
        relation = "coalesce(n.relation, '')" if has_relation else "''"
        extra = (
            f"n.sent_by, s.frames, {relation} FROM n_plus_one n "
            "LEFT JOIN stacks s USING (stack_hash)"
            if has_stacks
            else "'' AS sent_by, [] AS frames, '' FROM n_plus_one n"
        )
        return con.execute(
            f"SELECT n.table_name, n.caller, n.count, n.nodeid, {extra} "
            "WHERE n.run_id = (SELECT run_id FROM runs ORDER BY started DESC LIMIT 1) "
            "ORDER BY n.table_name, n.caller, n.nodeid"
        ).fetchall()
    finally:
        con.close()


def unused_eager(store: Path) -> list[tuple[object, ...]]:
    """(relation, option, count, frame to change, test) of the newest run's unused eager
    loads ([] before schema 6)."""
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        known = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'unused_eager_loads'"
        ).fetchone()
        if not known or not known[0]:
            return []
        return con.execute(
            "SELECT relation, option, count, caller, nodeid FROM unused_eager_loads "
            "WHERE run_id = (SELECT run_id FROM runs ORDER BY started DESC LIMIT 1) "
            "ORDER BY relation, caller, nodeid"
        ).fetchall()
    finally:
        con.close()


def eager_report(rows: list[tuple[object, ...]]) -> str:
    """The unused eager loads, one line each, as text."""
    out = [f"{len(rows)} unused eager loads"]
    for relation, option, count, caller, nodeid in rows:
        out.append(f"   {relation} by {option} x{count} at {caller or '?'}  ({nodeid})")
    return "\n".join(out)


def report(rows: list[tuple[object, ...]]) -> str:
    """The findings grouped by (table, frame to change), as text."""
    groups: dict[tuple[object, object], list[tuple[object, ...]]] = defaultdict(list)
    for row in rows:
        groups[(row[0], row[1])].append(row)
    out = [f"{len(rows)} findings in {len(groups)} groups"]
    for (table, caller), members in groups.items():
        out.append(f"== {len(members)} x {table or '?'} at {caller or '(no project frame)'}")
        if members[0][4] and members[0][4] != caller:
            out.append(f"   sent by {members[0][4]}")
        for member in members:
            lazy = f"  [lazy load of {member[6]}]" if member[6] else ""
            out.append(f"   x{member[2]} {member[3]}{lazy}")
        frames = list(members[0][5] or [])[-6:]
        if frames:
            out.append("   stack: " + " <- ".join(reversed(frames)))
    return "\n".join(out)


def run(suite: Suite, workdir: Path, src: str) -> str:
    """Run ``suite`` under devformance and return its grouped findings."""
    project, python = prepare(suite, workdir)
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "store.duckdb"
        command = [str(python), "-m", "devformance_nb.cli", "run", "--workers", "2"]
        command += ["--no-coverage", "--db", str(store), *suite.paths]
        if suite.pytest_args:
            command += ["--", *suite.pytest_args]
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
        summary = [line for line in done.stdout.splitlines() if line.startswith("devformance:")]
        found = report(findings(store))
        return "\n".join(
            [f"# {suite.name} ({suite.kind})", *summary, found, eager_report(unused_eager(store))]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="keep downloads here")
    parser.add_argument("--suite", action="append", choices=sorted(DETECTION_SUITES))
    parser.add_argument("--src", default="", help="another devformance_nb checkout to run")
    args = parser.parse_args()
    names = args.suite or ["djangorestframework", "sqlmodel"]
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        for name in names:
            print(run(DETECTION_SUITES[name], workdir, args.src))
            print()


if __name__ == "__main__":
    main()
