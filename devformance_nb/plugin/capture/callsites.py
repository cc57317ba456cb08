"""Which frame of a stack is the line to change (past helpers, at the innermost loop), and
offsets that name one call.

Both are asked once per distinct stack, when its site is described, never per statement.
"""

from __future__ import annotations

import dis
import re
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any

#: an argument that is a statement's text: the function that received it is a helper
_SQL_TEXT = re.compile(
    r"\s*(?:SELECT|INSERT|UPDATE|DELETE|WITH|REPLACE|UPSERT|MERGE|PRAGMA|CREATE|DROP|ALTER)\b",
    re.IGNORECASE,
)
#: modules of statement objects (SQLAlchemy constructs, Django querysets) that make a function
#: receiving one a helper
_STATEMENT_MODULES = ("sqlalchemy.sql.", "sqlalchemy.orm.query", "django.db.models.query")


#: Python 3.11's PRECALL: once specialized for a builtin (``len``, ``list``, ``isinstance``) it
#: makes the call itself, so a frame suspended in that call reports the PRECALL's offset where
#: it reported the CALL's (two bytes of cache later) before: one call site, two offsets
_PRECALL = dis.opmap.get("PRECALL")
_PRECALL_TO_CALL = 4


def call_offset(code: CodeType, lasti: int) -> int:
    """``lasti`` as the offset of the call it belongs to, whatever the interpreter specialized
    (3.11's PRECALL and CALL of one call are one offset; other versions keep one)."""
    if _PRECALL is None or lasti < 0:
        return lasti
    raw = code.co_code  # the unspecialized bytecode
    if lasti < len(raw) and raw[lasti] == _PRECALL:
        return lasti + _PRECALL_TO_CALL
    return lasti


def is_helper(frame: FrameType) -> bool:
    """Whether ``frame``'s function was handed the statement by its caller: one of its
    arguments is SQL text or a statement object (a query helper, not the line to change)."""
    code = frame.f_code
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
    try:
        local = frame.f_locals
    except Exception:
        return False
    for name in code.co_varnames[:count]:
        value: Any = local.get(name)
        values: tuple[Any, ...]
        if type(value) in (tuple, list):
            values = tuple(value[:8])
        elif type(value) is dict:
            values = tuple(value.values())[:8]
        else:
            values = (value,)
        for item in values:
            if type(item) is str:
                if _SQL_TEXT.match(item):
                    return True
            elif item is not None and _is_statement(type(item)):  # type: ignore[arg-type]
                return True
    return False


#: the libraries whose classes ``_STATEMENT_MODULES`` names
_LIBRARIES = ("sqlalchemy.", "django.")


@lru_cache(maxsize=1_024)
def _is_statement(cls: type) -> bool:
    """Whether ``cls`` is a statement class, or a subclass of one made elsewhere (sqlmodel's
    ``select`` derives from SQLAlchemy's ``Select``): the first class of its MRO that is the
    ORM's own decides (not the mixins every construct shares, loader options included)."""
    for base in cls.__mro__:
        module = getattr(base, "__module__", "") or ""
        if module.startswith(_LIBRARIES):
            return module.startswith(_STATEMENT_MODULES)
    return False


#: the opcodes that jump (relative or absolute): a backward one closes a loop
_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)


@lru_cache(maxsize=4_096)
def loop_spans(code: CodeType) -> tuple[tuple[int, int], ...]:
    """The (start, end) offsets of ``code``'s loops: a backward jump goes from the end of a loop
    body to its head (an ``await``'s own backward jump, ``JUMP_BACKWARD_NO_INTERRUPT``, is no
    loop)."""
    spans = []
    for instruction in dis.get_instructions(code):
        target = instruction.argval
        if (
            instruction.opcode in _JUMPS
            and isinstance(target, int)
            and target < instruction.offset
            and "NO_INTERRUPT" not in instruction.opname
        ):
            spans.append((target, instruction.offset))
    return tuple(spans)


def in_loop(frame: FrameType) -> bool:
    """Whether ``frame`` stands inside a loop of its function (a comprehension's own code is
    one loop): where a statement repeats once per item, the innermost such frame is the loop
    to change."""
    lasti = frame.f_lasti
    return any(start <= lasti <= end for start, end in loop_spans(frame.f_code))
