"""Fix hints of N+1 findings: exact where the ORM named the relation, by ORM otherwise."""

from __future__ import annotations

import re

#: a lookup by primary key (``WHERE "t"."id" = ?``): a forward foreign key loaded lazily
_BY_PRIMARY_KEY = re.compile(r'\bWHERE (?:"?\w+"?\.)?"?id"? = \?', re.IGNORECASE)


#: the class of the first relation a loader option names (``selectinload(Order.items)``)
_OPTION_ROOT = re.compile(r"load\((\w+)\.")


def lazy_load_hint(relation: str, fix: str) -> str:
    """The fix hint of a finding whose statements the ORM said load ``relation`` lazily;
    ``fix`` is what to add to the query that loaded the parents (a loader option chain starts
    at the class that query selects)."""
    model = relation.partition(".")[0]
    if fix.startswith("."):
        root = _OPTION_ROOT.search(fix)
        loads = root.group(1) if root else model
        return (
            f"{relation} is loaded lazily, once per {model}: add {fix} to the query that loads "
            f"the {loads} rows."
        )
    return f"{relation} is loaded lazily, once per {model}: {fix}."


def hint_for(orm: str, table: str, fp: str = "") -> str:
    """A fix hint for an N+1 on ``table`` for the ORM that issued it.

    ``fp``, the repeated statement's fingerprint, lets the Django hint lead with the likely
    fix: a lookup by primary key is a forward foreign key (``select_related``), anything else
    a reverse or many-to-many relation (``prefetch_related``).
    """
    what = f'"{table}"' if table else "the related rows"
    if orm == "sqlalchemy":
        return (
            f"Load {what} with the parent query instead of one query per parent: add "
            "options(selectinload(Parent.relationship)) (collections) or "
            "options(joinedload(Parent.relationship)) (many-to-one) to the query that loads "
            "the parents."
        )
    if orm == "django":
        if fp and _BY_PRIMARY_KEY.search(fp):
            return (
                f"Load {what} with the parent queryset: add .select_related('field') for this "
                "forward ForeignKey/OneToOneField (or .prefetch_related('field'))."
            )
        if fp:
            return (
                f"Load {what} with the parent queryset: add .prefetch_related('name') for this "
                "reverse foreign key or ManyToManyField (a forward ForeignKey takes "
                ".select_related('field'))."
            )
        return (
            f"Load {what} with the parent queryset: .select_related('field') for a forward "
            "ForeignKey/OneToOneField, .prefetch_related('name') for a reverse foreign key or "
            "a ManyToManyField."
        )
    return (
        f"Fetch {what} for all parents at once: one query with WHERE key IN (...) or a JOIN, "
        "instead of one query per parent row."
    )
