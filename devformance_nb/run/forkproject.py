"""The project's side of a fork server (runtime layer): when a server is stale, and which
imports the last one found failing.

A server preloads modules and reads no conftest, so it is current while the project's
configuration files and the project files it imported are unchanged (``project_signature``,
plus the imported files' times the executor adds). Imports that failed in a server are
remembered per project and interpreter, so the next server leaves them out at once.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from devformance_nb.core.config import STATE_DIR


def project_signature(root: Path, preload: list[str]) -> tuple[tuple[str, float], ...]:
    """Modification times of what the server preloads: a change means a restart."""
    names = ("conftest.py", "pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__")) and d not in _SKIP_DIRS]
        for name in files:
            if name in names:
                path = os.path.join(folder, name)
                found.append((path, os.stat(path).st_mtime))
    return tuple(sorted(found)) + tuple((name, 0.0) for name in preload)


_SKIP_DIRS = frozenset({"node_modules", "site-packages", "build", "dist", "venv", "env"})

#: where a project keeps the imports that failed in its last server (see ``known_failures``)
FAILURES_FILE = "forkserver-skip.json"


def known_failures(root: Path, python: str) -> list[str]:
    """The imports that failed in this project's last server for ``python``.

    A failed import means a second server process that leaves it out (``forkserve.serve``):
    a Django project's model modules fail without settings in every run (one more start-up
    of the server, 0.5-1 s, each run). Remembered, the first server leaves them out at once.
    A module that would import now is only imported by each child instead; a new failure
    still restarts the server, and the list is written again."""
    try:
        found = json.loads((root / STATE_DIR / FAILURES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(found, dict) or found.get("python") != python:
        return []
    return sorted(str(name) for name in found.get("skip", []))


def remember_failures(root: Path, python: str, names: list[str]) -> None:
    """Write ``names`` for the next server (best effort: an unwritable project just restarts)."""
    path = root / STATE_DIR / FAILURES_FILE
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"python": python, "skip": sorted(names)}), encoding="utf-8")
        os.replace(temp, path)
