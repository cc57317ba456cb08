"""Text surfaces: the ``devformance`` command, the terminal view, the HTML report."""

from __future__ import annotations

from devformance_nb.cli.main import main

__all__ = ["main"]
