"""How the project's code reaches Dask workers: one small class per way, behind ``Shipping``.

- ``SharedFilesystem``: the workers read the project where the launcher does. Chosen when
  every worker reads back a token file the launcher just wrote under the root (the same
  filesystem, not only a folder of the same name), or when ``dask_ship = "shared"``.
- ``ShippedArchive``: the project root zipped (minus ``LEFT_OUT``, virtualenvs and symlinked
  folders, said in the run's output; never a folder holding a test file of the run),
  scattered to every worker with ``Client.scatter`` and unpacked once per worker into its
  Dask local directory (``daskwork.unpack``). Coverage data comes back with each file's
  result, its paths moved to the launcher's root.

Either way each file's events, output and samples stream back to the launcher's run
directory (``daskstream``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

from devformance_nb.core.config import STATE_DIR
from devformance_nb.logic.discovery import TestFile
from devformance_nb.run import daskwork

#: folders never shipped: version control, devformance's own runs, caches of tools
LEFT_OUT = (
    ".git",
    ".hg",
    ".svn",
    STATE_DIR,
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
)


class Shipping(Protocol):
    """How each task finds the project."""

    name: str
    #: the archive each task unpacks ('' when the workers share the launcher's filesystem)
    digest: str
    #: what every task gets besides its spec (a scattered archive, or None)
    argument: Any
    #: one line for the run's output: how the code reached the workers
    note: str

    def close(self) -> None:
        """Release what the cluster holds for this run."""


class SharedFilesystem:
    """The workers read the project at the launcher's own path."""

    name = "shared"
    digest = ""
    argument = None

    def __init__(self, root: Path, how: str):
        self.note = f"Dask workers read the project at {root} ({how})"

    def close(self) -> None:
        """Nothing was sent."""


@dataclass
class Archive:
    """The zipped project and what was left out of it."""

    data: bytes
    files: int
    left_out: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:16]


class ShippedArchive:
    """The project as a zip, scattered once to every worker (a worker that joins later gets
    it from a peer, through Dask)."""

    name = "archive"

    def __init__(self, client: Any, archive: Archive):
        self.digest = archive.digest
        self.argument = client.scatter(archive.data, broadcast=True, hash=False)
        left = ", ".join(archive.left_out) or "nothing"
        self.note = (
            f"project shipped to the Dask workers as a zip archive ({archive.files} files, "
            f"{len(archive.data) / 1e6:.1f} MB); left out: {left}"
        )

    def close(self) -> None:
        self.argument.release()


def _virtualenv(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "pyvenv.cfg"))


def build_archive(root: Path, keep: Iterable[Path] = ()) -> Archive:
    """Zip ``root`` without ``LEFT_OUT``, virtualenvs and symlinked folders, except any folder
    that holds a path of ``keep`` (the run's test files: the tests folder always goes)."""
    kept = {os.fspath(p) for path in keep for p in Path(path).resolve().parents}
    left: dict[str, list[str]] = {}
    files = 0
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for folder, dirs, names in os.walk(root):
            for name in list(dirs):
                full = os.path.join(folder, name)
                why = _left_out(name, full)
                if why and full not in kept:
                    dirs.remove(name)
                    left.setdefault(why, []).append(os.path.relpath(full, root))
            for name in names:
                full = os.path.join(folder, name)
                if os.path.isfile(full):  # a dangling link is no file to ship
                    zf.write(full, os.path.relpath(full, root))
                    files += 1
    return Archive(buffer.getvalue(), files, _said(left))


def _left_out(name: str, full: str) -> str:
    """Why the folder is not shipped ('' if it is)."""
    if name in LEFT_OUT:
        return name
    if os.path.islink(full):
        return "symlinked folders"
    if _virtualenv(full):
        return "virtualenvs"
    return ""


def _said(left: dict[str, list[str]]) -> list[str]:
    """Each reason once: a name with its count, or the paths of the few it covers."""
    said = []
    for why, paths in left.items():
        if len(paths) == 1 and paths[0] == why:
            said.append(why)
        elif why in LEFT_OUT:
            said.append(f"{why} ({len(paths)} folders)" if len(paths) > 1 else paths[0])
        else:
            shown = ", ".join(sorted(paths)[:3]) + (", ..." if len(paths) > 3 else "")
            said.append(f"{why} ({shown})")
    return said


def workers_share(client: Any, root: Path) -> bool:
    """Whether every worker reads a token file the launcher just wrote under ``root``."""
    token = secrets.token_hex(16)
    folder = root / STATE_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"dask-probe-{token}"
    path.write_text(token, encoding="utf-8")
    try:
        answers = client.run(daskwork.probe, os.fspath(path), token)
    finally:
        path.unlink(missing_ok=True)
    return bool(answers) and all(answers.values())


def choose_shipping(client: Any, root: Path, files: Sequence[TestFile], mode: str) -> Shipping:
    """The way the project reaches the workers for ``mode`` ("auto", "shared", "archive")."""
    if mode == "shared":
        return SharedFilesystem(root, "shared filesystem, as dask_ship says")
    if mode == "auto" and workers_share(client, root):
        return SharedFilesystem(root, "shared filesystem: every worker read a file written here")
    return ShippedArchive(client, build_archive(root, [f.path for f in files]))
