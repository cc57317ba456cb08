"""The contract between the launcher and each pytest child: what the parent tells a child.

The launcher sets these environment variables for every child; the plugin reads them. The
plugin does nothing in a pytest process that lacks ``ENV_EVENTS``.
"""

from __future__ import annotations

#: path of the child's own events file (JSON lines)
ENV_EVENTS = "DEVFORMANCE_EVENTS"
#: the run's id, stamped on every event
ENV_RUN_ID = "DEVFORMANCE_RUN_ID"
#: the test file's key (its path relative to the project root)
ENV_FILE = "DEVFORMANCE_FILE"
#: the plugin's settings, as JSON (SQL capture and coverage)
ENV_OPTIONS = "DEVFORMANCE_OPTIONS"
#: the launcher's pid: a child whose launcher is gone ends itself
ENV_PARENT = "DEVFORMANCE_PARENT_PID"
