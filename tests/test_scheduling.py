from __future__ import annotations

from pathlib import Path

import pytest

from devformance_nb.logic.discovery import TestFile
from devformance_nb.logic.scheduling import FileOrder, LongestFirst, choose_scheduler

pytestmark = pytest.mark.quick

FILES = [TestFile(k, Path(k)) for k in ("a.py", "b.py", "c.py", "d.py")]


def keys(files: list[TestFile]) -> list[str]:
    return [f.key for f in files]


def test_file_order_keeps_discovery_order() -> None:
    assert keys(FileOrder().order(FILES)) == ["a.py", "b.py", "c.py", "d.py"]


def test_longest_first_with_average_for_unknown_files() -> None:
    # unknown c.py and d.py get the average (2.0): after b.py (5.0), before a.py? no: a.py is 1.0
    policy = LongestFirst({"a.py": 1.0, "b.py": 3.0})
    assert keys(policy.order(FILES)) == ["b.py", "c.py", "d.py", "a.py"]


def test_choose_scheduler_uses_history_when_there_is_some() -> None:
    assert choose_scheduler({}).name == "file-order"
    assert choose_scheduler({"a.py": 1.0}).name == "longest-first"
