"""Project call sites of a statement: the first project frame and a hash of all of them.

Every statement walks the whole Python stack, so the walk is kept to a dict lookup per
frame: each code object is classified once (project or not) and the answer is cached by
the code object itself. The described result (caller text and stack hash) is cached by the
exact sequence of project (code, line) pairs, so a statement issued again from the same
place costs one tuple build and one dict lookup after the walk.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from types import CodeType, FrameType

#: path parts that mark installed third-party code, never project code
INSTALLED_MARKERS = ("site-packages", "dist-packages")
#: cache sizes after which a cache is dropped and rebuilt (dynamic code can grow them forever)
MAX_CODES = 200_000
MAX_STACKS = 50_000
HASH_BYTES = 6  # 12 hex characters

#: this package's own folder: its frames (the capture itself, the plugin) are never callers
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _folder_prefix(path: str) -> str:
    """A normalised real path ending in a separator, for prefix tests."""
    return os.path.normcase(os.path.realpath(path)).rstrip(os.sep) + os.sep


def excluded_prefixes() -> tuple[str, ...]:
    """Folders whose code is never a project frame: the stdlib and this package."""
    paths = sysconfig.get_paths()
    folders = {paths[key] for key in ("stdlib", "platstdlib") if paths.get(key)}
    folders.add(PACKAGE_DIR)
    return tuple(sorted(_folder_prefix(folder) for folder in folders))


class FrameIndex:
    """Finds the project frames of a stack; project means under ``root`` and not excluded."""

    def __init__(self, root: str, excluded: tuple[str, ...] | None = None) -> None:
        self.root = os.path.realpath(root)
        self._root_prefix = _folder_prefix(root)
        self._excluded = excluded_prefixes() if excluded is None else excluded
        self._files: dict[str, str | None] = {}
        #: code object -> is it project code (the hot cache; one lookup per frame)
        self._codes: dict[CodeType, bool] = {}
        #: project code object -> (path relative to root, function name)
        self._sites: dict[CodeType, tuple[str, str]] = {}
        #: (id(code), line, ...) of a stack's project frames -> (caller, stack hash)
        self._stacks: dict[tuple[int, ...], tuple[str, str]] = {}

    def locate(self, frame: FrameType | None) -> tuple[str, str]:
        """``(caller, stack_hash)`` for the stack starting at ``frame``; ``("", "")`` if none."""
        codes = self._codes
        key: list[int] = []
        current = frame
        while current is not None:
            code = current.f_code
            project = codes.get(code)
            if project is None:
                project = self._learn(code)
            if project:
                # ids are stable: the code object is kept alive as a key of self._codes
                key.append(id(code))
                key.append(current.f_lineno)
            current = current.f_back
        if not key:
            return "", ""
        stack = tuple(key)
        found = self._stacks.get(stack)
        if found is None:
            found = self._describe(frame)
            if len(self._stacks) >= MAX_STACKS:
                self._stacks.clear()
            self._stacks[stack] = found
        return found

    def relpath(self, filename: str) -> str | None:
        """``filename`` relative to the root with forward slashes, or None if not project code."""
        if filename in self._files:
            return self._files[filename]
        found = self._project_path(filename)
        self._files[filename] = found
        return found

    def _learn(self, code: CodeType) -> bool:
        if len(self._codes) >= MAX_CODES:
            # a cleared code cache invalidates the ids in the stack keys too
            self._codes.clear()
            self._sites.clear()
            self._stacks.clear()
        rel = self.relpath(code.co_filename)
        if rel is not None:
            self._sites[code] = (rel, getattr(code, "co_qualname", code.co_name))
        self._codes[code] = rel is not None
        return rel is not None

    def _project_path(self, filename: str) -> str | None:
        if not filename or filename.startswith("<"):  # <frozen ...>, <string>, <stdin>
            return None
        if any(marker in filename for marker in INSTALLED_MARKERS):
            return None
        real = os.path.realpath(os.path.abspath(filename))
        norm = os.path.normcase(real)
        if not norm.startswith(self._root_prefix) or norm.startswith(self._excluded):
            return None
        if any(marker in norm for marker in INSTALLED_MARKERS):
            return None
        return os.path.relpath(real, self.root).replace(os.sep, "/")

    def _describe(self, frame: FrameType | None) -> tuple[str, str]:
        """Caller text and stack hash, built from names (stable across processes)."""
        parts: list[str] = []
        current = frame
        while current is not None:
            code = current.f_code
            project = self._codes.get(code)
            if project is None:
                project = self._learn(code)
            if project:
                path, name = self._sites[code]
                parts.append(f"{path}:{current.f_lineno} {name}")
            current = current.f_back
        if not parts:
            return "", ""
        digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=HASH_BYTES)
        return parts[0], digest.hexdigest()
