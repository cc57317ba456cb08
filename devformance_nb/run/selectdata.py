"""The file system side of change-based selection: what a run read, and what changed since.

``recorded_reads`` gathers, for one test file of a finished run, the blocks it executed
(from its coverage data file) and the files it read (the plugin's reads file).
``digests`` fingerprints the files a run saw. ``changes_from_digests`` compares those
fingerprints with the working tree; ``changes_from_git`` asks git what changed since a
revision. Both give ``logic.selection.FileChange`` per changed path.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devformance_nb.logic.selection import (
    PACKAGES,
    PYTHON,
    Block,
    FileChange,
    block_changes,
    blocks_of,
    executed_blocks,
)
from devformance_nb.run.covdata import held, load_parts, relative_name

#: the configuration files hashed with every run (at the root)
ROOT_CONFIG = ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini")


@dataclass
class FileReads:
    """What one test file's child read. ``executed``: source path -> executed block names
    (None: imported but not measured, so the whole file counts)."""

    executed: dict[str, list[str] | None] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)
    #: False when the child left no record (crashed before it wrote one)
    complete: bool = True


@dataclass(frozen=True)
class Digest:
    """A file's content digest, and its blocks when it is Python that parses."""

    digest: str
    blocks: list[Block] | None

    def blocks_json(self) -> str | None:
        """The blocks as stored (JSON ``[[name, start, end, digest], ...]``)."""
        if self.blocks is None:
            return None
        return json.dumps([[b.name, b.start, b.end, b.digest] for b in self.blocks])


def blocks_from_json(text: str | None) -> list[Block] | None:
    """Blocks as ``Digest.blocks_json`` stored them."""
    if not text:
        return None
    return [Block(str(n), int(s), int(e), str(d)) for n, s, e, d in json.loads(text)]


#: the digests a run stored, by path: (content digest, blocks as stored)
KnownDigests = Mapping[str, tuple[str, "str | None"]]


def recorded_reads(
    root: Path,
    coverage_file: str | None,
    reads_file: str,
    blocks: dict[str, Digest | None],
    known: KnownDigests | None = None,
) -> FileReads:
    """What one child read: blocks it executed, modules it imported, data files it opened.

    ``blocks`` caches each source path's current digest across the run's files; ``known``
    (an earlier run's digests) spares parsing a source that did not change since.
    """
    from devformance_nb.plugin.reads import read_reads  # the plugin package imports pytest

    out = FileReads()
    record = read_reads(reads_file)
    if record is None:
        out.complete = False
        opened, imported = set[str](), set[str]()
    else:
        opened, imported = record
    out.opened = opened
    for path in imported:
        out.executed[path] = None
    if coverage_file:
        parts, _ = load_parts(coverage_file)
        lines: dict[str, set[int]] = {}
        for data in parts:
            with held(data):
                _add_lines(data, root, lines)
        for name, executed in lines.items():
            if name not in blocks:
                blocks[name] = digest_of(root, name, known)
            found = blocks[name]
            if not executed:
                continue  # measured, never run here (coverage lists every source file)
            if found is None or found.blocks is None:
                out.executed[name] = None
            else:
                out.executed[name] = executed_blocks(found.blocks, executed)
    return out


def _add_lines(data: Any, root: Path, lines: dict[str, set[int]]) -> None:
    """Add the lines ``data`` ran of each project source to ``lines`` (relative name -> lines)."""
    for filename in data.measured_files():
        name = relative_name(filename, root)
        if name.startswith("/"):
            continue  # outside the project (site-packages): the packages digest
        lines.setdefault(name, set()).update(data.lines(filename) or ())


def digest_of(root: Path, rel: str, known: KnownDigests | None = None) -> Digest | None:
    """The digest of ``root/rel`` now (None: it is not there).

    A Python file's blocks come from parsing it (a big module: tens of milliseconds, at the
    end of every run), unless ``known`` holds this very content's: then from there."""
    try:
        data = (root / rel).read_bytes()
    except OSError:
        return None
    if known is not None and (stored := known.get(rel)) is not None:
        digest = hashlib.sha1(data).hexdigest()
        if stored[0] == digest and (stored[1] is not None or not rel.endswith(".py")):
            return Digest(digest, blocks_from_json(stored[1]))
    return _digest(rel, data)


def _digest(rel: str, data: bytes) -> Digest:
    blocks = None
    if rel.endswith(".py"):
        blocks = blocks_of(data.decode("utf-8", errors="replace"))
    return Digest(hashlib.sha1(data).hexdigest(), blocks)


