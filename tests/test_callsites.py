"""Which frame is the line to change (a helper handed the statement is not), and call offsets."""

from __future__ import annotations

import dis
import sys
from pathlib import Path
from types import CoroutineType, FrameType
from typing import Any

import pytest

from devformance_nb.plugin.capture.callsites import call_offset, in_loop, is_helper

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

    class OwnSelect(type(select(table("books")))):  # type: ignore[misc]
        """A library's own statement class (sqlmodel's select derives from SQLAlchemy's)."""

    OwnSelect.__module__ = "sqlmodel.sql.expression"
    assert is_helper(helper(OwnSelect(table("books")), ()))  # type: ignore[arg-type]


def test_a_call_offset_names_the_call_whatever_the_interpreter_specialized() -> None:
    def caller(x: Any) -> int:
        return len(x)

    offsets = {i.opname: i.offset for i in dis.get_instructions(caller)}
    if "PRECALL" in offsets:  # Python 3.11: PRECALL and CALL of one call are one offset
        assert call_offset(caller.__code__, offsets["PRECALL"]) == offsets["CALL"]
    assert call_offset(caller.__code__, offsets["CALL"]) == offsets["CALL"]
    assert call_offset(caller.__code__, -1) == -1


def here() -> FrameType:
    return sys._getframe(1)


def looping_here() -> bool:
    """Whether the caller stands in a loop now (a frame's offset moves on: ask at once)."""
    return in_loop(sys._getframe(1))


class Pause:
    """An awaitable that suspends its awaiter once."""

    def __await__(self) -> Any:
        yield


async def paused() -> None:
    await Pause()


def test_a_frame_inside_a_loop_or_a_comprehension_is_in_a_loop() -> None:
    seen = []
    for _ in range(1):
        seen.append(looping_here())
    assert all([looping_here() for _ in range(2)])
    counter = 0
    while counter < 1:
        seen.append(looping_here())
        counter += 1
    assert seen == [True, True]


def test_a_frame_outside_loops_and_an_await_are_not() -> None:
    assert not looping_here()
    coroutine = paused()
    assert isinstance(coroutine, CoroutineType)
    coroutine.send(None)  # suspended in its await, whose own backward jump is no loop
    try:
        assert coroutine.cr_frame is not None and not in_loop(coroutine.cr_frame)
    finally:
        coroutine.close()


@pytest.mark.quick
def test_loop_spans_read_from_the_bytecode_equal_dis_on_a_large_module() -> None:
    import argparse
    import types

    from devformance_nb.plugin.capture import callsites

    def codes(code: types.CodeType) -> list[types.CodeType]:
        found = [code]
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                found += codes(const)
        return found

    source = Path(argparse.__file__).read_text(encoding="utf-8")
    every = codes(compile(source, argparse.__file__, "exec"))
    assert len(every) > 150
    if sys.version_info >= (3, 11):  # relative backward jumps: the scan is used
        assert callsites._SPANS is callsites._spans_by_scan
    looped = [c for c in every if callsites._spans_by_dis(c)]
    assert len(looped) > 30
    assert [callsites._SPANS(c) for c in every] == [callsites._spans_by_dis(c) for c in every]
