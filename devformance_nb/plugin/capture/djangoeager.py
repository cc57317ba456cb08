"""Django eager loads a test asked for: what a queryset's ``select_related`` and
``prefetch_related`` load, relation by relation.

Used by the Django loads adapter when a queryset fetched rows: each relation it names that a
read can be seen on (a forward foreign key or one-to-one, a reverse one-to-one, a reverse
foreign key or a many-to-many: the related descriptors whose ``__get__`` is wrapped) becomes a
pending eager load. ``select_related()`` with no names (every non-null foreign key) and a
``Prefetch`` with ``to_attr`` (read as a plain attribute, which no descriptor sees) are not
tracked; nor are generic relations. A prefetch lookup through several relations
(``"books__reviews"``) is tracked by its first one.
"""

from __future__ import annotations

from typing import Any

#: (model, attribute, relation, option): one relation a queryset loads eagerly
Eager = tuple[type, str, str, str]


def eager_relations(queryset: Any) -> list[Eager]:
    """The relations ``queryset`` loads eagerly by its own options, that reads can be seen on."""
    model = queryset.model
    found: list[Eager] = []
    selected = getattr(queryset.query, "select_related", False)
    if isinstance(selected, dict):
        _selected(model, selected, "", found)
    for lookup in getattr(queryset, "_prefetch_related_lookups", ()):
        if getattr(lookup, "to_attr", None):
            continue
        path = lookup if isinstance(lookup, str) else getattr(lookup, "prefetch_through", "")
        first = path.split("__", 1)[0]
        if first and _related_model(model, first, prefetch=True) is not None:
            relation = f"{model.__name__}.{first}"
            found.append((model, first, relation, f'.prefetch_related("{path}")'))
    return found


def _selected(model: type, names: dict[str, Any], above: str, found: list[Eager]) -> None:
    """The ``select_related`` tree ``names`` under ``model`` (``above``: the path to it)."""
    for name, below in names.items():
        related = _related_model(model, name, prefetch=False)
        if related is None:
            continue
        path = f"{above}__{name}" if above else name
        found.append((model, name, f"{model.__name__}.{name}", f'.select_related("{path}")'))
        if isinstance(below, dict) and below:
            _selected(related, below, path, found)


def _related_model(model: type, name: str, *, prefetch: bool) -> type | None:
    """The model at the other end of ``model.name``, when it is a relation whose reads the
    wrapped descriptors see (to-many relations only by ``prefetch_related``)."""
    from django.db.models.fields.related_descriptors import (
        ForwardManyToOneDescriptor,
        ReverseManyToOneDescriptor,
        ReverseOneToOneDescriptor,
    )

    descriptor = getattr(model, name, None)
    if isinstance(descriptor, ForwardManyToOneDescriptor):
        return descriptor.field.related_model  # type: ignore[no-any-return]
    if isinstance(descriptor, ReverseOneToOneDescriptor):
        return descriptor.related.related_model  # type: ignore[no-any-return]
    if prefetch and isinstance(descriptor, ReverseManyToOneDescriptor):
        return descriptor.rel.related_model  # type: ignore[no-any-return]
    return None
