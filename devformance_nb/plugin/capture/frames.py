"""Project call sites of a statement: where to change it, who sent it, and its whole stack.

Every statement walks the whole Python stack, so the walk costs two attribute reads and one
dict lookup per frame. Whether a frame is project code depends only on its code object's
file, so the answer is cached by ``f_code.co_filename``: a string caches its own hash, while
a code object rehashes its name, constants and bytecode on every lookup (several times the
cost of the whole per-frame step) and ``id()`` costs a builtin call per frame.

The described result (:class:`Site`, made once per new key by :mod:`.stacks`) is cached by
the sequence of the frames' (code id, instruction offset) pairs. ``f_lasti`` instead of
``f_lineno``: the line number is decoded from the line table on each access, and two calls on
one line (``check(list(a), list(b))``) have different offsets while the iterations of a loop
share theirs. Code objects named in that cache are kept alive by it, so their ids cannot be
handed on to other code.

A stack that ends before the test's floor crossed a boundary: the statement runs in a greenlet
(SQLAlchemy's asyncio bridge) or in another thread (a web framework's worker thread, a driver
run in a thread). The walk then goes on through the parent greenlets' suspended frames and
the test thread's current frame, so statements sent from different lines of a test keep
different stacks. Statements on the test thread that reach the floor pay nothing for this.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from types import CodeType, FrameType

from devformance_nb.plugin.capture.boundaries import crossings
from devformance_nb.plugin.capture.filekinds import (
    INSTALLED_MARKERS,
    LOOP,
    SETUP,
    Library,
    excluded_prefixes,
    folder_prefix,
    special_kind,
)
from devformance_nb.plugin.capture.stacks import (
    MAX_CROSSINGS,
    NO_SITE,
    Site,
    StackDescriber,
    StackFrames,
    is_task_step,
)
from devformance_nb.plugin.capture.tasks import awaiting_frames

#: distinct stacks cached before the cache is dropped and rebuilt (bounds memory)
MAX_STACKS = 50_000


class FrameIndex:
    """Finds the project frames of a stack; project means under ``root`` and not excluded."""

    def __init__(self, root: str, excluded: tuple[str, ...] | None = None) -> None:
        self.root = os.path.realpath(root)
        self._root_prefix = folder_prefix(root)
        self._excluded = excluded_prefixes() if excluded is None else excluded
        #: co_filename -> path relative to the root, or None when not project code
        self._files: dict[str, str | None] = {}
        #: co_filename -> True (project code), a tagged library, or False: the hot cache, one
        #: lookup per frame
        self._project: dict[str, bool | Library] = {}
        #: (folder prefix, library) of the libraries whose frames tag a statement (ORMs)
        self._libraries: list[tuple[str, Library]] = []
        #: (id(code), f_lasti, ...) of a stack's project frames -> its site
        self._stacks: dict[tuple[int, ...], Site] = {}
        #: the code objects whose ids appear in the keys of _stacks
        self._alive: dict[int, CodeType] = {}
        #: the last floor frame and the key of the project frames from it down (one attribute,
        #: replaced whole, so threads never see half of it)
        self._below: tuple[FrameType | None, tuple[int, ...]] = (None, ())
        #: (floor, the test body's frame, the key of the frames below it down to the floor):
        #: while the body runs, the frames under it do not move, so a statement of the test
        #: walks only down to the body; released when the phase ends (``release``)
        self._body: tuple[FrameType | None, FrameType | None, tuple[int, ...]] = (None, None, ())
        #: describes the stacks whose keys are new
        self.stacks = StackDescriber(self.relpath, self.kind)

    @property
    def on_stack(self) -> Callable[[str, StackFrames], None] | None:
        """Called with (stack hash, frames outermost first) the first time a hash is made."""
        return self.stacks.on_stack

    @on_stack.setter
    def on_stack(self, told: Callable[[str, StackFrames], None] | None) -> None:
        self.stacks.on_stack = told

    def locate(self, frame: FrameType | None, floor: FrameType | None = None) -> Site:
        """The :class:`Site` of the stack starting at ``frame``; ``NO_SITE`` if none.

        ``floor``, when given, is a frame known to stay below ``frame`` for a while (the frame
        running the current test phase's hook): the walk stops there and appends what an earlier
        walk found below it, so a statement walks only the frames above the floor. The result
        is the same as a walk of the whole stack.
        """
        return self.walk(frame, floor)[0]

    def walk(
        self,
        frame: FrameType | None,
        floor: FrameType | None = None,
        thread: int = 0,
        body_code: CodeType | None = None,
    ) -> tuple[Site, str, FrameType | None]:
        """``(site, orm, body)``: ``locate``'s answer, the name of the library that sent the
        statement (the innermost frame of a library tagged with ``tag_library`` is one of its
        sending functions; '' otherwise), and the frame running ``body_code`` (the test
        function: a new frame object each time its body runs again), or None. ``thread`` is the
        test thread's ident: a stack that ends before ``floor`` goes on through greenlet
        parents and that thread. A statement sent while a database is created, initialised or
        migrated (a set-up file on its stack) keeps its caller but has no stack hash."""
        known = self._project
        orm = ""
        library_seen = False
        setup = False
        body: FrameType | None = None
        # 1. the library frames above the innermost project frame (between it and the
        # statement) count in the key as the sum of their offsets: two statements a library
        # sends by two paths from one line of the project are two stacks, one path repeated is
        # one. A sum costs an attribute read and an add a frame (an ORM statement has dozens
        # of them); two paths with one sum would share the first one's site, while the hash
        # itself names every frame (``_remember``)
        library_path = 0
        current = frame
        while current is not None and current is not floor:
            code = current.f_code
            try:  # a subscript is cheaper than .get() and a miss happens once per file
                kind = known[code.co_filename]
            except KeyError:
                kind = self._classify(code.co_filename)
            if kind is True:
                break
            library_path += current.f_lasti
            if kind and kind is not LOOP:
                if kind is SETUP:
                    setup = True
                elif not library_seen:  # the innermost frame of a tagged library decides
                    library_seen = True
                    if code.co_name in kind.senders:  # type: ignore[union-attr]
                        orm = kind.name  # type: ignore[union-attr]
            current = current.f_back
        key: list[int] = [library_path]
        projects = False
        reached = False  # the floor (or the body whose frames below are known) was reached
        after_body = -1  # where the frames below a newly found body frame start in the key
        # 2. the project's frames (and any library frames between them: not in the key)
        while current is not None:
            if current is floor:
                below = self._below
                if below[0] is not floor:
                    below = self._walk_below(floor)
                projects = projects or bool(below[1])
                key.extend(below[1])
                reached = True
                break
            code = current.f_code
            try:
                kind = known[code.co_filename]
            except KeyError:
                kind = self._classify(code.co_filename)
            if kind is True:
                projects = True
                key.append(id(code))
                key.append(current.f_lasti)
                if code is body_code:
                    body = current
                    known_body = self._body
                    if known_body[1] is current and known_body[0] is floor:
                        key.extend(known_body[2])
                        reached = True
                        break
                    after_body = len(key)
            elif kind:
                if kind is LOOP:
                    if code.co_name == "_run":  # a task's step: go on in who awaits it
                        self._awaiting_key(key)
                elif kind is SETUP:
                    setup = True
                elif not library_seen:
                    library_seen = True
                    if code.co_name in kind.senders:  # type: ignore[union-attr]
                        orm = kind.name  # type: ignore[union-attr]
                after_body = -1  # a library under the body: its frames are always walked
            current = current.f_back
        if reached:
            if after_body >= 0 and floor is not None:
                self._body = (floor, body, tuple(key[after_body:]))
        elif floor is not None:
            # the stack ended before the test: go on
            mark = len(key)
            body = self._cross(key, floor, thread, body_code) or body
            crossed = key[mark:]
            projects = projects or len(crossed) > sum(crossed.count(m) for m in (-1, -2, -3))
        if not projects:
            return NO_SITE, orm, body
        if setup:
            key.append(-4)
        stack = tuple(key)
        found = self._stacks.get(stack)
        if found is None:
            found = self._remember(stack, frame, floor, thread, setup)
        return found, orm, body

    def kind(self, filename: str) -> bool | Library:
        """What a frame of ``filename`` is: True for project code, ``SETUP``, a tagged library,
        or False (one lookup once known; walks of other modules read ``self.kinds`` first)."""
        try:
            return self._project[filename]
        except KeyError:
            return self._classify(filename)

    @property
    def kinds(self) -> dict[str, bool | Library]:
        """The walk's own cache of ``kind``, by ``co_filename`` (one lookup a frame)."""
        return self._project

    def _awaiting_key(self, key: list[int]) -> None:
        """Extend ``key`` with the project frames of the tasks awaiting the running one."""
        found: list[int] = []
        for frame in awaiting_frames():
            code = frame.f_code
            if self.relpath(code.co_filename) is not None:
                self._alive[id(code)] = code
                found.append(id(code))
                found.append(frame.f_lasti)
        if found:  # a boundary (-3), then the awaiting task's frames
            key.append(-3)
            key.extend(found)

    def release(self) -> None:
        """Forget the test body's frame (the phase ended): its locals are the test's to free."""
        self._body = (None, None, ())

    def tag_library(self, folder: str, name: str, senders: Collection[str]) -> None:
        """Statements whose innermost frame of code under ``folder`` (an ORM's package) is a
        function named in ``senders`` (those that hand statements to the driver) are ``name``'s.
        """
        self._libraries.append((folder_prefix(folder), Library(name, frozenset(senders))))
        self._project.clear()  # classified again, with the tag, on their next walk

    def _classify(self, filename: str) -> bool | Library:
        """True for project code, ``SETUP``, a tagged library, or False."""
        kind: bool | Library = self.relpath(filename) is not None
        if not kind and filename and not filename.startswith("<"):
            norm = os.path.normcase(os.path.realpath(filename))
            special = special_kind(norm)
            if special is not None:
                kind = special
            else:
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

    def _is_project(self, filename: str) -> bool:
        return self.relpath(filename) is not None

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

    def _cross(
        self, key: list[int], floor: FrameType, thread: int, body_code: CodeType | None
    ) -> FrameType | None:
        """Extend ``key`` across boundaries until the floor (see :func:`crossings`); returns
        the frame running ``body_code`` found across them, or None."""
        body: FrameType | None = None
        for hops, (current, managing, running) in enumerate(crossings(thread, self._is_project)):
            if hops >= MAX_CROSSINGS:
                break
            key.append(-2 if managing else -1)  # a boundary: another stack across each
            at: FrameType | None = current
            while at is not None:
                if at is floor:
                    below = self._below
                    if below[0] is not floor:
                        below = self._walk_below(floor)
                    key.extend(below[1])
                    return body
                code = at.f_code
                if self.relpath(code.co_filename) is not None:
                    if code is body_code:
                        body = at
                    if not managing:
                        self._alive[id(code)] = code
                        key.append(id(code))
                        key.append(at.f_lineno or 0 if running else at.f_lasti)
                elif not managing and is_task_step(at, self.kind):
                    self._awaiting_key(key)
                at = at.f_back
        return body

    def _remember(
        self,
        stack: tuple[int, ...],
        frame: FrameType | None,
        floor: FrameType | None,
        thread: int,
        setup: bool = False,
    ) -> Site:
        if len(self._stacks) >= MAX_STACKS:
            self._stacks.clear()
            self._alive.clear()
            self._below = (None, ())
            self.stacks.clear()
        site = self.stacks.describe(frame, floor, thread, setup)
        if site is None:
            return NO_SITE
        self._stacks[stack] = site
        return site
