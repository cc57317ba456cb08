"""Project call sites of a statement: the first project frame and a hash of all of them.

Every statement walks the whole Python stack, so the walk costs two attribute reads and one
dict lookup per frame. Whether a frame is project code depends only on its code object's
file, so the answer is cached by ``f_code.co_filename``: a string caches its own hash, while
a code object rehashes its name, constants and bytecode on every lookup (several times the
cost of the whole per-frame step) and ``id()`` costs a builtin call per frame.

The described result (caller text and stack hash, built from line numbers) is cached by the
sequence of the project frames' (code id, instruction offset) pairs. ``f_lasti`` instead of
``f_lineno``: the line number is decoded from the line table on each access. Code objects
named in that cache are kept alive by it, so their ids cannot be handed on to other code.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from collections.abc import Collection
from dataclasses import dataclass
from types import CodeType, FrameType

#: path parts that mark installed third-party code, never project code
INSTALLED_MARKERS = ("site-packages", "dist-packages")
#: distinct stacks cached before the cache is dropped and rebuilt (bounds memory)
MAX_STACKS = 50_000
HASH_BYTES = 6  # 12 hex characters
#: the site of a statement no project code issued
NO_SITE = ("", "")

#: this package's own folder: its frames (the capture itself, the plugin) are never callers
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _folder_prefix(path: str) -> str:
    """A normalised real path ending in a separator, for prefix tests."""
    return os.path.normcase(os.path.realpath(path)).rstrip(os.sep) + os.sep


def excluded_prefixes() -> tuple[str, ...]:
    """Folders whose code is never a project frame: the stdlib and this package."""
    paths = sysconfig.get_paths()
    folders = {paths[key] for key in ("stdlib", "platstdlib") if paths.get(key)}
    folders.add(PACKAGE_DIR)
    return tuple(sorted(_folder_prefix(folder) for folder in folders))


@dataclass(frozen=True)
class Library:
    """A library whose statements are tagged: its name and its functions that send them."""

    name: str
    senders: frozenset[str]


class FrameIndex:
    """Finds the project frames of a stack; project means under ``root`` and not excluded."""

    def __init__(self, root: str, excluded: tuple[str, ...] | None = None) -> None:
        self.root = os.path.realpath(root)
        self._root_prefix = _folder_prefix(root)
        self._excluded = excluded_prefixes() if excluded is None else excluded
        #: co_filename -> path relative to the root, or None when not project code
        self._files: dict[str, str | None] = {}
        #: co_filename -> True (project code), a tagged library, or False: the hot cache, one
        #: lookup per frame
        self._project: dict[str, bool | Library] = {}
        #: (folder prefix, library) of the libraries whose frames tag a statement (ORMs)
        self._libraries: list[tuple[str, Library]] = []
        #: (id(code), f_lasti, ...) of a stack's project frames -> (caller, stack hash)
        self._stacks: dict[tuple[int, ...], tuple[str, str]] = {}
        #: the code objects whose ids appear in the keys of _stacks
        self._alive: dict[int, CodeType] = {}
        #: the last floor frame and the key of the project frames from it down (one attribute,
        #: replaced whole, so threads never see half of it)
        self._below: tuple[FrameType | None, tuple[int, ...]] = (None, ())

    def locate(self, frame: FrameType | None, floor: FrameType | None = None) -> tuple[str, str]:
        """``(caller, stack_hash)`` for the stack starting at ``frame``; ``("", "")`` if none.

        ``floor``, when given, is a frame known to stay below ``frame`` for a while (the frame
        running the current test phase's hook): the walk stops there and appends what an earlier
        walk found below it, so a statement walks only the frames above the floor. The result
        is the same as a walk of the whole stack.
        """
        return self.walk(frame, floor)[0]

    def walk(
        self, frame: FrameType | None, floor: FrameType | None = None
    ) -> tuple[tuple[str, str], str]:
        """``((caller, stack_hash), orm)``: ``locate``'s answer, and the name of the library
        that sent the statement: the innermost frame of a library tagged with ``tag_library``
        is one of its sending functions ('' otherwise)."""
        known = self._project
        key: list[int] = []
        orm = ""
        library_seen = False
        current = frame
        while current is not None:
            if current is floor:
                below = self._below
                if below[0] is not floor:
                    below = self._walk_below(floor)
                key.extend(below[1])
                break
            code = current.f_code
            try:  # a subscript is cheaper than .get() and a miss happens once per file
                kind = known[code.co_filename]
            except KeyError:
                kind = self._classify(code.co_filename)
            if kind is True:
                key.append(id(code))
                key.append(current.f_lasti)
            elif not library_seen and kind:
                library_seen = True
                if code.co_name in kind.senders:  # type: ignore[union-attr]
                    orm = kind.name  # type: ignore[union-attr]
            current = current.f_back
        if not key:
            return NO_SITE, orm
        stack = tuple(key)
        found = self._stacks.get(stack)
        if found is None:
            found = self._remember(stack, frame)
        return found, orm

    def tag_library(self, folder: str, name: str, senders: Collection[str]) -> None:
        """Statements whose innermost frame of code under ``folder`` (an ORM's package) is a
        function named in ``senders`` (those that hand statements to the driver) are ``name``'s.
        """
        self._libraries.append((_folder_prefix(folder), Library(name, frozenset(senders))))
        self._project.clear()  # classified again, with the tag, on their next walk

    def _classify(self, filename: str) -> bool | Library:
        """True for project code, a tagged library, or False."""
        kind: bool | Library = self.relpath(filename) is not None
        if not kind and self._libraries:
            norm = os.path.normcase(os.path.realpath(filename)) if filename else ""
            for prefix, library in self._libraries:
                if norm.startswith(prefix):
                    kind = library
                    break
        self._project[filename] = kind
        return kind

    def _walk_below(self, floor: FrameType | None) -> tuple[FrameType | None, tuple[int, ...]]:
        """The project frames' key from ``floor`` down, remembered for the next statements."""
        key: list[int] = []
        current = floor
        while current is not None:
            code = current.f_code
            if self.relpath(code.co_filename) is not None:
                self._alive[id(code)] = code
                key.append(id(code))
                key.append(current.f_lasti)
            current = current.f_back
        below = (floor, tuple(key))
        self._below = below
        return below

    def relpath(self, filename: str) -> str | None:
        """``filename`` relative to the root with forward slashes, or None if not project code."""
        if filename in self._files:
            return self._files[filename]
        found = self._project_path(filename)
        self._files[filename] = found
        return found

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

    def _remember(self, stack: tuple[int, ...], frame: FrameType | None) -> tuple[str, str]:
        if len(self._stacks) >= MAX_STACKS:
            self._stacks.clear()
            self._alive.clear()
            self._below = (None, ())
        parts: list[str] = []
        current = frame
        while current is not None:
            code = current.f_code
            path = self.relpath(code.co_filename)
            if path is not None:
                self._alive[id(code)] = code
                name = getattr(code, "co_qualname", code.co_name)
                parts.append(f"{path}:{current.f_lineno} {name}")
            current = current.f_back
        digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=HASH_BYTES)
        found = (parts[0], digest.hexdigest())
        self._stacks[stack] = found
        return found
