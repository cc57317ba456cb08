"""What the code of a file is to the stack walk: the project's, installed, set-up work, the loop.

The stack walk classifies each frame by its code's file once (``FrameIndex``); this module
holds the rules that do not depend on the project root: which folders are never project code,
and which installed files mark a statement as set-up work or a frame as asyncio's task step.
"""

from __future__ import annotations

import os
import re
import sysconfig
from dataclasses import dataclass

#: path parts that mark installed third-party code, never project code
INSTALLED_MARKERS = ("site-packages", "dist-packages")

#: this package's own folder: its frames (the capture itself, the plugin) are never callers
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def folder_prefix(path: str) -> str:
    """A normalised real path ending in a separator, for prefix tests."""
    return os.path.normcase(os.path.realpath(path)).rstrip(os.sep) + os.sep


def excluded_prefixes() -> tuple[str, ...]:
    """Folders whose code is never a project frame: the stdlib and this package."""
    paths = sysconfig.get_paths()
    folders = {paths[key] for key in ("stdlib", "platstdlib") if paths.get(key)}
    folders.add(PACKAGE_DIR)
    return tuple(sorted(folder_prefix(folder) for folder in folders))


@dataclass(frozen=True)
class Library:
    """A library whose statements are tagged: its name and its functions that send them."""

    name: str
    senders: frozenset[str]


#: the kind of a file that creates, initialises or migrates a database: a statement with one
#: of its frames on the stack is set-up work, whatever project frames are on it too
SETUP = Library("", frozenset())
#: such files, matched on a real path with forward slashes (installed code only: a project's
#: own files are project code): Django's migrations, migrate command and test database
#: creation, pytest-django's database fixtures, alembic, SQLAlchemy's DDL runner (create_all),
#: an engine's first connect and its pool (connect and checkout listeners: an application's
#: statements never run under the pool's frames)
_SETUP_PATH = re.compile(
    r"/(?:django/db/migrations/|django/core/management/commands/migrate\.py$"
    r"|django/db/backends/[^/]+/creation\.py$|pytest_django/fixtures\.py$|alembic/"
    r"|sqlalchemy/sql/ddl\.py$|sqlalchemy/engine/create\.py$|sqlalchemy/pool/)"
)

#: the kind of asyncio's ``events.py``: its ``Handle._run`` runs a task's step, so a stack
#: passing it goes on in the task that awaits the running one (``tasks.awaiting_frames``)
LOOP = Library("asyncio", frozenset())
_LOOP_FILE = "/asyncio/events.py"


def special_kind(norm: str) -> Library | None:
    """``SETUP`` or ``LOOP`` for a file at ``norm`` (a normalised real path), else None."""
    slashed = norm.replace(os.sep, "/")
    if _SETUP_PATH.search(slashed):
        return SETUP
    if slashed.endswith(_LOOP_FILE):
        return LOOP
    return None
