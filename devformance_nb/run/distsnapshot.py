"""The installed distributions, read once in the fork server for every child (runtime layer).

Every pytest start reads the metadata of every installed distribution three times: pluggy
loads the ``pytest11`` entry points (each distribution's ``entry_points.txt``), pytest marks
the plugins' files for assertion rewriting (again, plus their ``RECORD``), and the terminal
header names each plugin's version (its ``METADATA``). In a notebook user's environment
(JupyterLab and its 150 distributions) that is about 30 ms of a trivial file's 90 ms child,
paid again by every file. The answers depend only on what is installed, so the fork server
reads them once and its children find them read.

Faithful by construction: a child gets the snapshot only while the distributions it would
find are the ones the server found (the same folders holding distributions, in the same order,
unchanged since, and the same metadata finders); anything else, a ``pip install`` in the
meantime or a folder of distributions put on ``sys.path`` by a conftest, reads afresh.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

#: how a folder on ``sys.path`` is told apart: its path, and its mtime (an install changes it)
_Folder = tuple[str, int]


class KeptDistribution(importlib.metadata.PathDistribution):
    """A distribution whose metadata files, entry points, metadata and file list are read
    once; each later read returns what was read (copies, where a caller could change it)."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self._texts: dict[str, str | None] = {}

    def read_text(self, filename: str) -> str | None:  # type: ignore[override]
        if filename not in self._texts:
            self._texts[filename] = super().read_text(filename)
        return self._texts[filename]

    @functools.cached_property
    def entry_points(self) -> importlib.metadata.EntryPoints:  # type: ignore[override]
        return importlib.metadata.PathDistribution.entry_points.fget(self)  # type: ignore[attr-defined,no-any-return]

    @functools.cached_property
    def metadata(self) -> Any:  # type: ignore[override]
        return importlib.metadata.PathDistribution.metadata.fget(self)  # type: ignore[attr-defined]

    @property
    def files(self) -> list[Any] | None:  # type: ignore[override]
        kept = self._kept_files
        return list(kept) if kept is not None else None

    @functools.cached_property
    def _kept_files(self) -> list[Any] | None:
        return importlib.metadata.PathDistribution.files.fget(self)  # type: ignore[attr-defined,no-any-return]


class Snapshot:
    """The distributions ``importlib.metadata.distributions()`` found when it was taken, and
    what must not have changed for a later call to get them instead of reading afresh."""

    def __init__(self, found: Callable[[], Iterable[Any]]) -> None:
        self._fresh = found
        self.key = current_key()
        self.distributions = [_kept(dist) for dist in found()]

    def warm(self) -> None:
        """Read now what every pytest start reads: entry points, metadata, and the file
        lists of pytest plugins (a child then reads no metadata file at all)."""
        for dist in self.distributions:
            with contextlib.suppress(Exception):  # a broken distribution: its child reads it
                points = dist.entry_points
                dist.metadata  # noqa: B018 - read once, here
                if any(point.group == "pytest11" for point in points):
                    dist.files  # noqa: B018 - read once, here

    def __call__(self, **kwargs: Any) -> Iterator[Any]:
        """``importlib.metadata.distributions``: the snapshot when nothing it depends on
        changed and nothing narrows the search, else a fresh search."""
        if not kwargs and current_key() == self.key:
            return iter(self.distributions)
        return iter(self._fresh(**kwargs))


def _kept(dist: Any) -> Any:
    path = getattr(dist, "_path", None)
    if type(dist) is not importlib.metadata.PathDistribution or path is None:
        return dist  # another finder's distribution: as found
    return KeptDistribution(path)


def current_key() -> tuple[tuple[_Folder, ...], tuple[int, ...]]:
    """What the distributions found depend on: the folders of ``sys.path`` holding
    distributions (in order, each with its mtime) and the finders that can find them."""
    finders = tuple(id(f) for f in sys.meta_path if hasattr(f, "find_distributions"))
    folders = []
    for entry in sys.path:
        folder = _folder(entry)
        if folder is not None and _holds_distributions(*folder):
            folders.append(folder)
    return tuple(folders), finders


def _folder(entry: str) -> _Folder | None:
    try:
        path = os.path.abspath(entry)  # '' is the current folder, which a child changes
        return path, os.stat(path).st_mtime_ns
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=256)
def _holds_distributions(path: str, mtime: int) -> bool:
    # keyed by mtime: a folder that gains a distribution is listed again
    if not os.path.isdir(path):
        return path.endswith((".egg", ".zip", ".whl"))  # an archive on the path: assume so
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(name.endswith((".dist-info", ".egg-info")) for name in names)


def install() -> Snapshot | None:
    """Take the snapshot, read it, and make ``importlib.metadata.distributions`` (and so
    ``entry_points``, pluggy's and pytest's plugin discovery) answer from it. Call once, in
    the fork server, after its imports; returns None (and changes nothing) if this Python's
    ``importlib.metadata`` is not the one this was written for."""
    module: Any = importlib.metadata
    found = getattr(module, "distributions", None)
    if found is None or isinstance(found, Snapshot) or not hasattr(module, "PathDistribution"):
        return None
    try:
        snapshot = Snapshot(found)
        snapshot.warm()
    except Exception:
        return None
    module.distributions = snapshot
    return snapshot
