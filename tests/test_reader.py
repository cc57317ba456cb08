from __future__ import annotations

import pytest

from devformance_nb.run.reader import LineSplitter

pytestmark = pytest.mark.quick


def test_lines_split_across_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == ["one"]
    assert splitter.feed(b"o\r\nthree") == ["two"]
    assert splitter.finish() == ["three"]
    assert splitter.finish() == []


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert LineSplitter().feed(b"bad \xff\xfe bytes\n") == ["bad \ufffd\ufffd bytes"]


def test_a_huge_line_is_capped_but_the_next_line_is_intact() -> None:
    splitter = LineSplitter(max_line=100)
    lines = []
    for _ in range(1000):  # 1 MB without a newline, in chunks
        lines += splitter.feed(b"x" * 1000)
    lines += splitter.feed(b"\nnext\n")
    assert len(lines) == 2
    assert lines[0].startswith("x" * 100) and "truncated" in lines[0]
    assert len(lines[0]) < 200
    assert lines[1] == "next"
