"""``devformance run --changed [--since REV]``: the options, and the lines that say why.

Each selected file is printed with the reason it runs (``src/orders.py:40-52 changed,
executed by this file in run R``); the files carried forward are counted, with the run
their results come from.
"""

from __future__ import annotations

import argparse
import os

from devformance_nb.store.database import Store
from devformance_nb.store.selection import Selection


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """``--changed`` and ``--since REV`` on a subcommand that runs tests."""
    parser.add_argument(
        "--changed",
        action="store_true",
        help="run only the test files a change since the last recorded run affects "
        "(the others carry their last result forward)",
    )
    parser.add_argument(
        "--since",
        metavar="REV",
        help="with --changed: what changed since this git revision (implies --changed)",
    )


def selection_lines(selection: Selection) -> list[str]:
    """What ran and why, then how many results were carried (from which runs)."""
    lines = [f"devformance: {selection.basis}"]
    for d in selection.decisions:
        if d.run:
            lines.append(f"  run    {d.file}: {d.reason}")
    carried = selection.carried
    if carried:
        sources = sorted({d.carried_from or "?" for d in carried})
        lines.append(
            f"  {len(carried)} of {len(selection.decisions)} files not run: nothing they "
            f"depend on changed; their results carried from run {', '.join(sources)}"
        )
    if not selection.selected:
        lines.append("  nothing to run")
    return lines


def stored_coverage_line(db: str | os.PathLike[str], run_id: str) -> str:
    """The coverage total stored for a --changed run, carried files included ('' if none):
    the live total only knows the files that ran now."""
    # the store directly, not analysis: the command works without pandas (no notebook extra)
    rows = Store(db).query(
        "SELECT coverage_percent, coverage_statements, coverage_note FROM runs WHERE run_id = ?",
        [run_id],
    )
    total = rows[0] if rows else None
    if total is None or total["coverage_percent"] is None:
        return ""
    text = (
        f"coverage with the carried files: {total['coverage_percent']:.1f}% of "
        f"{total['coverage_statements']:,} statements"
    )
    return text + (f" ({total['coverage_note']})" if total["coverage_note"] else "")
