"""Which ORM lazy load the statements of a thread belong to: marks set by the ORM adapters.

An ORM adapter knows that a lazy load starts (and which relation, for which instance); the
driver layer records the statement. A mark, per thread, carries what the ORM knew to the
``query`` events of every statement the thread sends while the load runs: the relation
(``Author.books``), the size of the result the instance came from (its peers) and the exact
fix. Marks nest: a load inside a load marks its own statements, then the outer one's again.
"""

from __future__ import annotations

import json
from threading import get_ident


def encode(relation: str, peers: int, fix: str) -> str:
    """The event fields of a mark, JSON-encoded."""
    return (
        f'"relation":{json.dumps(relation, ensure_ascii=False)},"peers":{int(peers)},'
        f'"fix":{json.dumps(fix, ensure_ascii=False)}'
    )


class LoadMarks:
    """The marks of every thread; ``marks`` is empty almost always (one truth test a
    statement on the hot path)."""

    def __init__(self) -> None:
        #: thread ident -> the encoded fields of the load running in that thread
        self.marks: dict[int, str] = {}

    def begin(self, relation: str, peers: int, fix: str) -> str | None:
        """Mark every statement this thread sends until :meth:`end`; returns the mark it
        replaced, for :meth:`end`."""
        ident = get_ident()
        outer = self.marks.get(ident)
        self.marks[ident] = encode(relation, peers, fix)
        return outer

    def end(self, outer: str | None) -> None:
        """End the mark :meth:`begin` set in this thread (``outer``: what it returned)."""
        ident = get_ident()
        if outer is None:
            self.marks.pop(ident, None)
        else:
            self.marks[ident] = outer

    def active(self) -> bool:
        """Whether a load is running in this thread."""
        return get_ident() in self.marks

    def take(self) -> str | None:
        """The encoded fields of the mark a statement this thread sends now carries, or None."""
        return self.marks.get(get_ident())
