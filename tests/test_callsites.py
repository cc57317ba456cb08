"""Which frame is the line to change (a helper handed the statement is not), and call offsets."""

from __future__ import annotations

import dis
import sys
from types import FrameType
from typing import Any

import pytest

from devformance_nb.plugin.capture.callsites import call_offset, is_helper

pytestmark = pytest.mark.quick


def helper(sql: str, params: tuple[Any, ...]) -> FrameType:
    return sys._getframe()


def keyword_helper(**options: Any) -> FrameType:
    return sys._getframe()


def plain(author_id: int, name: str) -> FrameType:
    return sys._getframe()


def test_a_function_handed_sql_text_is_a_helper() -> None:
    assert is_helper(helper("SELECT id FROM books WHERE author = ?", (1,)))
    assert is_helper(helper("  with x as (select 1) select * from x", ()))
    assert is_helper(keyword_helper(statement="UPDATE t SET a = 1"))


def test_a_function_handed_only_values_is_not_a_helper() -> None:
    assert not is_helper(plain(1, "Selection of essays"))  # a word, not a statement
    assert not is_helper(helper("books", ()))


def test_a_function_handed_a_statement_object_is_a_helper() -> None:
    from sqlalchemy import select, table

    assert is_helper(helper(select(table("books")), ()))  # type: ignore[arg-type]


def test_a_call_offset_names_the_call_whatever_the_interpreter_specialized() -> None:
    def caller(x: Any) -> int:
        return len(x)

    offsets = {i.opname: i.offset for i in dis.get_instructions(caller)}
    if "PRECALL" in offsets:  # Python 3.11: PRECALL and CALL of one call are one offset
        assert call_offset(caller.__code__, offsets["PRECALL"]) == offsets["CALL"]
    assert call_offset(caller.__code__, offsets["CALL"]) == offsets["CALL"]
    assert call_offset(caller.__code__, -1) == -1
