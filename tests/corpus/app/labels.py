"""How a scenario says what the N+1 detector must find in it.

``@label(...)`` lists the findings of the test it decorates; ``@label()`` says "none". The
runner (tests/test_corpus.py) reads the labels from the source with ``ast``, so the arguments
must be literals. A site names a line of the corpus marked with a ``# site: NAME`` comment;
the finding's call site is that line (``path:line function``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Finding:
    """One expected N+1 finding: issued at ``site``, ``count`` times, on ``table``; ``relation``
    is the ORM relation it loads lazily (``Class.attribute``), '' for any other statement."""

    site: str
    count: int
    table: str
    phase: str = "call"
    relation: str = ""


def n_plus_one(
    site: str, count: int, table: str, phase: str = "call", relation: str = ""
) -> Finding:
    """An expected N+1 finding (``phase``: setup, call or teardown; ``relation``: the ORM's
    lazily loaded relation, when the ORM loads it)."""
    return Finding(site, count, table, phase, relation)


@dataclass(frozen=True)
class Unread:
    """One expected unused eager load: ``relation`` loaded eagerly by the query at ``site``
    (``count`` times) and never read in the test."""

    site: str
    relation: str
    phase: str = "call"
    count: int = 1


def unused_eager(site: str, relation: str, phase: str = "call", count: int = 1) -> Unread:
    """An expected unused eager load (``relation``: ``Class.attribute``)."""
    return Unread(site, relation, phase, count)


def label(*findings: Finding | Unread) -> Callable[[F], F]:
    """Label a scenario with its expected findings (none: not an N+1)."""

    def mark(func: F) -> F:
        func.corpus_findings = findings  # type: ignore[attr-defined]
        return func

    return mark
