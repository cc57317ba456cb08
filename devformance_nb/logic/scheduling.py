"""Scheduling policies: the order in which test files are handed to workers.

Each policy is one small class behind the ``Scheduler`` protocol; the launcher
asks it once for an order and workers take files from the front.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from devformance_nb.logic.discovery import TestFile


class Scheduler(Protocol):
    """Orders files before a run."""

    name: str

    def order(self, files: Sequence[TestFile]) -> list[TestFile]:
        """The files in the order workers should take them."""


class FileOrder:
    """The order discovery found them in (pytest's own order)."""

    name = "file-order"

    def order(self, files: Sequence[TestFile]) -> list[TestFile]:
        return list(files)


class LongestFirst:
    """Longest expected duration first, from past runs; unknown files get the average.

    Handing out long files first keeps one long file from starting last and
    running alone at the end (the classic LPT bound).
    """

    name = "longest-first"

    def __init__(self, durations: Mapping[str, float]):
        self.durations = dict(durations)

    def order(self, files: Sequence[TestFile]) -> list[TestFile]:
        known = [self.durations[f.key] for f in files if f.key in self.durations]
        average = sum(known) / len(known) if known else 0.0
        expected = {f.key: self.durations.get(f.key, average) for f in files}
        # sorted() is stable: ties keep discovery order, so runs are reproducible
        return sorted(files, key=lambda f: -expected[f.key])


def choose_scheduler(history: Mapping[str, float]) -> Scheduler:
    """Longest-first when there is history for these files, else file order."""
    return LongestFirst(history) if history else FileOrder()
