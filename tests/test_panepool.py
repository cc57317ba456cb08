"""Which files get a live pane, and panes rebound to them."""

from __future__ import annotations

import pytest

from devformance_nb.run.state import FileState
from devformance_nb.ui.panepool import (
    FAILING_PANES,
    OPENED_PANES,
    POOL_PANES,
    PanePool,
    pool_size,
    wanted,
)

pytestmark = pytest.mark.quick


def test_a_run_that_fits_shows_every_file_but_the_closed_ones() -> None:
    order = ["a.py", "b.py", "c.py"]
    assert wanted(order, {}, [], set(), 5) == order
    assert wanted(order, {}, [], {"b.py"}, 5) == ["a.py", "c.py"]
    assert wanted(order, {}, ["b.py"], {"b.py"}, 5) == order  # opened again


def test_a_large_run_shows_opened_failing_and_long_running_files() -> None:
    order = [f"t{i:03d}.py" for i in range(100)]
    files = {k: FileState(key=k, status="passed") for k in order}
    for k in order[10:30]:
        files[k] = FileState(key=k, status="failed")
    files["t050.py"] = FileState(key="t050.py", status="running", started=0.0)  # long ago
    files["t051.py"] = FileState(key="t051.py", status="running", started=1e12)  # just now
    shown = wanted(order, files, ["t090.py"], {"t010.py"}, 40)
    assert shown == [*order[11 : 11 + FAILING_PANES], "t050.py", "t090.py"]
    assert len(wanted(order, files, [], set(), 3)) == 3


def test_panes_keep_their_file_and_freed_ones_are_reused() -> None:
    pool = PanePool(on_close=lambda key: None)
    pool.grow(2)
    first, second = pool.bind(["a.py", "b.py"], lambda key: None)
    assert (first.key, second.key) == ("a.py", "b.py")
    (kept, taken) = pool.bind(["b.py", "c.py"], lambda key: None)
    assert kept is second and taken is first and taken.key == "c.py"
    assert taken.sent_version == -1, "a rebound pane is drawn in full"
    # more files than panes: the first ones in the order given get them
    assert [p.key for p in pool.bind(["a.py", "b.py", "c.py"], lambda key: None)] == [
        "a.py", "b.py",
    ]  # fmt: skip
    assert set(pool.bound) == {"a.py", "b.py"}


def test_a_pane_per_file_when_they_fit_else_what_matters() -> None:
    assert pool_size(12, 2) == 12
    assert pool_size(POOL_PANES, 2) == POOL_PANES
    assert pool_size(2_000, 2) == OPENED_PANES + FAILING_PANES + 2
    assert pool_size(2_000, 512) == POOL_PANES
