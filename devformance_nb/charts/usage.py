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
