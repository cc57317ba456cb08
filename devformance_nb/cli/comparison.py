"""What ``devformance compare`` prints: text (the terminal), Markdown (a pull-request comment
or a CI job summary) and JSON (other tools).

Kept apart from the HTML report so that comparing runs in CI needs only the bare
package: nothing here imports Altair, ipywidgets or vl-convert.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

import pandas as pd

from devformance_nb.analysis.compare import Comparison
from devformance_nb.analysis.gate import Gate, statement_change_text

#: the formats of ``--format``
FORMATS = ("text", "markdown", "json")
#: statement changes listed per test in the text and the Markdown
STATEMENTS_PER_TEST = 8


def against(cmp: Comparison) -> str:
    """What ``b`` was compared with: ``run A``, or a baseline of several runs."""
    if len(cmp.base) > 1:
        return f"a baseline of {len(cmp.base)} runs ({cmp.base[0]} to {cmp.base[-1]})"
    return f"run {cmp.a}"


def comparison_text(
    cmp: Comparison, max_coverage_drop: float = 0.0, gate: Gate | None = None
) -> str:
    """``devformance compare``'s text: findings, changes, then the regressions (those
    ``gate`` counts; without one, the default gate allowing ``max_coverage_drop`` points)."""
    gate = gate if gate is not None else Gate(coverage_drop=max_coverage_drop)
    lines = [f"run {cmp.b} against {against(cmp)}"]

    def block(title: str, df: pd.DataFrame | None, fmt: Callable[[Any], str]) -> None:
        df = df if df is not None else pd.DataFrame()
        lines.append(f"{title}: {len(df)}")
        lines.extend(f"  {fmt(r)}" for r in df.itertuples())

    block("new N+1", cmp.new_n_plus_one, lambda r: f"{r.caller}  {r.table_name} x{r.queries}")
    block("fixed N+1", cmp.fixed_n_plus_one, lambda r: f"{r.caller}  {r.table_name} x{r.queries}")
    block("new slow queries", cmp.new_slow_queries, lambda r: f"{r.max_ms:.0f} ms {r.call_site}")
    block("newly failing", cmp.newly_failing, lambda r: f"{r.nodeid} ({r.outcome_b})")
    block("broken files", cmp.broken_files, lambda r: f"{r.file} ({r.status_b})")
    block("missing tests", cmp.missing_tests, lambda r: f"{r.nodeid} (was {r.outcome_a})")
    block("over budget", cmp.over_budget, lambda r: f"{r.nodeid} ({r.queries} > {r.budget})")
    changed = cmp.query_changes[cmp.query_changes["queries_delta"].fillna(0) != 0]
    block("query count changes", changed, lambda r: f"{r.queries_delta:+g}  {r.nodeid}")
    lines.extend(_statement_lines(cmp))
    if cmp.coverage_delta is not None:
        lines.append(
            f"coverage: {cmp.coverage_a:.2f}% -> {cmp.coverage_b:.2f}% "
            f"({cmp.coverage_delta:+.2f} points)"
        )
        moved = cmp.coverage_changes[cmp.coverage_changes["delta"].fillna(0) != 0]
        lines.extend(f"  {r.delta:+.2f}  {r.source_file}" for r in moved.itertuples())
    notices = cmp.notices()
    if len(notices):
        lines.append(f"reported, not failing: {len(notices)}")
        lines.extend(f"  {r.kind}: {r.subject}  {r.detail}" for r in notices.itertuples())
    regressions = cmp.regressions(gate=gate)
    lines.append(f"regressions: {len(regressions)}")
    lines.extend(f"  {r.kind}: {r.subject}  {r.detail}" for r in regressions.itertuples())
    return "\n".join(lines)


def _statement_lines(cmp: Comparison) -> list[str]:
    df = cmp.statement_changes
    if df is None:
        return []
    lines = [f"statement changes: {df['nodeid'].nunique()} tests"]
    for nodeid, mine in df.groupby("nodeid", sort=True):
        lines.append(f"  {nodeid}")
        rows = list(mine.itertuples())
        lines.extend(f"    {statement_change_text(r)}" for r in rows[:STATEMENTS_PER_TEST])
        if len(rows) > STATEMENTS_PER_TEST:
            lines.append(f"    ... {len(rows) - STATEMENTS_PER_TEST} more")
    return lines


def comparison_markdown(cmp: Comparison, gate: Gate | None = None) -> str:
    """The comparison as Markdown for a pull-request comment or ``$GITHUB_STEP_SUMMARY``:
    the verdict, the regressions and notices as tables, then per test the statements that
    changed, and coverage (GitHub-flavoured: tables, ``<details>``)."""
    gate = gate if gate is not None else Gate()
    regressions = cmp.regressions(gate=gate)
    count = len(regressions)
    verdict = f"{count} regression{'s' * (count != 1)}" if count else "no regressions"
    out = [f"## devformance: {verdict}", "", f"Run `{cmp.b}` against {_md(against(cmp))}.", ""]
    if len(regressions):
        out += markdown_table(regressions, ["kind", "subject", "detail"])
    notices = cmp.notices()
    if len(notices):
        out += ["### Reported, not failing", ""]
        out += markdown_table(notices, ["kind", "subject", "detail"])
    out += _md_statements(cmp)
    if cmp.coverage_delta is not None:
        out += [
            "### Coverage",
            "",
            f"{cmp.coverage_a:.2f}% → {cmp.coverage_b:.2f}% ({cmp.coverage_delta:+.2f} points)",
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def _md_statements(cmp: Comparison) -> list[str]:
    df = cmp.statement_changes
    if df is None or df.empty:
        return []
    tests = df["nodeid"].nunique()
    out = ["### Statements per test", "", f"<details><summary>{tests} tests send other "
           "statements than before</summary>", ""]  # fmt: skip
    shown = df.groupby("nodeid", sort=True).head(STATEMENTS_PER_TEST)
    table = shown.assign(
        test=shown["nodeid"],
        base=shown["count_a"].map(lambda v: f"{v:g}"),
        new=shown["count_b"].map(lambda v: f"{v:g}"),
        statement=shown["fingerprint"],
        at=shown["caller"].fillna(""),
    )
    columns = ["test", "change", "base", "new", "statement", "at"]
    out += markdown_table(table, columns, code="statement")
    return [*out, "</details>", ""]


def markdown_table(df: pd.DataFrame, columns: list[str], code: str | None = None) -> list[str]:
    """A GitHub Markdown table; cells escaped (pipes, newlines, HTML), ``code`` as code."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in df[columns].itertuples(index=False):
        cells = []
        for name, value in zip(columns, row, strict=True):
            text = _md(" ".join(str(value).split()))
            cells.append(f"<code>{text}</code>" if name == code else text)
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _md(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "&#124;")


