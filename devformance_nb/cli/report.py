"""The HTML report (one self-contained file) and the text of ``devformance compare``.

The report inlines Vega, Vega-Lite and Vega-Embed (the bundle that
``vl-convert-python`` ships), every chart's spec and data, and escapes all
SQL, test output and messages: it opens from disk with no network.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from devformance_nb import analysis, charts
from devformance_nb.analysis.compare import Comparison, compare_runs
from devformance_nb.analysis.select import Runs, StoreLike, as_store
from devformance_nb.analysis.statements import compact
from devformance_nb.charts.renderer import spec_of, vega_bundle

# re-exported: notebooks written before the text moved import it from here
from devformance_nb.cli.comparison import comparison_text as comparison_text

_CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1250px;
color:#212529;padding:0 1em}h1{margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid
#dee2e6;padding-bottom:.2em}.meta{color:#666}table{border-collapse:collapse;margin:.8em 0;
font-size:13px}th,td{border:1px solid #dee2e6;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f1f3f5}pre{background:#f8f9fa;padding:.5em;margin:0;white-space:pre-wrap;
max-width:900px;font-size:12px}.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid
#dee2e6;border-radius:6px;padding:.6em 1em;min-width:8em}.card b{display:block;font-size:1.4em}
.bad{color:#c92a2a}.good{color:#2b8a3e}.chart{margin:1em 0}
"""


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    text = json.dumps(value, default=str)
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(str(v) for v in value))
    if value is None or (not isinstance(value, (list, tuple, str)) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, (pd.Timestamp, datetime)):
        return html.escape(value.strftime("%Y-%m-%d %H:%M:%S"))
    return html.escape(str(value))


