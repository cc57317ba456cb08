"""Unused eager loads: the finding a child's ``eager_unused`` event becomes, with its fix.

The child decides (``plugin/capture/eagerloads``): a relation a query loaded eagerly by an
explicit option and that no row's relation was read for before the test ended. This module only
gives the finding its hint and its place in the order of a file's findings.
"""

from __future__ import annotations

from dataclasses import dataclass

from devformance_nb.core.events import EagerUnused

_PHASE_ORDER = {"setup": 0, "call": 1, "teardown": 2}


@dataclass(frozen=True)
class UnusedEagerLoad:
    """An eager load never read: ``relation`` loaded by ``option`` in ``count`` executions of
    the query at ``caller`` (its stack ``stack_hash``; ``sent_by`` the frame that sent it)."""

    file: str
    nodeid: str
    phase: str
    relation: str
    option: str
    orm: str
    count: int
    caller: str
    sent_by: str
    stack_hash: str
    hint: str


def unused_eager_load(event: EagerUnused) -> UnusedEagerLoad:
    """The finding of one ``eager_unused`` event."""
    return UnusedEagerLoad(
        file=event.file,
        nodeid=event.nodeid,
        phase=event.phase,
        relation=event.relation,
        option=event.option,
        orm=event.orm,
        count=event.count,
        caller=event.caller,
        sent_by=event.sent_by,
        stack_hash=event.stack_hash,
        hint=unused_eager_hint(event.relation, event.option),
    )


def unused_eager_hint(relation: str, option: str) -> str:
    """What to do about ``relation`` loaded eagerly by ``option`` and never read."""
    if option.startswith(".select_related(") or option.startswith(".prefetch_related("):
        method = option[1:].partition("(")[0]
        path = option.partition("(")[2].rstrip(")")
        return (
            f"{relation} is loaded with the rows ({option}) and never read in this test: "
            f"drop {path} from .{method}(...) in this queryset, unless other callers read it."
        )
    return (
        f"{relation} is loaded eagerly ({option}) and never read in this test: drop the option "
        "from this query, unless other callers read it."
    )


def eager_order(finding: UnusedEagerLoad) -> tuple[str, str, int, str, str]:
    """The sort key these findings are listed by: file, test, phase, relation, call site."""
    rank = _PHASE_ORDER.get(finding.phase, len(_PHASE_ORDER))
    return (finding.file, finding.nodeid, rank, finding.relation, finding.caller)
