"""Charts of what test files cost the machine (frames of ``analysis.usage``)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from devformance_nb.charts.figures import Chart, chart_title, ours


@ours
def resource_usage(df: pd.DataFrame) -> Chart:
    """Each test file's median CPU seconds against its median peak memory (frame of
    ``analysis.resource_usage``): memory-heavy files stand high, CPU-bound ones far right."""
    tooltip = [
        "file:N",
        "runs:Q",
        alt.Tooltip("median_peak_mb:Q", format=",.0f", title="peak MB (median)"),
        alt.Tooltip("max_peak_mb:Q", format=",.0f", title="peak MB (max)"),
        alt.Tooltip("median_cpu_s:Q", format=".2f", title="CPU s (median)"),
        alt.Tooltip("cpu_share:Q", format=".0%", title="CPU share of wall time"),
        "peak_threads:Q",
        "peak_processes:Q",
        "latest_status:N",
    ]
    chart: Chart = (
        alt.Chart(df, title=chart_title("CPU and memory per test file", "median over runs"))
        .mark_circle(size=90, opacity=0.8, color="#5c7cfa")
        .encode(
            x=alt.X("median_cpu_s:Q", title="CPU seconds"),
            y=alt.Y("median_peak_mb:Q", title="peak memory (MB)"),
            tooltip=tooltip,
        )
    )
    return chart


@ours
def heaviest_tests(df: pd.DataFrame) -> Chart:
    """Each test's median CPU seconds against its median memory growth, set-up to teardown
    (frame of ``analysis.heaviest_tests``): tests that keep what they allocate stand high,
    CPU-bound ones far right; the size is the CPU share of the test's own duration."""
    tooltip = [
        "nodeid:N",
        "runs:Q",
        alt.Tooltip("median_growth_mb:Q", format=",.1f", title="memory growth MB (median)"),
        alt.Tooltip("max_growth_mb:Q", format=",.1f", title="memory growth MB (max)"),
        alt.Tooltip("median_cpu_s:Q", format=".3f", title="CPU s (median)"),
        alt.Tooltip("cpu_share:Q", format=".0%", title="CPU share of its duration"),
        "latest_outcome:N",
    ]
    chart: Chart = (
        alt.Chart(df, title=chart_title("CPU and memory per test", "median over runs"))
        .mark_circle(opacity=0.75, color="#e8590c")
        .encode(
            x=alt.X("median_cpu_s:Q", title="CPU seconds"),
            y=alt.Y("median_growth_mb:Q", title="memory growth (MB)"),
            size=alt.Size("cpu_share:Q", title="CPU share", legend=None),
            tooltip=tooltip,
        )
    )
    return chart
