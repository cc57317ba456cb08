"""SQLAlchemy eager loads a test asked for: which ones it never read.

Installed once ``sqlalchemy.orm.strategies`` is imported. Each query execution builds its row
processors once, asking the loader strategy of every relationship on the loaded path
(``create_row_processor``); the joined, select-in and subquery strategies get the option that
chose them (``loadopt``), which is None for a relationship eager by its mapping
(``lazy="selectin"``): only explicit options are a test's choice, so only they are tracked.

A read of the relationship on a row is seen by its class attribute: the ``InstrumentedAttribute``
of every relationship loaded eagerly is given a subclass (same slots, so it can change class in
place) whose ``__get__`` tells :class:`~devformance_nb.plugin.capture.eagerloads.EagerLoads`
first. Only relationships loaded by an option pay that call; columns never do. Uninstall puts
the classes and methods back.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from devformance_nb.plugin.capture.adapters import Adapter

#: strategy class name (without 2.1's leading underscore) -> the option that selects it
STRATEGIES = {
    "JoinedLoader": "joinedload",
    "SelectInLoader": "selectinload",
    "SubqueryLoader": "subqueryload",
}


def _name(prop: Any) -> str:
    return f"{prop.parent.class_.__name__}.{prop.key}"


class SQLAlchemyEagerAdapter(Adapter):
    """Tracks explicit eager loads of relationships and the reads that use them."""

    library = "sqlalchemy.orm.strategies"

    def install(self) -> None:
        """Wrap the eager strategies' row-processor set-up."""
        strategies: Any = importlib.import_module("sqlalchemy.orm.strategies")
        attributes: Any = importlib.import_module("sqlalchemy.orm.attributes")
        self._restore: list[tuple[Any, str, Any]] = []
        self._watched: list[tuple[Any, type]] = []
        self._watching = _watching_class(attributes.InstrumentedAttribute, self.recorder.eager)
        for name, option in STRATEGIES.items():
            strategy = getattr(strategies, f"_{name}", None) or getattr(strategies, name)
            original = strategy.__dict__["create_row_processor"]
            strategy.create_row_processor = self._wrap(original, option)
            self._restore.append((strategy, "create_row_processor", original))
            if name == "SelectInLoader":  # its rows are filled by a post-load, not populators
                post = strategy.__dict__["_load_for_path"]
                strategy._load_for_path = self._confirm_selectin(post)
                self._restore.append((strategy, "_load_for_path", post))

    def uninstall(self) -> None:
        """Put the methods and the attributes' classes back."""
        for owner, name, original in reversed(getattr(self, "_restore", [])):
            setattr(owner, name, original)
        for attribute, cls in reversed(getattr(self, "_watched", [])):
            attribute.__class__ = cls
        self._restore, self._watched = [], []

    def _wrap(self, original: Any, option: str) -> Any:
        noted, eager = self.note, self.recorder.eager

        def create_row_processor(
            strategy: Any,
            context: Any,
            query_entity: Any,
            path: Any,
            loadopt: Any,
            mapper: Any,
            result: Any,
            adapter: Any,
            populators: Any,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            if loadopt is None:
                return original(
                    strategy, context, query_entity, path, loadopt, mapper, result, adapter,
                    populators, *args, **kwargs,
                )  # fmt: skip
            key = (id(context), id(strategy))
            noted(strategy.parent_property, option, sys._getframe(1), key)
            before = {name: len(entries) for name, entries in populators.items()}
            made = original(
                strategy, context, query_entity, path, loadopt, mapper, result, adapter,
                populators, *args, **kwargs,
            )  # fmt: skip
            _confirming(populators, before, eager, key)
            return made

        return create_row_processor

    def _confirm_selectin(self, original: Any) -> Any:
        """A wrapper of the select-in loader's post-load: it runs only for the rows fetched."""
        eager = self.recorder.eager

        def _load_for_path(strategy: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            if eager.waiting:
                eager.confirm((id(context), id(strategy)))
            return original(strategy, context, *args, **kwargs)

        return _load_for_path

    def note(self, prop: Any, option: str, frame: Any, key: Any) -> None:
        """Remember that the query running now loads ``prop`` eagerly with ``option`` (once
        a row's relation is filled: ``key``)."""
        try:
            mapper = prop.parent
            relation = _name(prop)
            self._watch(mapper, prop.key)
        except Exception:  # never break a query over a finding
            return
        self.recorder.note_eager(
            mapper.class_, prop.key, relation, f"{option}({relation})", "sqlalchemy", frame, key
        )

    def _watch(self, mapper: Any, key: str) -> None:
        """Give the relationship's class attributes (on the mapper's class and its subclasses)
        the watching class, once."""
        for each in mapper.self_and_descendants:
            attribute = each.class_manager.get(key)
            if attribute is None or isinstance(attribute, self._watching):
                continue
            self._watched.append((attribute, type(attribute)))
            attribute.__class__ = self._watching


#: the populator lists whose functions fill a row's relation, one call per row
_FILLING = ("new", "existing", "eager")


def _confirming(populators: Any, before: dict[str, int], eager: Any, key: Any) -> None:
    """Wrap the row functions a strategy just added to ``populators`` so that the first row
    they fill confirms the waiting load ``key``."""
    for name in _FILLING:
        entries = populators.get(name)
        if not entries:
            continue
        for index in range(before.get(name, 0), len(entries)):
            entry = entries[index]
            if type(entry) is tuple and len(entry) == 2 and callable(entry[1]):
                entries[index] = (entry[0], _confirm_first(entry[1], eager, key))


def _confirm_first(fill: Any, eager: Any, key: Any) -> Any:
    def confirming(*args: Any, **kwargs: Any) -> Any:
        if key in eager.waiting:
            eager.confirm(key)
        return fill(*args, **kwargs)

    return confirming


def _watching_class(base: type, eager: Any) -> type:
    """A subclass of ``base`` (``InstrumentedAttribute``) whose reads on an instance are told
    to ``eager`` (an EagerLoads) first."""
    get = base.__get__  # type: ignore[attr-defined]

    def __get__(self: Any, instance: Any, owner: Any = None) -> Any:
        if instance is not None and eager.pending:
            eager.read(instance, self.key)
        return get(self, instance, owner)

    return type("WatchedAttribute", (base,), {"__slots__": (), "__get__": __get__})
