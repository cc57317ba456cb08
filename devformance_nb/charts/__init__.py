"""Altair charts of the analysis DataFrames: a DataFrame in, a chart out, nothing else."""

from __future__ import annotations

from devformance_nb.charts.figures import (
    OUTCOME_COLORS,
    PALETTE,
    THEME,
    Chart,
    coverage_contribution,
    coverage_over_runs,
    coverage_per_file,
    coverage_total,
    devformance_theme,
    duration_distribution,
    n_plus_one_hotspots,
    query_count_heatmap,
    run_comparison,
    runs_overview,
    slow_query_ranking,
    slowest_tests,
)

__all__ = [
    "OUTCOME_COLORS",
    "PALETTE",
    "THEME",
    "Chart",
    "coverage_contribution",
    "coverage_over_runs",
    "coverage_per_file",
    "coverage_total",
    "devformance_theme",
    "duration_distribution",
    "n_plus_one_hotspots",
    "query_count_heatmap",
    "run_comparison",
    "runs_overview",
    "slow_query_ranking",
    "slowest_tests",
]
