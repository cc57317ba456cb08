"""CPU and memory per test file over runs, and its chart, on the real bookshop history."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from test_charts import check, fields, mark, units

from devformance_nb import analysis, charts, open_store

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
