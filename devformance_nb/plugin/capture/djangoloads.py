"""Django ORM lazy loads: which relation or deferred field a statement loads, for how many rows.

Installed once ``django.db.models`` is imported. Django has no loader events, so four methods
are wrapped (and restored on uninstall); each sets the recorder's load mark in this thread
while the load runs, so the statement the driver layer records carries the relation, the size
of the result the instance came from and the exact fix:

- ``QuerySet._fetch_all``: a queryset that fetches two rows or more marks each model instance
  with the result's size (its peers); a queryset made by a related manager for one instance
  (reverse foreign key or many-to-many: Django hints it with that instance) is that relation's
  lazy load, fixed by ``.prefetch_related``;
- ``ForwardManyToOneDescriptor.get_object`` (a foreign key or one-to-one not yet loaded:
  ``.select_related``) and ``ReverseOneToOneDescriptor.__get__`` (``.select_related``);
- ``DeferredAttribute.__get__``, which Python calls only for a field missing from the
  instance: a deferred field's load (``.only``/``.defer``).

The same ``_fetch_all`` tells the recorder which relations a queryset loaded eagerly
(``select_related``/``prefetch_related``, see ``djangoeager``), and the related descriptors'
``__get__`` (forward and reverse, to-one and to-many) which relations are read, so an eager
load never read is reported when the test ends.

``prefetch_related``'s own queries are hinted with an instance too; the module function that
runs them (``prefetch_one_level``) is wrapped to say so, and they are never marked.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from devformance_nb.plugin.capture.adapters import Adapter
from devformance_nb.plugin.capture.djangoeager import eager_relations

if TYPE_CHECKING:
    from devformance_nb.plugin.capture.eagerloads import EagerLoads
    from devformance_nb.plugin.capture.recorder import Recorder

#: attribute of an instance's ``_state`` holding the size of the result it came from
PEERS = "devformance_peers"
#: attribute of a queryset's SQL ``Query``, and of its instances' ``_state``, holding where the
#: queryset was built (the project frame that asked a manager for it): a clone of the queryset
#: clones its ``Query`` with a copy of its ``__dict__``, so every queryset of the chain has it
ORIGIN = "devformance_origin"


class _Prefetching(threading.local):
    """How deep this thread is in ``prefetch_related``'s queries."""

    depth = 0


_prefetching = _Prefetching()


def peers_of(instance: Any) -> int:
    """Rows of the result ``instance`` came from (1 when alone or not known)."""
    return int(getattr(getattr(instance, "_state", None), PEERS, 1))


def origin_of(instance: Any) -> str:
    """Where the queryset ``instance`` came from was built ('' when not known)."""
    return str(getattr(getattr(instance, "_state", None), ORIGIN, ""))


def mark_peers(rows: list[Any], origin: str = "") -> None:
    """Give every model instance of a multi-row result the result's size, and where its
    queryset was built (``origin``, when known)."""
    if len(rows) < 2 or not hasattr(rows[0], "_state"):
        return
    size = len(rows)
    for row in rows:
        state = getattr(row, "_state", None)
        if state is not None:
            setattr(state, PEERS, size)
            if origin:
                setattr(state, ORIGIN, origin)


def related_manager_relation(parent: Any, queryset: Any) -> tuple[str, str] | None:
    """(``Model.accessor``, fix) of the reverse foreign key or many-to-many relation a related
    manager's ``queryset`` for ``parent`` reads, or None when it is no such queryset."""
    model = type(parent)
    for field in getattr(queryset, "_known_related_objects", {}):
        # a reverse foreign key's manager knows its parent by the child's foreign key
        remote = getattr(field, "remote_field", None)
        if remote is not None and remote.model is model:
            accessor = remote.get_accessor_name()
            return f"{model.__name__}.{accessor}", f'.prefetch_related("{accessor}")'
    meta = getattr(model, "_meta", None)
    if meta is None:
        return None
    names = [
        field.get_accessor_name() if field.auto_created else field.name
        for field in meta.get_fields()
        if field.many_to_many and field.related_model is queryset.model
    ]
    if len(names) != 1:  # not a relation, or two between the same models: no exact fix
        return None
    return f"{model.__name__}.{names[0]}", f'.prefetch_related("{names[0]}")'


