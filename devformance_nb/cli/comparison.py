"""The text of ``devformance compare``: findings, changes, then the regressions.

Kept apart from the HTML report so that comparing runs in CI needs only the bare
package: nothing here imports Altair, ipywidgets or vl-convert.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from devformance_nb.analysis.compare import Comparison


def comparison_text(cmp: Comparison, max_coverage_drop: float = 0.0) -> str:
    """``devformance compare``'s text: findings, changes, then the regressions."""
    lines = [f"run {cmp.b} against run {cmp.a}"]

    def block(title: str, df: pd.DataFrame, fmt: Any) -> None:
        lines.append(f"{title}: {len(df)}")
        lines.extend(f"  {fmt(r)}" for r in df.itertuples())

    block("new N+1", cmp.new_n_plus_one, lambda r: f"{r.caller}  {r.table_name} x{r.queries}")
    block("fixed N+1", cmp.fixed_n_plus_one, lambda r: f"{r.caller}  {r.table_name} x{r.queries}")
    block("new slow queries", cmp.new_slow_queries, lambda r: f"{r.max_ms:.0f} ms {r.call_site}")
    block("newly failing", cmp.newly_failing, lambda r: f"{r.nodeid} ({r.outcome_b})")
    block("broken files", cmp.broken_files, lambda r: f"{r.file} ({r.status_b})")
    block("missing tests", cmp.missing_tests, lambda r: f"{r.nodeid} (was {r.outcome_a})")
    changed = cmp.query_changes[cmp.query_changes["queries_delta"].fillna(0) != 0]
    block("query count changes", changed, lambda r: f"{r.queries_delta:+d}  {r.nodeid}")
    if cmp.coverage_delta is not None:
        lines.append(
            f"coverage: {cmp.coverage_a:.2f}% -> {cmp.coverage_b:.2f}% "
            f"({cmp.coverage_delta:+.2f} points)"
        )
        moved = cmp.coverage_changes[cmp.coverage_changes["delta"].fillna(0) != 0]
        lines.extend(f"  {r.delta:+.2f}  {r.source_file}" for r in moved.itertuples())
    regressions = cmp.regressions(max_coverage_drop)
    lines.append(f"regressions: {len(regressions)}")
    lines.extend(f"  {r.kind}: {r.subject}  {r.detail}" for r in regressions.itertuples())
    return "\n".join(lines)
