"""Altair charts of the analysis DataFrames: a DataFrame in, a chart out, nothing else.

No SQL, no files, no display: each function takes the frame the analysis
function of the same name returns and builds a chart with tooltips on every
mark. Each chart's description starts with ``devformance_nb``, and making one
puts :mod:`~devformance_nb.charts.renderer` in front of Altair's renderer, so
it draws with no network (other charts render as before). Importing this module
registers the ``devformance`` theme without enabling it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec

import altair as alt
import pandas as pd

from devformance_nb.charts import renderer
from devformance_nb.charts.renderer import MARK, THEME_CONFIG

THEME = "devformance"
#: what every function returns: a chart, a layer or a concatenation of charts
Chart = alt.Chart | alt.LayerChart | alt.VConcatChart | alt.HConcatChart | alt.FacetChart
#: colours of outcomes and statuses, shared by every chart
OUTCOME_COLORS = {
    "passed": "#2f9e44",
    "failed": "#e03131",
    "error": "#c2255c",
    "skipped": "#868e96",
    "xfailed": "#74b816",
    "xpassed": "#f59f00",
    "crashed": "#862e9c",
    "timeout": "#e8590c",
    "interrupted": "#495057",
}
#: width of the charts with one column per run
RUN_WIDTH = 600
_RUN = alt.X("run_id:O", title="run", sort="ascending", axis=alt.Axis(labelAngle=-40))
_P = ParamSpec("_P")


@alt.theme.register(THEME, enable=False)
def devformance_theme() -> alt.theme.ThemeConfig:
    """The charts' look as an Altair theme, for other charts: ``alt.theme.enable("devformance")``.

    Our own charts get this look whatever theme is active; registering it enables nothing.
    """
    return {"config": THEME_CONFIG}  # type: ignore[typeddict-item]


def ours(make: Callable[_P, Chart]) -> Callable[_P, Chart]:
    """Mark what ``make`` returns as ours (its description) and show our charts offline."""

    @functools.wraps(make)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Chart:
        chart = make(*args, **kwargs)
        summary = (make.__doc__ or make.__name__).strip().splitlines()[0]
        renderer.enable()
        described: Chart = chart.properties(description=f"{MARK} {make.__name__}: {summary}")
        return described

    return wrapper


def _outcome_color(df: pd.DataFrame, field: str, title: str) -> alt.Color:
    present = set(df[field]) if field in df else set()
    domain = [k for k in OUTCOME_COLORS if k in present] or list(OUTCOME_COLORS)
    return alt.Color(
        f"{field}:N",
        title=title,
        scale=alt.Scale(domain=domain, range=[OUTCOME_COLORS[k] for k in domain]),
    )


def chart_title(text: str, subtitle: str) -> alt.TitleParams:
    return alt.TitleParams(text, subtitle=subtitle)


@ours
def runs_overview(df: pd.DataFrame) -> Chart:
    """Each run's wall time, coloured by its status (frame of ``analysis.runs_overview``)."""
    pick = alt.selection_point(fields=["status"], bind="legend")
    chart: Chart = (
        alt.Chart(df, title=chart_title("Runs", "wall time per run; click the legend to pick"))
        .mark_bar()
        .encode(
            x=_RUN,
            y=alt.Y("duration_s:Q", title="wall time (s)"),
            color=_outcome_color(df, "status", "status"),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.25)),
            tooltip=[
                "run_id:N",
                "started:T",
                "status:N",
                "git_branch:N",
                "git_commit:N",
                alt.Tooltip("duration_s:Q", format=".1f"),
                "tests:Q",
                "failed:Q",
                "queries:Q",
                "slow_queries:Q",
                "n_plus_one:Q",
                alt.Tooltip("coverage_percent:Q", format=".2f"),
            ],
        )
        .add_params(pick)
        .properties(width=RUN_WIDTH)
    )
    return chart