#: what names an installed distribution in a site-packages folder (its version included)
_INSTALLED = (".dist-info", ".egg-info", ".egg-link", ".pth")
#: the same question asked of another interpreter (``environment``'s subprocess)
_ASK_ENVIRONMENT = f"""
INSTALLED = {_INSTALLED!r}
import os, sys, sysconfig
paths = sorted({{sysconfig.get_paths()[k] for k in ("purelib", "platlib")}})
print(sys.version.replace(chr(10), " "))
for p in paths:
    if os.path.isdir(p):
        print(chr(10).join(sorted(n for n in os.listdir(p) if n.endswith(INSTALLED))))
"""


def _distributions() -> list[str]:
    """The distributions installed in this interpreter's site-packages, by their metadata
    folders' names (``name-version.dist-info``): a listing, not a parse of each.

    Only there: ``sys.path`` differs between processes (a test runner adds its folders),
    and an egg-info found through it would look like a changed install.
    """
    names: list[str] = []
    for path in sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")}):
        try:
            names += sorted(n for n in os.listdir(path) if n.endswith(_INSTALLED))
        except OSError:
            continue
    return names


def environment(python: str | None = None) -> dict[str, str]:
    """Digests of the interpreter's version and its installed distributions (name==version).

    A change to either can change any test's outcome; ``python``: another interpreter
    (asked in a subprocess), default this one.
    """
    if python is None or os.path.abspath(python) == os.path.abspath(sys.executable):
        version, names = sys.version.replace("\n", " "), _distributions()
    else:
        try:
            text = subprocess.run(
                [python, "-c", _ASK_ENVIRONMENT], capture_output=True, text=True, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError):
            text = ""
        version, _, rest = text.partition("\n")
        names = rest.splitlines()
    packages = hashlib.sha1("\n".join(names).encode("utf-8")).hexdigest()
    return {PYTHON: version, PACKAGES: packages}


def global_files(root: Path, test_keys: Iterable[str]) -> list[str]:
    """The root's configuration files and every conftest.py on the way to each test file."""
    found = {name for name in ROOT_CONFIG if (root / name).is_file()}
    folders: set[str] = set()
    for key in test_keys:
        parts = key.split("/")[:-1]
        for i in range(len(parts) + 1):
            folders.add("/".join(parts[:i]))
    for folder in folders:
        rel = f"{folder}/conftest.py" if folder else "conftest.py"
        if (root / rel).is_file():
            found.add(rel)
    return sorted(found)


def changes_from_digests(
    root: Path,
    stored: Mapping[str, tuple[str, str | None]],
    now_global: Iterable[str],
    env: Mapping[str, str],
) -> dict[str, FileChange]:
    """What differs between the ``stored`` digests (path -> (digest, blocks JSON)) and now.

    A Python file compares block by block (the changed blocks' old lines); any other file
    as a whole. ``now_global``: the configuration files and conftests there are now (a new
    one is a change). ``env``: the interpreter and packages digests now.
    """
    changes: dict[str, FileChange] = {}
    for path, (digest, blocks_json) in stored.items():
        if path in env:
            if env[path] != digest:
                changes[path] = FileChange(path)
            continue
        try:
            data = (root / path).read_bytes()
        except OSError:
            changes[path] = FileChange(path)  # deleted
            continue
        if hashlib.sha1(data).hexdigest() == digest:
            continue  # the common case: parse only what changed
        now = _digest(path, data)
        change = block_changes(path, blocks_from_json(blocks_json), now.blocks)
        if change is not None:
            changes[path] = change
    for path in now_global:
        if path not in stored:
            changes[path] = FileChange(path)  # a new conftest or configuration file
    return changes


def changes_from_git(root: Path, since: str) -> dict[str, FileChange]:
    """What changed in the working tree since git revision ``since`` (untracked files too).

    Python files compare block by block between the revision's text and today's.
    Raises ValueError when git cannot answer (not a repository, an unknown revision).
    """
    prefix = _git(root, "rev-parse", "--show-prefix").strip()
    names = _git(root, "diff", "--name-only", "--relative", since, "--").splitlines()
    names += _git(root, "ls-files", "--others", "--exclude-standard").splitlines()
    changes: dict[str, FileChange] = {}
    for rel in sorted(set(n for n in names if n)):
        if not rel.endswith(".py"):
            changes[rel] = FileChange(rel)
            continue
        try:
            old_text: str | None = _git(root, "show", f"{since}:{prefix}{rel}")
        except ValueError:
            old_text = None  # new since then
        now = digest_of(root, rel)
        old = blocks_of(old_text) if old_text is not None else None
        change = block_changes(rel, old, now.blocks if now is not None else None)
        if change is not None:
            changes[rel] = change
    return changes


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValueError(f"git could not run: {exc}") from None
    if done.returncode != 0:
        raise ValueError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout
