"""The Python API (facade): ``run_tests``, ``start_run``, ``open_store`` and ``ingest``."""

from __future__ import annotations

from devformance_nb.api.facade import Run, ingest, open_store, run_tests, start_run

__all__ = ["Run", "ingest", "open_store", "run_tests", "start_run"]