def comparison_json(cmp: Comparison, gate: Gate | None = None) -> str:
    """The comparison as JSON: the runs, ``failed`` (the gate's verdict), the regressions,
    notices, and every frame of the comparison as a list of records."""
    gate = gate if gate is not None else Gate()
    regressions = cmp.regressions(gate=gate)
    frames = {
        "regressions": regressions,
        "notices": cmp.notices(),
        "new_n_plus_one": cmp.new_n_plus_one,
        "fixed_n_plus_one": cmp.fixed_n_plus_one,
        "new_slow_queries": cmp.new_slow_queries,
        "newly_failing": cmp.newly_failing,
        "broken_files": cmp.broken_files,
        "missing_tests": cmp.missing_tests,
        "over_budget": cmp.over_budget,
        "statement_changes": cmp.statement_changes,
        "query_changes": cmp.query_changes,
        "coverage_changes": cmp.coverage_changes,
        "memory_changes": cmp.memory_changes,
    }
    data: dict[str, Any] = {
        "a": cmp.a,
        "b": cmp.b,
        "base": list(cmp.base),
        "failed": bool(len(regressions)),
        "coverage": {"a": cmp.coverage_a, "b": cmp.coverage_b, "delta": cmp.coverage_delta},
    }
    for name, df in frames.items():
        records = "[]" if df is None else df.to_json(orient="records", date_format="iso")
        data[name] = json.loads(records)
    return json.dumps(data, indent=2)


def render(cmp: Comparison, fmt: str, gate: Gate) -> str:
    """The comparison in ``fmt`` (one of ``FORMATS``)."""
    if fmt == "markdown":
        return comparison_markdown(cmp, gate)
    if fmt == "json":
        return comparison_json(cmp, gate)
    return comparison_text(cmp, gate=gate)
