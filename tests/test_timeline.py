"""The worker timeline: which slot ran each file and when, on the real bookshop history (the
analysis frame and its chart)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from test_charts import check, fields, mark, rows, units

from devformance_nb import analysis, charts, open_store

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