class DjangoLoadsAdapter(Adapter):
    """Marks the statements of Django's lazy relation and deferred-field loads."""

    library = "django.db.models"

    def install(self) -> None:
        """Wrap the methods (once)."""
        from django.db.models import query
        from django.db.models.fields.related_descriptors import (
            ForwardManyToOneDescriptor,
            ReverseManyToOneDescriptor,
            ReverseOneToOneDescriptor,
        )
        from django.db.models.manager import BaseManager
        from django.db.models.query import QuerySet
        from django.db.models.query_utils import DeferredAttribute

        eager = self.recorder.eager
        self._restore: list[tuple[Any, str, Any]] = []
        self._wrap(QuerySet, "_fetch_all", _fetch_all(self.recorder))
        managers = _manager_files()
        self._wrap(BaseManager, "get_queryset", _built(self.recorder, managers))
        self._wrap(ForwardManyToOneDescriptor, "get_object", _get_object(self.recorder))
        self._wrap(ForwardManyToOneDescriptor, "__get__", _read(eager, _field_name))
        self._wrap(ReverseManyToOneDescriptor, "__get__", _read(eager, _many_name))
        self._wrap(ReverseOneToOneDescriptor, "__get__", _reverse_one(self.recorder))
        self._wrap(DeferredAttribute, "__get__", _deferred(self.recorder))
        self._wrap(query, "prefetch_one_level", _prefetch)

    def _wrap(self, owner: Any, name: str, make: Any) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, make(original))
        self._restore.append((owner, name, original))

    def uninstall(self) -> None:
        """Put every wrapped method back."""
        for owner, name, original in reversed(getattr(self, "_restore", [])):
            setattr(owner, name, original)
        self._restore = []


def _fetch_all(recorder: Recorder) -> Any:
    marks = recorder.loads

    def wrap(original: Any) -> Any:
        def _fetch_all(self: Any) -> None:
            if self._result_cache is not None:
                original(self)  # Django's own prefetching of a cached result, if asked
                return
            parent = self._hints.get("instance")
            found = None
            if parent is not None and not _prefetching.depth and not marks.active():
                try:
                    found = related_manager_relation(parent, self)
                except Exception:  # never break a query over a label
                    found = None
            if found is None:
                original(self)
            else:
                built = origin_of(parent)
                with marks.during(found[0], peers_of(parent), found[1], built):
                    original(self)
            rows: Any = self._result_cache
            if type(rows) is list and rows:
                if len(rows) > 1:
                    mark_peers(rows, built_at(self))
                eager = self._prefetch_related_lookups or self._query.select_related
                if eager and not _prefetching.depth:
                    _note_eager(recorder, self, sys._getframe(1))

        return _fetch_all

    return wrap


def _manager_files() -> frozenset[str]:
    """The files of Django's code that makes querysets for its caller (managers, related
    managers): a queryset's build line is the first frame past them."""
    from django.db.models import manager
    from django.db.models.fields import related_descriptors

    files = {manager.__file__, related_descriptors.__file__}
    # generic relations' managers, without importing contenttypes (its models need the app)
    files.add(
        os.path.join(
            os.path.dirname(manager.__file__), "..", "..", "contrib", "contenttypes", "fields.py"
        )
    )
    return frozenset(os.path.normpath(str(path)) for path in files)


def _built(recorder: Recorder, managers: frozenset[str]) -> Any:
    """A wrapper of ``BaseManager.get_queryset`` that stamps each queryset with where it was
    built: the project line that asked a manager for it (``QuerySites.mark``). Not the
    querysets of a lazy load (one object: no lazy load of theirs can have peers)."""
    mark, marks = recorder.query_sites.mark, recorder.query_sites.marks
    loads = recorder.loads

    def wrap(original: Any) -> Any:
        def get_queryset(self: Any) -> Any:
            queryset = original(self)
            if loads.marks and loads.active():
                return queryset
            # this runs for every manager call: the common case (a manager method called by a
            # line seen before) is one lookup; try/except, not contextlib.suppress, for speed
            try:
                frame: Any = sys._getframe(1)  # None past the stack's end: caught below
                if frame.f_code.co_filename in managers:
                    frame = frame.f_back
                text = marks.get((id(frame.f_code), frame.f_lasti))
                if text is None:
                    text = mark(frame, managers)
                # a text, never a code object or frame: querysets may be pickled. Set as an
                # attribute: reading an object's ``__dict__`` makes CPython build it a dict
                # of its own, which slows every later step of every clone of that Query
                # (about 10,000 instructions a statement under Django)
                queryset._query.devformance_origin = text  # ORIGIN
            except Exception:  # never break a query over a call site
                pass
            return queryset

        return get_queryset

    return wrap


