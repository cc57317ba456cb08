"""Altair charts of the analysis DataFrames: a DataFrame in, a chart out, nothing else.

Our charts draw with no network in JupyterLab, Notebook 7, VS Code, Voila and HTML
exports (see :mod:`devformance_nb.charts.renderer`); importing this package changes
no Altair setting.
"""

from __future__ import annotations

from devformance_nb.charts.figures import (
    OUTCOME_COLORS,
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
from devformance_nb.charts.renderer import PALETTE, RENDERER, resend_bundle, spec_of
from devformance_nb.charts.statements import CHANGE_COLORS, statement_changes
from devformance_nb.charts.timeline import STATUS_COLORS, worker_timeline
from devformance_nb.charts.usage import heaviest_tests, resource_usage

__all__ = [
    "CHANGE_COLORS",
    "OUTCOME_COLORS",
    "PALETTE",
    "RENDERER",
    "STATUS_COLORS",
    "THEME",
    "Chart",
    "coverage_contribution",
    "coverage_over_runs",
    "coverage_per_file",
    "coverage_total",
    "devformance_theme",
    "duration_distribution",
    "heaviest_tests",
    "n_plus_one_hotspots",
    "query_count_heatmap",
    "resend_bundle",
    "resource_usage",
    "run_comparison",
    "runs_overview",
    "slow_query_ranking",
    "slowest_tests",
    "spec_of",
    "statement_changes",
    "worker_timeline",
]
