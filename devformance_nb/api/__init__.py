"""The Python API (facade): ``run_tests``, ``start_run``, ``open_store`` and ``ingest``."""

from __future__ import annotations

from devformance_nb.api.facade import ingest, open_store, run_tests, start_run
from devformance_nb.api.handle import Run

__all__ = ["Run", "ingest", "open_store", "run_tests", "start_run"]
