"""CPU and memory: measured in a test process, and per test file over runs (with its chart)
on the real bookshop history."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_charts import check, fields, mark, units

from devformance_nb import analysis, charts, open_store
from devformance_nb.plugin.usage import TestCost, own_usage, resident_bytes

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]  # the session's bookshop history: db, facts


def test_every_file_with_its_peak_memory_and_cpu_heaviest_first(db: Path, facts: Facts) -> None:
    df = analysis.resource_usage(db, "all", limit=100)
    stored = open_store(db).query(
        "SELECT file, count(*) AS runs, max(peak_rss) AS peak FROM test_files "
        "WHERE run_id IN (SELECT unnest(?)) GROUP BY file",
        [facts.ids],
    )
    assert sorted(df["file"]) == sorted(r["file"] for r in stored), "every file of the history"
    expected = {r["file"]: (r["runs"], r["peak"] / 1e6) for r in stored}
    for row in df.itertuples():
        runs, peak_mb = expected[row.file]
        assert row.runs == runs and abs(row.max_peak_mb - peak_mb) < 1e-6
        # a pytest process holds tens of megabytes; a tiny test file burns well under a core
        assert 10 < row.median_peak_mb < 2_000 and row.median_cpu_s > 0
        assert 0 < row.cpu_share < 2.5 and row.peak_threads >= 1 and row.peak_processes >= 1
    assert list(df["median_peak_mb"]) == sorted(df["median_peak_mb"], reverse=True)


def test_the_chart_puts_cpu_across_and_memory_up(db: Path) -> None:
    df = analysis.resource_usage(db, "all")
    spec = check(charts.resource_usage(df), df)
    (unit,) = units(spec)
    assert mark(unit) == "circle"
    assert fields(unit) == {"x": "median_cpu_s", "y": "median_peak_mb"}


def test_every_test_with_its_memory_growth_and_cpu_most_growth_first(
    db: Path, facts: Facts
) -> None:
    df = analysis.heaviest_tests(db, "all", limit=1000)
    stored = open_store(db).query(
        "SELECT nodeid, count(*) AS runs, max(memory_growth) AS growth FROM tests "
        "WHERE run_id IN (SELECT unnest(?)) AND cpu IS NOT NULL GROUP BY nodeid",
        [facts.ids],
    )
    assert sorted(df["nodeid"]) == sorted(r["nodeid"] for r in stored), "every measured test"
    expected = {r["nodeid"]: (r["runs"], r["growth"] / 1e6) for r in stored}
    for row in df.itertuples():
        runs, growth_mb = expected[row.nodeid]
        assert row.runs == runs and abs(row.max_growth_mb - growth_mb) < 1e-6
    growth = list(df["median_growth_mb"].dropna())
    assert growth == sorted(growth, reverse=True)


def test_the_per_test_chart_puts_cpu_across_and_growth_up(db: Path) -> None:
    df = analysis.heaviest_tests(db, "all")
    spec = check(charts.heaviest_tests(df), df)
    (unit,) = units(spec)
    assert mark(unit) == "circle"
    assert fields(unit) == {"x": "median_cpu_s", "y": "median_growth_mb", "size": "cpu_share"}


@pytest.mark.quick
def test_a_test_cost_is_its_cpu_and_what_it_kept() -> None:
    cost = TestCost()
    cost.start()
    kept = bytearray(30 * 1000 * 1000)
    for i in range(0, len(kept), 4096):
        kept[i] = 1
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    measured = cost.stop()
    assert measured["cpu"] >= 0.05
    assert measured["memory_growth"] >= 0.8 * len(kept)
    usage = own_usage()
    assert usage["cpu_user"] > 0 and usage["max_rss"] >= (resident_bytes() or 0) * 0.5