def built_at(queryset: Any) -> str:
    """Where ``queryset`` (or the queryset it was cloned from) was built ('' if not known)."""
    return str(getattr(getattr(queryset, "_query", None), ORIGIN, ""))


def _note_eager(recorder: Recorder, queryset: Any, frame: Any) -> None:
    """Tell the recorder the relations ``queryset`` just loaded eagerly."""
    try:
        found = eager_relations(queryset)
    except Exception:  # never break a query over a finding
        return
    built = built_at(queryset)
    for model, attribute, relation, option in found:
        recorder.note_eager(model, attribute, relation, option, "django", frame, None, built)


def _field_name(descriptor: Any) -> str:
    return descriptor.field.name  # type: ignore[no-any-return]


def _many_name(descriptor: Any) -> str:
    # a reverse foreign key or reverse many-to-many reads by its accessor, a forward
    # many-to-many by its field's name
    if getattr(descriptor, "reverse", True):
        return descriptor.rel.get_accessor_name()  # type: ignore[no-any-return]
    return descriptor.field.name  # type: ignore[no-any-return]


def _read(eager: EagerLoads, name_of: Any) -> Any:
    """A wrapper of a related descriptor's ``__get__`` that tells ``eager`` of each read."""

    def wrap(original: Any) -> Any:
        def __get__(self: Any, instance: Any, cls: Any = None) -> Any:
            if instance is not None and eager.pending:
                eager.read(instance, name_of(self))
            return original(self, instance, cls)

        return __get__

    return wrap


def _prefetch(original: Any) -> Any:
    def prefetch_one_level(*args: Any, **kwargs: Any) -> Any:
        _prefetching.depth += 1
        try:
            return original(*args, **kwargs)
        finally:
            _prefetching.depth -= 1

    return prefetch_one_level


def _loading(recorder: Recorder, instance: Any, name: str, fix: str) -> Any:
    """The mark of a load of ``name`` for ``instance`` (a context manager)."""
    relation = f"{type(instance).__name__}.{name}"
    return recorder.loads.during(relation, peers_of(instance), fix, origin_of(instance))


class DjangoGenericLoadsAdapter(Adapter):
    """Marks the statements of a ``GenericForeignKey`` not loaded yet (contenttypes): its fix
    is ``.prefetch_related`` of its name. Installed once the project imports contenttypes'
    fields (the app registry is ready by then)."""

    library = "django.contrib.contenttypes.fields"

    def install(self) -> None:
        """Wrap ``GenericForeignKey.__get__``."""
        from django.contrib.contenttypes.fields import GenericForeignKey

        recorder = self.recorder
        original = GenericForeignKey.__dict__["__get__"]

        def __get__(self: Any, instance: Any, cls: Any = None) -> Any:
            if instance is None or self.is_cached(instance):
                return original(self, instance, cls)
            with _loading(recorder, instance, self.name, f'.prefetch_related("{self.name}")'):
                return original(self, instance, cls)

        GenericForeignKey.__get__ = __get__
        self._restore = [(GenericForeignKey, "__get__", original)]

    def uninstall(self) -> None:
        """Put ``__get__`` back."""
        for owner, name, original in getattr(self, "_restore", []):
            setattr(owner, name, original)
        self._restore = []


def _get_object(recorder: Recorder) -> Any:
    def wrap(original: Any) -> Any:
        def get_object(self: Any, instance: Any) -> Any:
            name = self.field.name
            with _loading(recorder, instance, name, f'.select_related("{name}")'):
                return original(self, instance)

        return get_object

    return wrap


def _reverse_one(recorder: Recorder) -> Any:
    eager = recorder.eager

    def wrap(original: Any) -> Any:
        def __get__(self: Any, instance: Any, cls: Any = None) -> Any:
            if instance is not None and eager.pending:
                eager.read(instance, self.related.get_accessor_name())
            if instance is None or self.related.is_cached(instance):
                return original(self, instance, cls)
            name = self.related.get_accessor_name()
            with _loading(recorder, instance, name, f'.select_related("{name}")'):
                return original(self, instance, cls)

        return __get__

    return wrap


def _deferred(recorder: Recorder) -> Any:
    def wrap(original: Any) -> Any:
        def __get__(self: Any, instance: Any, cls: Any = None) -> Any:
            if instance is None or self.field.attname in instance.__dict__:
                return original(self, instance, cls)
            name = self.field.attname
            fix = f'load "{name}" with the rows: drop it from .defer(...) or add it to .only(...)'
            with _loading(recorder, instance, name, fix):
                return original(self, instance, cls)

        return __get__

    return wrap
