"""What test files and tests cost the machine: memory and CPU seconds, over runs.

Each test file's process tree is sampled while it runs and counts its own CPU and peak
memory when it ends (``test_files.peak_rss``, ``cpu_user``, ``cpu_system``); these questions
read those columns. Runs recorded before they existed have none and are left out, and so
are a --changed run's carried copies (the measurement is the run's that ran the file).
"""

from __future__ import annotations

import pandas as pd

from devformance_nb.analysis.select import IN_RUNS, MEASURED, Runs, StoreLike, runs_frame


def resource_usage(store: StoreLike, runs: Runs = "last:20", limit: int = 30) -> pd.DataFrame:
    """Per test file over the selected runs: median and largest peak memory (MB), median CPU
    seconds and wall seconds, the CPU share (CPU over wall: 1.0 is one core busy all the
    time), peak threads and processes; heaviest memory first."""
    return runs_frame(
        store,
        runs,
        f"""
            SELECT x.file, count(*) AS runs,
                   median(x.peak_rss) / 1e6 AS median_peak_mb,
                   max(x.peak_rss) / 1e6 AS max_peak_mb,
                   median(x.cpu_user + x.cpu_system) AS median_cpu_s,
                   median(x.duration) AS median_duration_s,
                   median(x.cpu_user + x.cpu_system) / nullif(median(x.duration), 0)
                       AS cpu_share,
                   max(x.peak_threads) AS peak_threads,
                   max(x.peak_processes) AS peak_processes,
                   arg_max(x.status, r.started) AS latest_status
            FROM test_files x JOIN runs r USING (run_id)
            WHERE x.{IN_RUNS} AND x.peak_rss IS NOT NULL AND x.{MEASURED}
            GROUP BY x.file ORDER BY median_peak_mb DESC, x.file LIMIT {int(limit)}
            """,
    )


def heaviest_tests(store: StoreLike, runs: Runs = "last:20", limit: int = 30) -> pd.DataFrame:
    """Per test over the selected runs: median and largest growth of its process's resident
    memory (MB, measured in the child from set-up to teardown; a test that keeps what it
    allocated grows it), median CPU seconds and CPU share of its duration; most growth first."""
    return runs_frame(
        store,
        runs,
        f"""
            SELECT x.nodeid, any_value(x.file) AS file, count(*) AS runs,
                   median(x.memory_growth) / 1e6 AS median_growth_mb,
                   max(x.memory_growth) / 1e6 AS max_growth_mb,
                   median(x.cpu) AS median_cpu_s,
                   median(x.cpu) / nullif(median(x.duration), 0) AS cpu_share,
                   arg_max(x.outcome, r.started) AS latest_outcome
            FROM tests x JOIN runs r USING (run_id)
            WHERE x.{IN_RUNS} AND x.cpu IS NOT NULL AND x.{MEASURED}
            GROUP BY x.nodeid
            ORDER BY median_growth_mb DESC NULLS LAST, median_cpu_s DESC, x.nodeid
            LIMIT {int(limit)}
            """,
    )
