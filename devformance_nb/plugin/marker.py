"""The ``devformance`` marker: a test's own query budget, ``max_queries=N``.

``@pytest.mark.devformance(max_queries=3)`` on a test (or a class or module, the closest
marker winning, as pytest's markers do) says the test may send at most 3 SQL statements.
The plugin registers the marker (so ``--strict-markers`` accepts it), refuses a bad one at
collection with a message naming the test and the fix, and sends the budget with the test's
teardown report; the CI gate compares it with what the test sent.
"""

from __future__ import annotations

from typing import Any

import pytest

MARKER = "devformance"
#: the line ``pytest --markers`` shows
MARKER_HELP = (
    "devformance(max_queries=N): the most SQL statements this test may send (N >= 0); "
    "devformance_nb's CI gate fails a test over it"
)
EXAMPLE = "@pytest.mark.devformance(max_queries=3)"
KEYWORDS = ("max_queries",)


class MarkerError(ValueError):
    """A ``devformance`` marker that cannot be read; the message says which test and the fix."""


def written(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The marker as the user wrote it, e.g. ``@pytest.mark.devformance(max_queries='3')``."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"@pytest.mark.{MARKER}({', '.join(parts)})"


def problem(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What is wrong with a marker's arguments ('' when nothing is)."""
    if args:
        return f"it takes keywords only, e.g. {EXAMPLE}"
    unknown = [k for k in kwargs if k not in KEYWORDS]
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        return f"unknown keyword {names}; it takes {', '.join(KEYWORDS)} only, e.g. {EXAMPLE}"
    value = kwargs.get("max_queries")
    # bool is an int to Python, never a count of statements to a user
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        return f"max_queries must be a whole number of statements, 0 or more, e.g. {EXAMPLE}"
    return ""


def max_queries_of(item: pytest.Item) -> int | None:
    """The budget of ``item``'s closest ``devformance`` marker (None: no marker, or no
    ``max_queries`` in it); raises MarkerError for a marker that cannot be read."""
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    args, kwargs = tuple(marker.args), dict(marker.kwargs)
    wrong = problem(args, kwargs)
    if wrong:
        raise MarkerError(f"{item.nodeid}: {written(args, kwargs)} is not valid: {wrong}")
    value = kwargs.get("max_queries")
    return value if isinstance(value, int) else None


def marker_errors(nodes: list[Any]) -> list[str]:
    """The messages of the bad markers among a collector's new ``nodes`` (its test items)."""
    errors = []
    for node in nodes:
        if isinstance(node, pytest.Item):
            try:
                max_queries_of(node)
            except MarkerError as exc:
                errors.append(str(exc))
    return errors
