"""The DuckDB store: schema, connections, the run's writer, row builders and bulk ingest."""

from __future__ import annotations

from devformance_nb.store.database import Store

__all__ = ["Store"]
