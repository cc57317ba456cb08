"""Eager loads a test asked for and never read: the ORM adapters say what was loaded eagerly and
which relations were read; what is left unread when the test ends is reported.

An ORM adapter calls :meth:`EagerLoads.loaded` when a query with an explicit eager-loading
option (SQLAlchemy's ``joinedload``/``selectinload``/``subqueryload``, Django's
``select_related``/``prefetch_related``) fetched rows, and :meth:`EagerLoads.read` whenever a
relation attribute of a model instance is read. Reads are matched by attribute name and class
(an instance of the loaded model or of a subclass), not by instance: one read of the relation
on any row counts as using the load, so a finding means that no row's relation was read at all
in the test after the load (Bullet's "unused eager loading", per test).

An adapter that learns of an eager load before any row is fetched (SQLAlchemy sets up its row
processors first) registers it as waiting, under a key, and confirms it when the load fills a
row's relation: a load whose query returned no row loaded nothing, and is never reported.

Reads are the hot part: :meth:`read` is one truth test while nothing is pending.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass

from devformance_nb.plugin.capture.stacks import Site


@dataclass(frozen=True)
class EagerLoad:
    """One eager load of one relation by one query execution."""

    #: the model class whose rows were loaded (reads on its subclasses count too)
    model: type
    #: the relation's attribute name on that class (``books``)
    attribute: str
    #: the relation as findings name it (``Author.books``)
    relation: str
    #: the option that asked for it (``selectinload(Author.books)``, ``.select_related("author")``)
    option: str
    orm: str
    site: Site
    nodeid: str
    phase: str


@dataclass(frozen=True)
class UnreadLoad:
    """Eager loads of one relation, sent from one call stack in one test phase, never read."""

    load: EagerLoad
    #: how many query executions loaded it
    count: int


class EagerLoads:
    """The eager loads of the running test not read yet (thread-safe)."""

    def __init__(self) -> None:
        #: loads waiting for a read; empty almost always (the read path tests only this)
        self.pending: list[EagerLoad] = []
        #: loads set up before their rows were fetched, by key, until a row is filled
        self.waiting: dict[Hashable, EagerLoad] = {}
        self._lock = threading.Lock()

    def loaded(self, load: EagerLoad, key: Hashable | None = None) -> None:
        """A query loaded ``load.relation`` eagerly for its rows; with ``key``, it only will
        when :meth:`confirm` is called with that key (a row's relation was filled)."""
        with self._lock:
            if key is None:
                self.pending = [*self.pending, load]
            else:
                self.waiting[key] = load

    def confirm(self, key: Hashable) -> None:
        """The waiting load under ``key`` filled a row: it now waits for a read."""
        with self._lock:
            load = self.waiting.pop(key, None)
            if load is not None:
                self.pending = [*self.pending, load]

    def read(self, instance: object, attribute: str) -> None:
        """``attribute`` of ``instance`` was read: the loads it used are no longer unread."""
        pending = self.pending
        if not pending:
            return
        if any(_uses(load, instance, attribute) for load in pending):
            with self._lock:
                self.pending = [
                    load for load in self.pending if not _uses(load, instance, attribute)
                ]

    def take(self) -> list[UnreadLoad]:
        """The loads never read, one per (phase, relation, option, stack), in load order; and
        forget them (called when a test ends)."""
        with self._lock:
            pending, self.pending = self.pending, []
            self.waiting = {}  # never filled a row: loaded nothing
        counts: dict[tuple[str, str, str, str, str], list[EagerLoad]] = {}
        for load in pending:
            key = (load.nodeid, load.phase, load.relation, load.option, load.site.stack_hash)
            counts.setdefault(key, []).append(load)
        return [UnreadLoad(loads[0], len(loads)) for loads in counts.values()]


def _uses(load: EagerLoad, instance: object, attribute: str) -> bool:
    return load.attribute == attribute and isinstance(instance, load.model)
