"""The adapter protocol and the registry of adapters, one per database library.

An adapter hooks one library so that each statement run through it reaches the
:class:`~devformance_nb.plugin.capture.recorder.Recorder` exactly once. Adapters are named in
:data:`ADAPTERS` by import path and loaded only once their library is imported by the code
under test, so a project that never touches a library pays nothing for it and the library
never becomes a requirement.

Adding a library means one new module with an ``Adapter`` subclass and one line in
:data:`ADAPTERS` (a key may name a submodule, e.g. ``django.db``). Rules that keep adapters
independent:

- a DB-API adapter (a driver's cursor) times the driver call and records; its cursor classes
  derive from :class:`~devformance_nb.plugin.capture.recorder.ClaimedCursor`;
- an ORM adapter records statements itself only on cursors that are not claimed; on a
  claimed cursor it just sets ``cursor.devformance_orm`` while its execute runs (and may
  name the DB-API connection by setting its ``devformance_alias``, which the DB-API adapters
  report as the alias); or, where hooking every execute costs too much, it names its package
  and the functions that send statements to the driver (``FrameIndex.tag_library``), and the
  recorder tags statements from the stack it walks anyway (SQLAlchemy does).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from devformance_nb.plugin.capture.recorder import Recorder

#: import name that switches an adapter on -> "module:Class" of the adapter
ADAPTERS: dict[str, str] = {
    "sqlite3": "devformance_nb.plugin.capture.sqlite:SQLite3Adapter",
    "sqlalchemy": "devformance_nb.plugin.capture.sqla:SQLAlchemyAdapter",
    "psycopg": "devformance_nb.plugin.capture.pg3:Psycopg3Adapter",
    "psycopg2": "devformance_nb.plugin.capture.pg2:Psycopg2Adapter",
    "django.db": "devformance_nb.plugin.capture.djangodb:DjangoAdapter",
    # lazy loads: which relation a statement loads, for how many parents
    "sqlalchemy.orm": "devformance_nb.plugin.capture.sqlaloads:SQLAlchemyLoadsAdapter",
    "django.db.models": "devformance_nb.plugin.capture.djangoloads:DjangoLoadsAdapter",
    "django.contrib.contenttypes.fields": (
        "devformance_nb.plugin.capture.djangoloads:DjangoGenericLoadsAdapter"
    ),
    # eager loads a test asked for and never read
    "sqlalchemy.orm.strategies": "devformance_nb.plugin.capture.sqlaeager:SQLAlchemyEagerAdapter",
}


class Adapter(ABC):
    """Hooks one database library into a recorder; ``uninstall`` undoes every hook."""

    #: the library's import name (a key of ADAPTERS)
    library: ClassVar[str] = ""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    @abstractmethod
    def install(self) -> None:
        """Patch or listen; called once, after the library was imported."""

    @abstractmethod
    def uninstall(self) -> None:
        """Undo everything ``install`` did; must be safe to call after a partial install."""


def load_adapter(path: str) -> type[Adapter]:
    """The adapter class named by ``"module:Class"`` (imports the adapter's module)."""
    module_name, _, class_name = path.partition(":")
    found = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(found, type) and issubclass(found, Adapter)):
        raise TypeError(f"{path} is not an Adapter subclass")
    return found
