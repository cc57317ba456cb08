"""Which ORM lazy load the statements of a thread belong to: marks set by the ORM adapters.

An ORM adapter knows that a lazy load starts (and which relation, for which instance); the
driver layer records the statement. A mark, per thread, carries what the ORM knew to the
``query`` events of every statement the thread sends while the load runs: the relation
(``Author.books``), the size of the result the instance came from (its peers) and the exact
fix. Marks nest: a load inside a load marks its own statements, then the outer one's again.

A mark belongs to its thread and, where greenlet is loaded, to its greenlet: SQLAlchemy's
asyncio API runs each task's ORM work in a greenlet of its own, and while one task's lazy load
waits for its driver, other tasks of the same thread send statements that are not its.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from threading import get_ident


def _here() -> Hashable:
    """The key of the running thread, and of its running greenlet when greenlet is loaded."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return get_ident()
    return get_ident(), id(greenlet.getcurrent())


@lru_cache(maxsize=1024)  # a loop loads one relation for the rows of one result, over and over
def encode(relation: str, peers: int, fix: str, query_at: str = "") -> str:
    """The event fields of a mark, JSON-encoded (``query_at``: where the query that loaded the
    instance was built, when the ORM adapter knows)."""
    text = (
        f'"relation":{json.dumps(relation, ensure_ascii=False)},"peers":{int(peers)},'
        f'"fix":{json.dumps(fix, ensure_ascii=False)}'
    )
    if query_at:
        text += f',"query_at":{json.dumps(query_at, ensure_ascii=False)}'
    return text


class LoadMarks:
    """The marks of every thread; ``marks`` is empty almost always (one truth test a
    statement on the hot path)."""

    def __init__(self) -> None:
        #: thread (and greenlet) -> the encoded fields of the load running there
        self.marks: dict[Hashable, str] = {}

    def begin(
        self, relation: str, peers: int, fix: str, query_at: str = ""
    ) -> tuple[Hashable, str | None]:
        """Mark every statement sent from here until :meth:`end`; returns where the mark was
        set and the mark it replaced, for :meth:`end` (the same place even if greenlet is
        imported meanwhile)."""
        here = _here()
        outer = self.marks.get(here)
        self.marks[here] = encode(relation, peers, fix, query_at)
        return here, outer

    def end(self, token: tuple[Hashable, str | None]) -> None:
        """End the mark :meth:`begin` set (``token``: what it returned)."""
        here, outer = token
        if outer is None:
            self.marks.pop(here, None)
        else:
            self.marks[here] = outer

    @contextmanager
    def during(self, relation: str, peers: int, fix: str, query_at: str = "") -> Iterator[None]:
        """Mark the statements this thread sends inside the ``with`` block."""
        token = self.begin(relation, peers, fix, query_at)
        try:
            yield
        finally:
            self.end(token)

    def active(self) -> bool:
        """Whether a load is running here (this thread, this greenlet)."""
        return _here() in self.marks

    def take(self) -> str | None:
        """The encoded fields of the mark a statement this thread sends now carries, or None."""
        return self.marks.get(_here())
