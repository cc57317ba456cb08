"""A pytest plugin for the test history's children: planted slow statements stay far over the
threshold, and every other statement far under it, however fast or busy the machine.

The bookshop's planted slow statements are correlated subqueries that take about 23 million
SQLite steps; every other statement of the demo takes under 100 thousand. A wall-clock
threshold between them depends on the machine: on a fast idle one a planted statement takes
250 ms, on a loaded one an ordinary statement can be held up past 100 ms. SQLite's progress
handler counts steps, not time, so a pause every ``STEPS`` steps adds at least
``PAUSE * 23`` seconds to each planted statement on any machine and nothing to the others.

The pauses are kept short: a file's duration must stay what its own work makes it. With
0.1 s pauses the raw-SQL report file (one planted statement, two after the "regress" step)
took as long as the import file, the demo's slowest by real work, and which of the two came
first in ``slowest_files`` depended on the machine.
``tests/history.py`` loads it (``PYTEST_ADDOPTS``) and sets the threshold (``THRESHOLD_MS``).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

#: SQLite virtual machine steps between two pauses: ten times the demo's largest ordinary
#: statement, a twenty-third of a planted slow one
STEPS = 1_000_000
#: seconds each pause lasts
PAUSE = 0.03
#: the slow-query threshold of the test history: planted statements pause at least 0.69 s in
#: all, ordinary ones would need to be held up five times longer than ever seen under load
#: (113 ms)
THRESHOLD_MS = 500.0


def _pause() -> int:
    time.sleep(PAUSE)
    return 0  # 0: go on with the statement


def _with_floor(connect: Any) -> Any:
    """``connect`` whose connections pause every ``STEPS`` steps."""

    def floored_connect(*args: Any, **kwargs: Any) -> Any:
        connection = connect(*args, **kwargs)
        connection.set_progress_handler(_pause, STEPS)
        return connection

    return floored_connect


def pytest_configure(config: Any) -> None:
    """Install the pauses in this child (on load as a plugin; importing it changes nothing)."""
    # sqlite3.connect and sqlite3.dbapi2.connect (which SQLAlchemy calls) are separate names;
    # the SQL capture wraps whichever function it finds, before or after this one, and passes
    # its own connection factory through
    sqlite3.connect = _with_floor(sqlite3.connect)
    sqlite3.dbapi2.connect = _with_floor(sqlite3.dbapi2.connect)
