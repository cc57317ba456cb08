"""Per-test query budgets: which budget applies to a test.

A test's budget comes from its ``@pytest.mark.devformance(max_queries=N)`` marker (stored as
``tests.max_queries``) or from the ``query_budgets`` setting, a table of globs over node ids
(stored with the run's settings in ``runs.config``). The CI gate and any report ask this one
function, so the marker-wins-then-first-pattern rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase


def budget_for(nodeid: str, marker: int | None, patterns: Mapping[str, int]) -> int | None:
    """The query budget of the test ``nodeid``, or None when it has none.

    ``marker`` (the test's own ``max_queries``) wins; else the first glob of ``patterns``, in
    the table's order, that matches ``nodeid`` (case-sensitive ``fnmatch``: ``*`` also spans
    ``/`` and ``::``, so ``tests/api/*`` covers every test below ``tests/api``).
    """
    if marker is not None:
        return marker
    for pattern, budget in patterns.items():
        if fnmatchcase(nodeid, pattern):
            return budget
    return None
