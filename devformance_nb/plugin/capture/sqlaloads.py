"""SQLAlchemy ORM lazy loads: which relationship a statement loads, for how many parents.

Installed once ``sqlalchemy.orm`` is imported. One listener on the ``Session`` class's
``do_orm_execute`` event (every session, made before or after) sees each ORM execution just
before it runs; a lazy load says so (``lazy_loaded_from``: the instance it loads for) and names
the relationship (the last element of its loader path). The listener marks this thread's next
SELECT (the load's own statement: an autoflush before it is no SELECT) with the relationship,
the size of the result the instance came from and the exact fix; any other ORM execution in
the thread drops a mark left unused. The statement itself runs as SQLAlchemy runs it: a
listener that ran it (``invoke_statement``) would put it on a stack of its own, and a loop
whose iterations found their target expired (a refresh, not a lazy load) would become two
stacks (it did on a real suite).

The size of that result: SQLAlchemy gives every instance loaded by one query execution the
same ``runid``; the instances of the parent's class with the parent's ``runid`` in the
session's identity map are its peers (counted once per run, at its first lazy load).

Not seen: lazy loads run through the asyncio bridge by a driver in a thread of its own
(aiosqlite records the statement in its thread, without this thread's mark).
"""

from __future__ import annotations

from typing import Any

from devformance_nb.plugin.capture.adapters import Adapter

#: runs whose peers were counted, kept before the cache is reset
MAX_RUNS = 512


def _loader(prop: Any) -> str:
    # a collection loads in one more query per statement; a many-to-one joins to its parent
    return f"{'selectinload' if prop.uselist else 'joinedload'}({_name(prop)})"


def _name(prop: Any) -> str:
    return f"{prop.parent.class_.__name__}.{prop.key}"


def relation_of(prop: Any, loaded_from: Any) -> tuple[str, str] | None:
    """(``Class.relationship``, its fix) of relationship ``prop`` loaded lazily for the instance
    state ``loaded_from``, or None for anything but a relationship. An instance that was itself
    loaded through relationships (an order's items) gets the whole chain from the query's own
    class: ``selectinload(Order.items).joinedload(Item.book)``."""
    if not hasattr(prop, "uselist") or getattr(prop.parent, "class_", None) is None:
        return None
    above = getattr(loaded_from.load_path, "path", ())[1::2]
    chain = [p for p in above if hasattr(p, "uselist") and hasattr(p, "parent")]
    loaders = ".".join(_loader(p) for p in [*chain, prop])
    return _name(prop), f".options({loaders})"


class SQLAlchemyLoadsAdapter(Adapter):
    """Marks the statements of SQLAlchemy's lazy loads with the relationship they load."""

    library = "sqlalchemy.orm"

    def install(self) -> None:
        """Listen to every session's ORM executions."""
        from sqlalchemy import event
        from sqlalchemy.orm import Session

        self._peers: dict[int, int] = {}
        event.listen(Session, "do_orm_execute", self._executing)
        self._listening = True

    def uninstall(self) -> None:
        """Stop listening."""
        if getattr(self, "_listening", False):
            from sqlalchemy import event
            from sqlalchemy.orm import Session

            event.remove(Session, "do_orm_execute", self._executing)
            self._listening = False

    def _executing(self, state: Any) -> None:
        marks = self.recorder.loads
        if marks.marks:
            marks.forget_next_select()  # a lazy load found its rows without a statement
        try:
            # only a SELECT has load options (asking an UPDATE's raises); a lazy load is one
            loaded_from = state.lazy_loaded_from if state.is_select else None
            if loaded_from is None:
                return  # not a lazy load
            path = getattr(state.loader_strategy_path, "path", ())
            found = relation_of(path[-1] if path else None, loaded_from)
            if found is not None:
                marks.next_select(found[0], self.peers_of(loaded_from), found[1])
        except Exception:  # never break an execution over a label
            return

    def peers_of(self, instance_state: Any) -> int:
        """How many instances of the class of ``instance_state`` the query execution that
        loaded it left in its session's identity map (1 for one fetched alone)."""
        runid = instance_state.runid
        session = instance_state.session
        if runid is None or session is None:
            return 1
        known = self._peers.get(runid)
        if known is not None:
            return known
        mapper = instance_state.mapper
        count = sum(
            1
            for other in session.identity_map.all_states()
            if other.runid == runid and other.mapper is mapper
        )
        if count > 1:  # a result still being loaded (yield_per) may have more to come
            if len(self._peers) >= MAX_RUNS:
                self._peers.clear()
            self._peers[runid] = count
        return max(count, 1)
