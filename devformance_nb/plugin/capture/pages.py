"""Pages of a paginated read, told apart: one listing's successive pages from one page per parent.

A statement with ``LIMIT`` or ``OFFSET`` repeated in a loop is either a walk through the pages
of one listing (only the page moves: the offset, or the keyset cursor compared with ``>`` or
``<``) or the same page asked once per parent row (the parent's key moves): the first is no
N+1, the second is. Which values are which is known only here, in the child, where the
statement's parameters are; they never leave it. Each such statement gets a ``page`` field,
``KEY:PAGE``: a short hash of what selects the listing (the text with its page literals blanked
and every parameter that is not a page position) and one of the page itself (the page
parameters and literals). The detector counts a listing once however many pages it read
(see ``logic.detection``).

A statement's plan (which parameters are page positions) depends only on its text, so it is
worked out once per distinct text (:func:`plan_of`); the hashing per statement is two tuple
hashes. Hashes are Python's own (per process, which is all a test's statements share).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

MASK = (1 << 48) - 1

_TOKEN = re.compile(
    r"'(?:[^']|'')*'"  # a string literal: never a page
    r'|"(?:[^"]|"")*"|`[^`]*`'  # a quoted identifier
    r"|(?P<kw>\bLIMIT\b|\bOFFSET\b)"
    r"|(?P<not><>|!=)"
    r"|(?P<range><=|>=|<|>)"
    r"|(?P<ph>\?|%s|%\((?P<pyname>\w+)\)s|(?<![:\w]):(?P<name>[A-Za-z_]\w*)|\$(?P<num>\d+))"
    r"|(?P<lit>\b\d+\b)"
    r"|(?P<comma>,)"
    r"|[A-Za-z_][\w.$]*|::|[=()+\-*/;]",
    re.IGNORECASE,
)
#: the words a page statement must hold (checked before the tokenizer runs)
_PAGED = re.compile(r"\b(?:LIMIT|OFFSET)\b", re.IGNORECASE)

#: a parameter reference: its position (``?``, ``%s``, ``$1``) or its name (``:a``, ``%(a)s``)
Ref = int | str


@dataclass(frozen=True)
class Plan:
    """Where the page is in one statement text."""

    #: the text with its page literals blanked (the listing's part of the text)
    key: str
    #: the literal page values (``LIMIT 10 OFFSET 20``, as Django writes them)
    literals: tuple[str, ...]
    #: parameters that are page positions, and the others
    page: tuple[Ref, ...]
    other: tuple[Ref, ...]


def plan_of(text: str) -> Plan | None:
    """The page plan of ``text``, or None when it is no page statement (no ``LIMIT`` or
    ``OFFSET``, or nothing that moves a page)."""
    if _PAGED.search(text) is None:
        return None
    page: list[Ref] = []
    other: list[Ref] = []
    literals: list[str] = []
    blanks: list[tuple[int, int]] = []
    position = 0
    expect_page = in_limit = after_limit = moves = False
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind in ("pyname", "name", "num"):
            kind = "ph"
        if kind == "kw":
            in_limit = match.group("kw").upper() == "LIMIT"
            expect_page = after_limit = in_limit
            if not in_limit:
                expect_page = True
            continue
        if kind == "range":
            expect_page, in_limit, after_limit = True, False, False
            continue
        if kind == "comma" and in_limit:  # MySQL's "LIMIT offset, count"
            expect_page, after_limit = True, False
            continue
        if kind == "ph":
            ref: Ref
            if match.group("pyname") or match.group("name"):
                ref = match.group("pyname") or match.group("name")
            elif match.group("num"):
                ref = int(match.group("num")) - 1
            else:
                ref, position = position, position + 1
            (page if expect_page else other).append(ref)
        elif kind == "lit" and expect_page:
            literals.append(match.group("lit"))
            blanks.append(match.span())
            # a literal LIMIT is the same for every page of a text; an offset or a cursor moves
            moves = moves or not after_limit
        if kind not in ("ph", "lit"):
            in_limit = False
        expect_page = after_limit = False
    if not page and not moves:
        return None  # nothing moves a page within this text (Django's get(): LIMIT 21)
    key = text
    for start, end in reversed(blanks):
        key = key[:start] + "?" + key[end:]
    return Plan(key, tuple(literals), tuple(page), tuple(other))


def page_of(plan: Plan, params: Any) -> str:
    """The ``KEY:PAGE`` hashes of a statement of ``plan`` run with ``params``."""
    listing = (plan.key, _values(params, plan.other))
    at = (plan.literals, _values(params, plan.page))
    return f"{_hash(listing) & MASK:x}:{_hash(at) & MASK:x}"


def _values(params: Any, refs: tuple[Ref, ...]) -> tuple[Any, ...]:
    if not refs or params is None:
        return ()
    try:
        if isinstance(params, Mapping):
            return tuple(params.get(ref) for ref in refs)
        return tuple(params[ref] if isinstance(ref, int) else None for ref in refs)
    except (IndexError, TypeError, KeyError):
        return (repr(params),)


def _hash(value: tuple[Hashable, ...]) -> int:
    try:
        return hash(value)
    except TypeError:  # a list or a dict among the values (a JSON or array parameter)
        return hash(repr(value))
