"""Public alias of ``devformance_nb.analysis.compare``: two runs side by side, and the CI gate."""

from __future__ import annotations

from devformance_nb.analysis.compare import REGRESSION_COLUMNS, Comparison, compare_runs

__all__ = ["REGRESSION_COLUMNS", "Comparison", "compare_runs"]
