"""Which ORM lazy load the statements of a thread belong to: marks set by the ORM adapters.

An ORM adapter knows that a lazy load starts (and which relation, for which instance); the
driver layer records the statement. A mark, per thread, carries what the ORM knew to the
``query`` event: the relation (``Author.books``), the size of the result the instance came
from (its peers) and the exact fix. Two kinds:

- scoped (:meth:`LoadMarks.begin`/:meth:`LoadMarks.end`): every statement the thread sends
  in between is part of the load (Django's descriptors wrap the load itself);
- next SELECT (:meth:`LoadMarks.next_select`): only the thread's next SELECT is the load's,
  for an ORM whose hook runs just before the load's statement and sees nothing after it
  (SQLAlchemy's ``do_orm_execute``); any other statement (an autoflush) leaves it in place.
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


def _is_select(sql: str) -> bool:
    return sql.lstrip()[:6].upper() == "SELECT"


class LoadMarks:
    """The marks of every thread; ``marks`` is empty almost always (one truth test a
    statement on the hot path)."""

    def __init__(self) -> None:
        #: thread ident -> (encoded fields, for the next SELECT only?)
        self.marks: dict[int, tuple[str, bool]] = {}

    def begin(self, relation: str, peers: int, fix: str) -> tuple[str, bool] | None:
        """Mark every statement this thread sends until :meth:`end`; returns the mark it
        replaced, for :meth:`end`."""
        ident = get_ident()
        outer = self.marks.get(ident)
        self.marks[ident] = (encode(relation, peers, fix), False)
        return outer

    def end(self, outer: tuple[str, bool] | None) -> None:
        """End the mark :meth:`begin` set in this thread (``outer``: what it returned)."""
        ident = get_ident()
        if outer is None:
            self.marks.pop(ident, None)
        else:
            self.marks[ident] = outer

    def next_select(self, relation: str, peers: int, fix: str) -> None:
        """Mark only the next SELECT this thread sends."""
        self.marks[get_ident()] = (encode(relation, peers, fix), True)

    def forget_next_select(self) -> None:
        """Drop this thread's next-SELECT mark, if it has one (its load sent nothing)."""
        ident = get_ident()
        mark = self.marks.get(ident)
        if mark is not None and mark[1]:
            del self.marks[ident]

    def active(self) -> bool:
        """Whether this thread has a scoped mark (a load is running in it)."""
        mark = self.marks.get(get_ident())
        return mark is not None and not mark[1]

    def take(self, sql: str) -> str | None:
        """The encoded fields of the mark that statement ``sql``, sent now by this thread,
        carries (a next-SELECT mark is used up by it), or None."""
        ident = get_ident()
        mark = self.marks.get(ident)
        if mark is None:
            return None
        if mark[1]:
            if not _is_select(sql):
                return None
            del self.marks[ident]
        return mark[0]
