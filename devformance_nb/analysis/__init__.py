"""Questions about recorded runs: each function answers one with a tidy pandas DataFrame.

Read-only: every function opens the store read-only and aggregates in DuckDB. Run
selectors are described in ``devformance_nb.analysis.select``; two runs side by side are
``devformance_nb.analysis.compare``.
"""

from __future__ import annotations

from devformance_nb.analysis.coverage import (
    coverage_contribution,
    coverage_over_runs,
    coverage_per_file,
)
from devformance_nb.analysis.questions import (
    durations_per_file,
    durations_per_test,
    failures,
    flaky_tests,
    n_plus_one_hotspots,
    query_counts_per_file,
    query_counts_per_test,
    runs_overview,
    slowest_files,
    slowest_queries,
    slowest_tests,
    unused_eager_loads,
)
from devformance_nb.analysis.select import select_runs
from devformance_nb.analysis.timeline import worker_timeline
from devformance_nb.analysis.usage import heaviest_tests, resource_usage

__all__ = [
    "coverage_contribution",
    "coverage_over_runs",
    "coverage_per_file",
    "durations_per_file",
    "durations_per_test",
    "failures",
    "flaky_tests",
    "heaviest_tests",
    "n_plus_one_hotspots",
    "query_counts_per_file",
    "query_counts_per_test",
    "resource_usage",
    "runs_overview",
    "select_runs",
    "slowest_files",
    "slowest_queries",
    "slowest_tests",
    "unused_eager_loads",
    "worker_timeline",
]
