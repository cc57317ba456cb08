"""SQLAlchemy ORM lazy loads: which relationship a statement loads, for how many parents.

Installed once ``sqlalchemy.orm`` is imported. SQLAlchemy loads a relationship attribute that
is not loaded yet through its lazy loader strategy's ``_load_for_state`` (the class is
``LazyLoader``, ``_LazyLoader`` since 2.1): the identity-map lookup of a many-to-one, the
refresh of an expired target, the lazy SELECT. That method is wrapped, as nplusone does, and
sets the recorder's load mark in this thread while it runs, so the statements the driver
layer records meanwhile carry the relationship, the size of the result the instance came from
and the exact fix. Mappers configured before the capture started hold the method bound in
their attributes; those bindings are rewrapped too (and put back on uninstall).

Why not SQLAlchemy's public ``do_orm_execute`` event, which also names lazy loads: any
listener on it makes every ORM execution build its execution state, about 26,000 instructions
(4%) more per ORM statement in bench/bench_capture.py, while the wrapper costs nothing to a
statement that is no lazy load. (A listener that ran the load's statement itself also put it
on a stack of its own, which split one loop into two stacks on a real suite.)

The size of that result: SQLAlchemy gives every instance loaded by one query execution the
same ``runid``; the instances of the parent's class with the parent's ``runid`` in the
session's identity map are its peers (counted once per run, at its first lazy load; not
counted in a session holding more than ``MAX_SCANNED`` instances, where the repetition rule
alone applies).

Where the query that loaded the parent ran: ``loading.instances``, which turns each ORM result
into instances, is wrapped too and notes the innermost project frame running it under the
result's ``runid``; a lazy load's mark carries it (``query_at``), since the fix (a loader
option) goes on that query, not on the line that touched the relationship.

Through SQLAlchemy's asyncio API (``await obj.awaitable_attrs.books``) the load runs in a
greenlet; a driver that runs the statement in a thread of its own (aiosqlite) gets the mark
with the site SQLAlchemy's greenlet saw (``Recorder.place_here``).
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import MethodType
from typing import Any

from devformance_nb.plugin.capture.adapters import Adapter

#: runs whose peers were counted, kept before the cache is reset
MAX_RUNS = 512
#: identity maps larger than this are not scanned for a lazy load's peers
MAX_SCANNED = 2_000


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
        """Wrap the lazy loader strategy's load, in its class and in configured mappers."""
        # modules by name: ``sqlalchemy.orm.mapper`` is also a function in that package
        mapperlib: Any = importlib.import_module("sqlalchemy.orm.mapper")
        strategies: Any = importlib.import_module("sqlalchemy.orm.strategies")
        loader: Any = getattr(strategies, "_LazyLoader", None) or strategies.LazyLoader
        self._peers: dict[int, int] = {}
        #: runid -> where the query execution that loaded it ran
        self._origins: dict[int, str] = {}
        #: per thread: the query of the rows a running lazy load loads for
        self._loading = threading.local()
        self._restore: list[tuple[Any, str, Any]] = []
        loading: Any = importlib.import_module("sqlalchemy.orm.loading")
        self._set(loading, "instances", self._noting(loading.instances))
        original = loader.__dict__["_load_for_state"]
        wrapped = self._wrap(original)
        self._set(loader, "_load_for_state", wrapped)
        for registry in list(mapperlib._all_registries()):
            for mapper in list(registry.mappers):
                for impl in _relationship_impls(mapper):
                    bound: Any = getattr(impl, "callable_", None)
                    if getattr(bound, "__func__", None) is original:
                        self._set(impl, "callable_", MethodType(wrapped, bound.__self__))

    def _noting(self, original: Any) -> Any:
        """A wrapper of ``loading.instances`` that notes where each ORM result's query ran; the
        rows of a lazy load get the query of the rows it loaded for (a chain's fix goes on the
        first query: ``selectinload(Order.items).joinedload(OrderItem.book)``)."""
        origins, origin, loading = self._origins, self.recorder.query_sites.here, self._loading

        def instances(cursor: Any, context: Any) -> Any:
            result = original(cursor, context)
            try:  # the run id is given to the context by the call (rows come later)
                if len(origins) >= MAX_RUNS:
                    origins.clear()
                above = getattr(loading, "query_at", "")
                origins[context.runid] = above or origin(sys._getframe(1))
            except Exception:  # never break a query over a call site
                pass
            return result

        return instances

    def _set(self, owner: Any, name: str, value: Any) -> None:
        # a class's own entry (not an inherited one), or a slot of an attribute implementation
        current = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        self._restore.append((owner, name, current))
        setattr(owner, name, value)

    def uninstall(self) -> None:
        """Put every wrapped method back."""
        for owner, name, original in reversed(getattr(self, "_restore", [])):
            setattr(owner, name, original)
        self._restore = []

    def _wrap(self, original: Any) -> Any:
        marks = self.recorder.loads
        peers_of, origins, loading = self.peers_of, self._origins, self._loading

        def _load_for_state(loader: Any, state: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                found = relation_of(loader.parent_property, state)
                peers = peers_of(state) if found is not None else 0
                query_at = origins.get(state.runid, "") if found is not None else ""
            except Exception:  # never break a load over a label
                found = None
            if found is None:
                return original(loader, state, *args, **kwargs)
            outer = getattr(loading, "query_at", "")
            loading.query_at = query_at
            try:
                with marks.during(found[0], peers, found[1], query_at):
                    return original(loader, state, *args, **kwargs)
            finally:
                loading.query_at = outer

        return _load_for_state

    def peers_of(self, instance_state: Any) -> int:
        """How many instances of the class of ``instance_state`` the query execution that
        loaded it left in its session's identity map (1 for one fetched alone; 0 when not
        counted: the map holds more than ``MAX_SCANNED`` instances, and a scan per query
        execution would cost more than the loads)."""
        runid = instance_state.runid
        session = instance_state.session
        if runid is None or session is None:
            return 1
        known = self._peers.get(runid)
        if known is not None:
            return known
        states = session.identity_map
        if len(states) > MAX_SCANNED:
            return 0
        mapper = instance_state.mapper
        count = sum(
            1 for other in states.all_states() if other.runid == runid and other.mapper is mapper
        )
        if len(self._peers) >= MAX_RUNS:
            self._peers.clear()
        # counted once per query execution: a result still being loaded (yield_per) may have
        # more rows to come, and its later loads keep the first count
        self._peers[runid] = count = max(count, 1)
        return count


def _relationship_impls(mapper: Any) -> list[Any]:
    """The attribute implementations of a configured mapper's relationships (none before
    it is configured: those bind the wrapped class method when they are)."""
    if not getattr(mapper, "configured", False):
        return []
    manager = mapper.class_manager
    impls = []
    for prop in mapper.relationships:
        attribute = manager.get(prop.key)
        impl = getattr(attribute, "impl", None)
        if impl is not None:
            impls.append(impl)
    return impls