def html_table(df: pd.DataFrame, columns: Sequence[str], pre: Iterable[str] = ()) -> str:
    """``columns`` of ``df`` as an HTML table; ``pre`` columns as preformatted text. Escaped."""
    if df.empty:
        return "<p class='meta'>none</p>"
    pre = set(pre)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for record in df[list(columns)].to_dict("records"):
        cells = []
        for c in columns:
            text = _cell(record[c])
            cells.append(f"<td><pre>{text}</pre></td>" if c in pre and text else f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


class _Page:
    """The report's body, built section by section."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.specs: list[dict[str, Any]] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def section(self, title: str, note: str = "") -> None:
        self.add(f"<h2>{html.escape(title)}</h2>")
        if note:
            self.add(f"<p class='meta'>{html.escape(note)}</p>")

    def chart(self, chart: alt.TopLevelMixin) -> None:
        spec = spec_of(chart)
        self.add(f"<div class='chart' id='chart-{len(self.specs)}'></div>")
        self.specs.append(spec)


def _cards(run: dict[str, Any]) -> str:
    coverage = run.get("coverage_percent")
    items = [
        ("status", run["status"]),
        ("tests", run["tests"]),
        ("failed", (run["failed"] or 0) + (run["errors"] or 0)),
        ("queries", run["queries"]),
        ("slow queries", run["slow_queries"]),
        ("N+1 findings", run["n_plus_one"]),
        ("coverage", "-" if coverage is None or pd.isna(coverage) else f"{coverage:.1f}%"),
    ]
    return "<div class='cards'>" + "".join(
        f"<div class='card'><b>{_cell(v)}</b>{html.escape(k)}</div>" for k, v in items
    ) + "</div>"  # fmt: skip


def _comparison(page: _Page, cmp: Comparison) -> None:
    page.section(f"Latest run against the one before ({cmp.a} → {cmp.b})")
    regressions = cmp.regressions()
    verdict = (
        f"<p class='bad'>{len(regressions)} regressions</p>"
        if len(regressions)
        else "<p class='good'>no regressions</p>"
    )
    page.add(verdict + html_table(regressions, ["kind", "subject", "detail"]))
    page.add("<h3>Reported, never failing</h3>")
    page.add("<p class='meta'>flaky tests: failing now, but passed and failed on one commit</p>")
    page.add(html_table(cmp.notices(), ["kind", "subject", "detail"]))
    page.add("<h3>N+1 fixed</h3>")
    page.add(html_table(cmp.fixed_n_plus_one, ["caller", "table_name", "queries", "tests"]))
    page.chart(charts.run_comparison(cmp.query_changes, cmp.coverage_changes))
    _statement_changes(page, cmp.statement_changes)


def _statement_changes(page: _Page, changes: pd.DataFrame | None) -> None:
    """Per test, each statement it sends more or fewer of: the chart and the table."""
    page.add("<h3>Which statements changed, per test</h3>")
    if changes is None or changes.empty:
        page.add("<p class='meta'>no test sends other statements than before</p>")
        return
    page.chart(charts.statement_changes(changes))
    table = pd.DataFrame(
        {
            "test": changes["nodeid"],
            "change": changes["change"],
            # a base count is a median over base runs: whole, or a half
            "count_a": [f"{n:g}" for n in changes["count_a"]],
            "count_b": [f"{n:g}" for n in changes["count_b"]],
            "statement": [compact(f) if isinstance(f, str) else "" for f in changes["fingerprint"]],
            "caller": changes["caller"],
        }
    )
    page.add(html_table(table, list(table.columns), pre=["statement"]))


def build_report(store: StoreLike, runs: Runs = "last:20", title: str | None = None) -> str:
    """The report of the selected runs as one self-contained HTML page."""
    s = as_store(store)
    overview = analysis.runs_overview(s, runs)
    page = _Page()
    if overview.empty:
        page.add("<p>No runs recorded yet: start one with <code>devformance run</code>.</p>")
        return _html(title or "devformance report", s.path, page, "no runs")
    ids = list(overview["run_id"])
    latest = ids[-1]
    page.add(_cards(overview.iloc[-1].to_dict()))
    page.section("Runs", f"{len(ids)} runs, {ids[0]} to {latest}")
    page.chart(charts.runs_overview(overview))
    columns = ["run_id", "started", "status", "git_branch", "tests", "failed", "queries"]
    page.add(html_table(overview, [*columns, "slow_queries", "n_plus_one", "coverage_percent"]))
    if len(ids) > 1:
        _comparison(page, compare_runs(s, ids[-2], latest))

    slow = analysis.slowest_queries(s, ids, limit=15)
    page.section("Slowest queries", "by fingerprint over the selected runs, slowest first")
    page.chart(charts.slow_query_ranking(slow))
    cols = ["max_ms", "p95_ms", "count", "slow_count", "call_site", "fingerprint"]
    page.add(html_table(slow, cols, pre=["fingerprint"]))

    hotspots = analysis.n_plus_one_hotspots(s, ids)
    page.section("N+1 hotspots", "the same SELECT from the same code, once per parent row")
    page.chart(charts.n_plus_one_hotspots(hotspots))
    cols = [
        "caller",
        "sent_by",
        "table_name",
        "queries",
        "runs",
        "first_seen_run",
        "last_seen_run",
        "open",
    ]
    page.add(html_table(hotspots, [*cols, "hint", "example_sql"], pre=["example_sql"]))

    unread = analysis.unused_eager_loads(s, latest)
    page.section("Unused eager loads", f"latest run {latest}: loaded with the rows, never read")
    if unread.empty:
        page.add("<p class='meta'>none</p>")
    else:
        page.add(html_table(unread, ["relation", "option", "caller", "nodeid", "count", "hint"]))

    page.section("Queries per test file")
    page.chart(charts.query_count_heatmap(analysis.query_counts_per_file(s, ids)))

    page.section("Test durations", f"latest run {latest}")
    page.chart(charts.duration_distribution(analysis.durations_per_test(s, latest)))
    page.chart(charts.slowest_tests(analysis.slowest_tests(s, ids, limit=15)))

    page.section(
        "Worker timeline",
        f"latest run {latest}: each test file on the worker slot that ran it, start to end; "
        "empty space is a worker waiting",
    )
    page.chart(charts.worker_timeline(analysis.worker_timeline(s, latest)))

    total = analysis.coverage_over_runs(s, ids)
    page.section("Coverage")
    if total.empty:
        page.add("<p class='meta'>no coverage recorded in these runs</p>")
    else:
        page.chart(charts.coverage_over_runs(total, analysis.coverage_per_file(s, ids)))
        contribution = analysis.coverage_contribution(s, latest)
        page.chart(charts.coverage_contribution(contribution))
        cols = ["test_file", "covered", "unique", "unique_percent", "unique_in"]
        page.add(html_table(contribution, cols))

    page.section("Flaky tests", "passed and failed on the same git commit")
    flaky = analysis.flaky_tests(s, ids)
    page.add(html_table(flaky, ["nodeid", "git_commit", "passed", "failed", "branches"]))

    page.section("Failures in the latest run")
    failing = analysis.failures(s, latest)
    cols = ["file", "nodeid", "outcome", "message", "output"]
    page.add(html_table(failing, cols, pre=["message", "output"]))
    return _html(title or "devformance report", s.path, page, f"{len(ids)} runs")


def _html(title: str, db: Path, page: _Page, what: str) -> str:
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    embeds = "\n".join(
        f"vegaEmbed('#chart-{i}', specs[{i}], opts).catch(e => show({i}, e));"
        for i in range(len(page.specs))
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style>
<script>{vega_bundle() if page.specs else ""}</script></head>
<body><h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(what)} from <code>{html.escape(os.fspath(db))}</code>,
made {made}</p>
{"".join(page.parts)}
<script>
const specs = {_script_json(page.specs)};
const opts = {{"renderer": "svg", "actions": false}};
function show(i, e) {{
  document.getElementById('chart-' + i).textContent = 'chart failed: ' + e;
}}
{embeds}
</script></body></html>
"""


def write_report(out: str | os.PathLike[str], store: StoreLike, runs: Runs = "last:20") -> Path:
    """Write the report of the selected runs to ``out`` (one HTML file); returns its path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(store, runs), encoding="utf-8")
    return path