@ours
def slow_query_ranking(df: pd.DataFrame) -> Chart:
    """Fingerprints ranked by their slowest run; p50 and p95 ticks; click a bar to highlight.

    Frame of ``analysis.slowest_queries``.
    """
    pick = alt.selection_point(fields=["fingerprint_hash"], on="click", empty=True)
    kind = alt.selection_point(fields=["statement_type"], bind="legend")
    label = "datum.fingerprint_hash + '  ' + substring(datum.fingerprint, 0, 70)"
    y = alt.Y("label:N", title=None, sort=alt.EncodingSortField("max_ms", order="descending"))
    tooltip = [
        "fingerprint:N",
        "statement_type:N",
        "count:Q",
        "runs:Q",
        alt.Tooltip("total_ms:Q", format=".1f"),
        alt.Tooltip("p50_ms:Q", format=".2f"),
        alt.Tooltip("p95_ms:Q", format=".2f"),
        alt.Tooltip("max_ms:Q", format=".1f"),
        "slow_count:Q",
        "call_site:N",
        "n_call_sites:Q",
        "n_tests:Q",
    ]
    base = alt.Chart(
        df, title=chart_title("Slowest queries", "max per fingerprint; ticks: p50 and p95 (ms)")
    ).transform_calculate(label=label)
    bars = (
        base.mark_bar()
        .encode(
            y=y,
            x=alt.X("max_ms:Q", title="milliseconds"),
            color=alt.Color("statement_type:N", title="statement"),
            opacity=alt.condition(pick & kind, alt.value(1.0), alt.value(0.3)),
            tooltip=tooltip,
        )
        .add_params(pick, kind)
    )
    p95 = base.mark_tick(color="#222", thickness=2).encode(y=y, x="p95_ms:Q", tooltip=tooltip)
    p50 = base.mark_tick(color="#888", thickness=2).encode(y=y, x="p50_ms:Q", tooltip=tooltip)
    return alt.layer(bars, p95, p50)


@ours
def n_plus_one_hotspots(df: pd.DataFrame) -> Chart:
    """N+1 call sites by the SELECTs they issued, per table; faded once fixed.

    Frame of ``analysis.n_plus_one_hotspots``; click the legend to pick a table.
    """
    table = alt.selection_point(fields=["table_name"], bind="legend")
    chart: Chart = (
        alt.Chart(
            df, title=chart_title("N+1 hotspots", "repeated SELECTs per call site; faded: gone now")
        )
        .mark_bar()
        .encode(
            y=alt.Y("site:N", title=None, sort="-x"),
            x=alt.X("sum(queries):Q", title="repeated SELECTs (all runs)"),
            color=alt.Color("table_name:N", title="table"),
            fillOpacity=alt.FillOpacity(
                "open:N", title="still open", scale=alt.Scale(domain=[False, True], range=[0.3, 1])
            ),
            opacity=alt.condition(table, alt.value(1.0), alt.value(0.15)),
            tooltip=[
                "site:N",
                "caller:N",
                "table_name:N",
                "runs:Q",
                "findings:Q",
                "queries:Q",
                "max_count:Q",
                "n_tests:Q",
                "first_seen_run:N",
                "last_seen_run:N",
                "open:N",
                "hint:N",
            ],
        )
        .add_params(table)
    )
    return chart


@ours
def coverage_total(df: pd.DataFrame) -> Chart:
    """The run total over runs (frame of ``analysis.coverage_over_runs``)."""
    base = alt.Chart(df, title=chart_title("Coverage", "total per run (%)")).encode(
        x=_RUN,
        y=alt.Y("percent:Q", title="covered (%)", scale=alt.Scale(zero=False)),
        tooltip=[
            "run_id:N",
            "git_branch:N",
            "git_commit:N",
            alt.Tooltip("percent:Q", format=".2f"),
            "covered:Q",
            "statements:Q",
            "missing:Q",
        ],
    )
    line = base.mark_line(color="#1971c2")
    chart: Chart = alt.layer(line, base.mark_point(filled=True, size=60)).properties(
        width=RUN_WIDTH
    )
    return chart


