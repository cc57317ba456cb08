"""The Dask stream's ordering: pieces of output or events by offset, each byte given once."""

from __future__ import annotations

import pytest

from devformance_nb.run.daskstream import Ordered

pytestmark = pytest.mark.quick


def test_pieces_in_order_come_straight_through() -> None:
    ordered = Ordered()
    assert ordered.add(0, b"abc") == b"abc"
    assert ordered.add(3, b"de") == b"de"
    assert ordered.have == 5


def test_an_early_piece_waits_for_the_gap_to_fill() -> None:
    ordered = Ordered()
    assert ordered.add(3, b"def") == b""
    assert ordered.add(0, b"abc") == b"abcdef"
    assert ordered.have == 6


def test_a_repeated_or_overlapping_piece_gives_only_what_is_new() -> None:
    ordered = Ordered()
    ordered.add(0, b"abcd")
    assert ordered.add(0, b"abcd") == b""
    assert ordered.add(2, b"cdef") == b"ef"
    assert ordered.add(6, b"") == b""
    assert ordered.have == 6
