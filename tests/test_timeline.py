"""The worker timeline: which slot ran each file and when, on the real bookshop history (the
analysis frame and its chart), and the live view's SVG from known run states."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from test_charts import check, fields, mark, rows, units

from devformance_nb import analysis, charts, open_store
from devformance_nb.core import events as ev
from devformance_nb.run.state import RunState
from devformance_nb.ui import text, timeline
from devformance_nb.ui.pane import Budget
from devformance_nb.ui.timeline import (
    Bar,
    TimelineView,
    bars,
    fit_marks,
    marks,
    timeline_html,
    timeline_svg,
)

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]  # the session's bookshop history: db, facts


# --- the analysis frame and its chart, on the history (two workers per run) ---


def test_every_file_of_the_run_on_its_slot_one_at_a_time(db: Path, facts: Facts) -> None:
    latest = facts.run("flaky")
    df = analysis.worker_timeline(db, "latest")
    stored = open_store(db).query(
        "SELECT file, worker, status, duration FROM test_files WHERE run_id = ?", [latest]
    )
    assert len(df) == len(stored) >= facts.baseline_files, "every file of the run"
    assert set(df["run_id"]) == {latest} and set(df["worker"]) == {0, 1}
    expected = {r["file"]: r for r in stored}
    for row in df.itertuples():
        stored_row = expected[row.file]
        assert (row.worker, row.status) == (stored_row["worker"], stored_row["status"])
        assert 0 <= row.start_s < row.end_s
        assert row.duration_s == pytest.approx(row.end_s - row.start_s)
        assert row.duration_s == pytest.approx(stored_row["duration"], abs=1e-3)
    for _, slot in df.groupby("worker"):  # in start order, each file starts after the last ends
        assert list(slot["start_s"]) == sorted(slot["start_s"])
        spans = list(zip(slot["start_s"], slot["end_s"], strict=True))
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    # the flaky test's file failed: its row says so, and counts the failing test
    (flag,) = df[df["file"] == facts.flaky_test.split("::")[0]].itertuples()
    assert flag.status == "failed" and flag.failed == 1
    assert analysis.worker_timeline(db, facts.run("baseline"))["run_id"].unique().tolist() == [
        facts.run("baseline")
    ]


def test_the_chart_draws_a_bar_per_file_on_its_slot(db: Path) -> None:
    df = analysis.worker_timeline(db, "latest")
    spec = check(charts.worker_timeline(df), df)
    (unit,) = units(spec)
    assert mark(unit) == "bar"
    assert fields(unit) == {
        "x": "start_s", "x2": "end_s", "y": "worker", "color": "status",
    }  # fmt: skip
    tooltip = [t["field"] for t in unit["encoding"]["tooltip"]]
    assert tooltip[:2] == ["file", "duration_s"]
    (data,) = rows(spec)
    assert sorted(r["file"] for r in data) == sorted(df["file"])
    scale = unit["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"], strict=True)) == {
        s: charts.STATUS_COLORS[s] for s in sorted(set(df["status"]))
    }
    assert spec["description"].startswith("devformance_nb worker_timeline")
    assert re.match(r"2 worker slots busy \d+% of [\d.]+ s", spec["title"]["subtitle"])


@pytest.mark.quick
def test_the_chart_of_a_run_without_slots_says_so() -> None:
    empty = pd.DataFrame(columns=["file", "worker", "start_s", "end_s", "duration_s", "status"])
    spec = charts.worker_timeline(empty).to_dict()
    assert spec["title"]["subtitle"] == "no file of this run has a worker slot recorded"


@pytest.mark.quick
def test_busy_share_counts_the_slots_idle_time() -> None:
    df = pd.DataFrame(
        {"worker": [0, 0, 1], "start_s": [0.0, 2.0, 0.0], "end_s": [1.0, 4.0, 1.0]}
    )  # two slots over 4 s: 4 s of work in 8
    assert charts.timeline.busy_share(df) == pytest.approx(0.5)


# --- the live view's timeline, from known run states ---


def state_of(
    *files: tuple[str, int, float, float | None, str], pending: tuple[str, ...] = ()
) -> RunState:
    """A run of two workers started at t=100 with ``(key, slot, start, end or None, status)``
    files and ``pending`` ones."""
    state = RunState(run_id="r")
    keys = [f[0] for f in files] + list(pending)
    state.apply(ev.RunStarted(root="/p", files=keys, workers=2, executor="spawn", t=100.0))
    for key, slot, start, end, status in files:
        state.apply(ev.FileStarted(file=key, path=key, pid=1, command=[], t=start, worker=slot))
        if end is not None:
            state.apply(
                ev.FileFinished(file=key, status=status, returncode=0, duration=end - start, t=end)
            )
    return state


@pytest.mark.quick
def test_bars_run_from_the_runs_start_and_a_running_file_reaches_now() -> None:
    state = state_of(
        ("a.py", 0, 100.5, 102.0, "passed"),
        ("b.py", 1, 100.5, 101.0, "failed"),
        ("c.py", 1, 101.5, None, "running"),
        pending=("d.py",),
    )
    assert bars(state, now=104.0) == [
        Bar("a.py", 0, 0.5, 2.0, "passed"),
        Bar("b.py", 1, 0.5, 1.0, "failed"),
        Bar("c.py", 1, 1.5, 4.0, "running"),
    ], "by slot then start; d.py never started"
    assert bars(RunState(run_id="r"), now=1.0) == []


@pytest.mark.quick
def test_a_file_without_a_slot_is_left_out() -> None:
    state = state_of(("a.py", 0, 100.5, 102.0, "passed"))
    state.apply(ev.FileStarted(file="old.py", path="old.py", pid=1, command=[], t=100.2))
    assert [b.key for b in bars(state, now=103.0)] == ["a.py"]


@pytest.mark.quick
def test_each_file_is_a_rect_on_its_row_with_its_file_and_duration() -> None:
    found = [
        Bar("tests/test_a.py", 0, 0.0, 5.0, "passed"),
        Bar("tests/test_b.py", 1, 0.0, 2.5, "failed"),
        Bar("tests/<odd>.py", 1, 5.0, 10.0, "running"),
    ]
    svg = timeline_svg(found, slots=2, span=10.0)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    rects = re.findall(
        r'<g style="fill:([^"]+)" data-status="(\w+)">(.*?)</g>', svg
    )  # one group per status, in its live-view colour
    assert {status: colour for colour, status, _ in rects} == {
        s: text.COLOURS[s] for s in ("passed", "failed", "running")
    }
    inner = timeline.WIDTH - timeline.GUTTER
    row = timeline.row_height(2)
    drawn = {
        status: re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"', group)
        for _, status, group in rects
    }
    gutter = timeline.GUTTER
    assert drawn["passed"] == [(f"{gutter:.1f}", "0.0", f"{inner / 2:.1f}")]
    assert drawn["failed"] == [(f"{gutter:.1f}", f"{row:.1f}", f"{inner / 4:.1f}")]
    assert drawn["running"] == [(f"{gutter + inner / 2:.1f}", f"{row:.1f}", f"{inner / 2:.1f}")]
    titles = re.findall(r"<title>(.*?)</title>", svg)
    assert titles == [
        "tests/test_a.py: 5.00 s, passed",
        "tests/test_b.py: 2.50 s, failed",
        "tests/&lt;odd&gt;.py: running for 5 s",
    ]
    # the slot numbers and round times on the axis
    assert re.findall(r'dy=".35em">(\d+)</text>', svg) == ["0", "1"]
    assert re.findall(r">(\d+ s)</text>", svg) == ["0 s", "2 s", "4 s", "6 s", "8 s"]


@pytest.mark.quick
def test_an_idle_slot_is_an_empty_track() -> None:
    svg = timeline_svg([Bar("a.py", 0, 0.0, 1.0, "passed")], slots=3, span=4.0)
    tracks = re.search(r'<g style="fill:[^"]+;opacity:.35">(.*?)</g>', svg)
    assert tracks is not None and tracks.group(1).count("<rect") == 3, "a track for every slot"
    assert svg.count("<title>") == 1


@pytest.mark.quick
def test_narrow_neighbours_merge_into_one_mark_stacked_by_status() -> None:
    # 40 files of a quarter second each, back to back on one slot, over 1,000 s: each is
    # far too narrow to see (or hover) alone
    found = [
        Bar(f"t{i:03d}.py", 0, i * 0.25, i * 0.25 + 0.25, "failed" if i % 4 == 0 else "passed")
        for i in range(40)
    ]
    found.append(Bar("long.py", 0, 10.0, 1000.0, "passed"))
    drawn = marks(found, span=1000.0, width=1000.0)
    assert [(m.status, m.top, m.share) for m in drawn[:2]] == [
        ("failed", 0.0, 0.25), ("passed", 0.25, 0.75),
    ]  # fmt: skip
    assert drawn[0].title == "40 files in 10.0 s (10 failed, 30 passed): t000.py … t039.py"
    assert drawn[0].x == 0 and drawn[0].width == pytest.approx(10.0)
    assert [m.title for m in drawn[2:]] == ["long.py: 990.0 s, passed"], "a wide bar stays"


def files_in(drawn: list[timeline.Mark]) -> int:
    """How many files the marks stand for (a merged mark's title counts them)."""
    count = 0
    for m in drawn:
        merged = re.match(r"(\d+) files in", m.title)
        count += (int(merged.group(1)) if merged else 1) if m.top == 0 else 0
    return count


@pytest.mark.quick
def test_thousands_of_files_stay_a_bounded_drawing() -> None:
    found = [
        Bar(f"tests/test_{i:05d}.py", i % 8, (i // 8) * 1.0, (i // 8) * 1.0 + 0.9, "passed")
        for i in range(8_000)
    ]
    drawn = fit_marks(found, span=1000.0)
    assert 8 * 10 < len(drawn) <= timeline.MAX_MARKS, "merged, but each mark still local"
    assert files_in(drawn) == 8_000
    few = found[:16]  # two seconds on eight slots: every file is wide enough to be its own
    assert len(fit_marks(few, span=2.0)) == 16
    svg = timeline_svg(found, slots=8, span=1000.0)
    assert len(svg) < 100_000 and svg.count("<title>") == len(drawn)


@pytest.mark.quick
def test_the_block_says_how_busy_the_workers_were_and_draws_nothing_before_a_start() -> None:
    state = state_of(("a.py", 0, 100.0, 104.0, "passed"), ("b.py", 1, 100.0, 102.0, "passed"))
    state.apply(ev.RunDone(status="passed", duration=4.0, t=104.0))
    html = timeline_html(state, now=200.0)
    assert "2 slots busy 75% of 4 s" in html and "running" not in html
    assert html.count("<svg") == 1
    assert timeline_html(None, now=1.0) == ""
    assert timeline_html(state_of(), now=101.0) == ""


@pytest.mark.quick
def test_the_widget_redraws_at_its_own_pace_within_the_budget() -> None:
    view = TimelineView()
    state = state_of(("a.py", 0, 100.0, None, "running"))
    roomy = Budget(1e9, 1e12)
    assert view.update(None, now=9.9, budget=roomy, final=True) == (0, 0), "nothing to draw"
    sent, size = view.update(state, now=10.0, budget=roomy, final=False)
    assert sent == 1, "the first bars go at once"
    assert size > len(view.widget.value) > 0 and "a.py: running" in view.widget.value
    assert view.update(state, now=10.5, budget=roomy, final=False) == (0, 0), "too soon"
    spent = Budget(1.0, 1.0)
    spent.charge(10, 10)
    assert view.update(state, now=12.0, budget=spent, final=False) == (0, 0), "no budget left"
    state.apply(ev.FileFinished(file="a.py", status="passed", returncode=0, duration=1, t=101))
    assert view.update(state, now=12.1, budget=spent, final=True)[0] == 1, "the last draw goes"
    assert "a.py: 1.00 s, passed" in view.widget.value
    assert view.update(None, now=20.0, budget=roomy, final=True)[0] == 1
    assert view.widget.value == "", "a new run starts with nothing drawn"