@ours
def coverage_per_file(df: pd.DataFrame) -> Chart:
    """Each source file's percent over runs; click the legend to pick files.

    Frame of ``analysis.coverage_per_file``.
    """
    pick = alt.selection_point(fields=["source_file"], bind="legend")
    chart: Chart = (
        alt.Chart(df, title=chart_title("Coverage per source file", "percent per run"))
        .mark_line(point=True)
        .encode(
            x=_RUN,
            y=alt.Y("percent:Q", title="covered (%)"),
            color=alt.Color("source_file:N", title="source file"),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
            tooltip=[
                "run_id:N",
                "source_file:N",
                alt.Tooltip("percent:Q", format=".2f"),
                "covered:Q",
                "statements:Q",
                "missing_count:Q",
                "missing:N",
            ],
        )
        .add_params(pick)
        .properties(width=RUN_WIDTH)
    )
    return chart


@ours
def coverage_over_runs(total: pd.DataFrame, per_file: pd.DataFrame) -> Chart:
    """The total above, each source file below (frames of the two coverage functions)."""
    return alt.vconcat(coverage_total(total), coverage_per_file(per_file))


@ours
def coverage_contribution(df: pd.DataFrame) -> Chart:
    """Lines each test file covers, and those only it covers.

    Frame of ``analysis.coverage_contribution``.
    """
    tooltip = [
        "test_file:N",
        "covered:Q",
        "unique:Q",
        alt.Tooltip("covered_percent:Q", format=".2f"),
        alt.Tooltip("unique_percent:Q", format=".2f"),
        "source_files:Q",
    ]
    y = alt.Y("test_file:N", title=None, sort="-x")
    titled = chart_title("What each test file covers", "light: lines covered; dark: only by it")
    base = alt.Chart(df, title=titled)
    covered = base.mark_bar(color="#a5d8ff").encode(
        y=y, x=alt.X("covered:Q", title="lines"), tooltip=tooltip
    )
    unique = base.mark_bar(color="#1864ab").encode(y=y, x="unique:Q", tooltip=tooltip)
    return alt.layer(covered, unique)


@ours
def query_count_heatmap(df: pd.DataFrame, value: str = "queries") -> Chart:
    """Statements per test file (rows) and run (columns); click a file to highlight it.

    Frame of ``analysis.query_counts_per_file``; ``value`` may be ``query_ms`` too.
    """
    pick = alt.selection_point(fields=["file"], on="click")
    chart: Chart = (
        alt.Chart(df, title=chart_title("Queries per test file", f"{value} per run"))
        .mark_rect()
        .encode(
            x=_RUN,
            y=alt.Y("file:N", title=None),
            color=alt.Color(
                f"{value}:Q", title=value, scale=alt.Scale(scheme="orangered", type="symlog")
            ),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.3)),
            tooltip=[
                "run_id:N",
                "file:N",
                "status:N",
                "tests:Q",
                "queries:Q",
                alt.Tooltip("query_ms:Q", format=".1f"),
                "slow_queries:Q",
                "n_plus_one:Q",
            ],
        )
        .add_params(pick)
        .properties(width=RUN_WIDTH)
    )
    return chart


@ours
def duration_distribution(df: pd.DataFrame) -> Chart:
    """Histogram of test durations (log scale) by outcome; brush it to see those tests below.

    Frame of ``analysis.durations_per_test``.
    """
    brush = alt.selection_interval(encodings=["x"])
    ms = "max(datum.duration_s * 1000, 0.01)"
    tooltip: list[Any] = [
        "nodeid:N",
        "file:N",
        "run_id:N",
        "outcome:N",
        alt.Tooltip("duration_s:Q", format=".3f"),
    ]
    histogram = (
        alt.Chart(df, title=chart_title("Test durations", "drag across the bars to pick tests"))
        .transform_calculate(log_ms=f"log({ms}) / LN10")
        .mark_bar()
        .encode(
            x=alt.X(
                "log_ms:Q",
                bin=alt.Bin(step=0.25),
                title="test duration (ms, log scale)",
                axis=alt.Axis(labelExpr="format(pow(10, datum.value), '.2~r')"),
            ),
            y=alt.Y("count():Q", title="tests"),
            color=_outcome_color(df, "outcome", "outcome"),
            tooltip=[alt.Tooltip("count():Q", title="tests"), "outcome:N"],
        )
        .add_params(brush)
        .properties(height=180, width=RUN_WIDTH)
    )
    strip = (
        alt.Chart(df)
        .transform_calculate(log_ms=f"log({ms}) / LN10", ms=ms)
        .transform_filter(brush)
        .mark_tick(thickness=2)
        .encode(
            x=alt.X("ms:Q", title="duration (ms)", scale=alt.Scale(type="log")),
            y=alt.Y("file:N", title=None),
            color=_outcome_color(df, "outcome", "outcome"),
            tooltip=tooltip,
        )
        .properties(width=RUN_WIDTH)
    )
    return alt.vconcat(histogram, strip)


