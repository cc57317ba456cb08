"""Which worker slot ran each test file of a run, and when (the worker timeline).

Each test file's row keeps the slot of the worker thread that ran it (``test_files.worker``,
0 to workers - 1) with its start and end; laid out per slot, the run's idle gaps and its long
tail show at a glance. Runs recorded before slots were have none and give an empty frame.
"""

from __future__ import annotations

import pandas as pd

from devformance_nb.analysis.select import StoreLike, as_store, frame, select_one


def worker_timeline(store: StoreLike, run: str = "latest") -> pd.DataFrame:
    """Each test file of one run on the worker slot that ran it: ``worker`` (0 to workers - 1),
    ``start_s`` and ``end_s`` in seconds from the run's start, ``duration_s``, ``status``,
    ``tests`` and ``failed`` (failed and erroring tests); by slot, then start.

    A file still running when the run was recorded (an interrupted run) ends at its last
    known duration. Files that never started, and runs recorded before slots were, have no
    slot and are left out.
    """
    s = as_store(store)
    with s.reading() as con:
        run_id = select_one(con, run, s.path)
        return frame(
            con,
            """
            WITH f AS (
                SELECT f.run_id, f.file, f.worker, f.status, f.tests,
                       coalesce(f.failed, 0) + coalesce(f.errors, 0) AS failed,
                       date_diff('microsecond', r.started, f.started) / 1e6 AS start_s,
                       date_diff('microsecond', r.started, f.finished) / 1e6 AS finished_s,
                       f.duration
                FROM test_files f JOIN runs r USING (run_id)
                WHERE f.run_id = ? AND f.worker IS NOT NULL AND f.started IS NOT NULL
            )
            SELECT run_id, file, worker, start_s,
                   coalesce(finished_s, start_s + coalesce(duration, 0)) AS end_s,
                   coalesce(finished_s, start_s + coalesce(duration, 0)) - start_s
                       AS duration_s,
                   status, tests, failed
            FROM f ORDER BY worker, start_s, file
            """,
            [run_id],
        )