@ours
def slowest_tests(df: pd.DataFrame) -> Chart:
    """Median duration per test with its min-max range (frame of ``analysis.slowest_tests``)."""
    y = alt.Y("nodeid:N", title=None, sort=alt.EncodingSortField("median_s", order="descending"))
    tooltip = [
        "nodeid:N",
        "runs:Q",
        alt.Tooltip("median_s:Q", format=".3f"),
        alt.Tooltip("min_s:Q", format=".3f"),
        alt.Tooltip("max_s:Q", format=".3f"),
        alt.Tooltip("latest_s:Q", format=".3f"),
        "latest_outcome:N",
    ]
    base = alt.Chart(df, title=chart_title("Slowest tests", "median, with min to max over runs"))
    bars = base.mark_bar(color="#748ffc").encode(
        y=y, x=alt.X("median_s:Q", title="seconds"), tooltip=tooltip
    )
    spread = base.mark_rule(color="#364fc7").encode(y=y, x="min_s:Q", x2="max_s:Q", tooltip=tooltip)
    return alt.layer(bars, spread)


@ours
def run_comparison(query_changes: pd.DataFrame, coverage_changes: pd.DataFrame) -> Chart:
    """What changed from run a to run b: statements per test and coverage per source file.

    Frames ``query_changes`` and ``coverage_changes`` of a ``compare.Comparison``;
    only rows that changed are drawn. Click a bar to highlight it.
    """
    pick = alt.selection_point(fields=["nodeid"], on="click")
    worse = alt.condition("datum.queries_delta > 0", alt.value("#e03131"), alt.value("#2f9e44"))
    queries = (
        alt.Chart(query_changes, title=chart_title("Statements per test", "b minus a"))
        .transform_filter("isValid(datum.queries_delta) && datum.queries_delta != 0")
        .mark_bar()
        .encode(
            y=alt.Y("nodeid:N", title=None, sort="x"),
            x=alt.X("queries_delta:Q", title="statements (b - a)"),
            color=worse,
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.3)),
            tooltip=[
                "nodeid:N",
                "queries_a:Q",
                "queries_b:Q",
                "queries_delta:Q",
                alt.Tooltip("query_ms_a:Q", format=".2f"),
                alt.Tooltip("query_ms_b:Q", format=".2f"),
            ],
        )
        .add_params(pick)
    )
    better = alt.condition("datum.delta < 0", alt.value("#e03131"), alt.value("#2f9e44"))
    coverage = (
        alt.Chart(coverage_changes, title=chart_title("Coverage per source file", "b minus a"))
        .transform_filter("isValid(datum.delta) && datum.delta != 0")
        .mark_bar()
        .encode(
            y=alt.Y("source_file:N", title=None, sort="x"),
            x=alt.X("delta:Q", title="percentage points (b - a)"),
            color=better,
            tooltip=[
                "source_file:N",
                alt.Tooltip("percent_a:Q", format=".2f"),
                alt.Tooltip("percent_b:Q", format=".2f"),
                alt.Tooltip("delta:Q", format="+.2f"),
                "missing_a:N",
                "missing_b:N",
            ],
        )
    )
    chart: Chart = alt.hconcat(queries, coverage).resolve_scale(color="independent")
    return chart
