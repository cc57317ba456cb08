"""Project call sites of a statement: where to change it, who sent it, and its whole stack.

Every statement walks the whole Python stack, so the walk costs two attribute reads and one
dict lookup per frame. Whether a frame is project code depends only on its code object's
file, so the answer is cached by ``f_code.co_filename``: a string caches its own hash, while
a code object rehashes its name, constants and bytecode on every lookup (several times the
cost of the whole per-frame step) and ``id()`` costs a builtin call per frame.

The described result (:class:`Site`) is cached by the sequence of the frames' (code id,
instruction offset) pairs. ``f_lasti`` instead of ``f_lineno``: the line number is decoded
from the line table on each access, and two calls on one line (``check(list(a), list(b))``)
have different offsets while the iterations of a loop share theirs. The stack hash is made
from offsets normalised to their call (:func:`call_offset`): Python 3.11 moves a specialized
builtin call from CALL to PRECALL, so one loop can show two raw offsets (two cache keys, one
hash). Code objects named in that cache are kept alive by it, so their ids cannot be handed on
to other code.

A stack that ends before the test's floor crossed a boundary: the statement runs in a greenlet
(SQLAlchemy's asyncio bridge) or in another thread (a web framework's worker thread, a driver
run in a thread). The walk then goes on through the parent greenlets' suspended frames and
the test thread's current frame, so statements sent from different lines of a test keep
different stacks. Statements on the test thread that reach the floor pay nothing for this.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Iterator
from types import CodeType, FrameType
from typing import NamedTuple

from devformance_nb.plugin.capture.boundaries import crossings
from devformance_nb.plugin.capture.callsites import (
    call_offset,
    in_loop,
    is_helper,
    loop_spans,
    offset_bytes,
)
from devformance_nb.plugin.capture.filekinds import (
    INSTALLED_MARKERS,
    LOOP,
    SETUP,
    Library,
    excluded_prefixes,
    folder_prefix,
    special_kind,
)
from devformance_nb.plugin.capture.tasks import awaiting_frames

#: distinct stacks cached before the cache is dropped and rebuilt (bounds memory)
MAX_STACKS = 50_000
HASH_BYTES = 6  # 12 hex characters
#: boundaries (greenlet parents, then the test thread) one walk may cross
MAX_CROSSINGS = 8
#: project frames kept in a stored stack (innermost ones; deep recursion is cut)
MAX_STORED_FRAMES = 60


class Site(NamedTuple):
    """Where a statement came from, as the capture records it.

    ``caller`` is the frame to change (``path:line function``): the innermost project frame
    that is not a helper handed the statement by its caller; ``sent_by`` is the innermost
    project frame (the one that sent it, often a database helper); ``stack_hash`` names the
    whole project stack. All three are '' when no project code is on the stack.
    """

    caller: str
    sent_by: str
    stack_hash: str


#: the site of a statement no project code issued
NO_SITE = Site("", "", "")

#: a stored stack's frames, outermost first: (path, line, function)
StackFrames = list[tuple[str, int, str]]


class _Code:
    """What describing a stack needs of one code object, read once: each read costs more than
    it looks (3.11 copies the bytecode on each ``co_code``, and hashing a code object for a
    cache reads all of it). Holds the code, so its id stays its own."""

    __slots__ = ("_spans", "base", "code", "name", "path", "raw")

    def __init__(self, code: CodeType, path: str | None) -> None:
        self.code = code
        self.path = path
        self.name: str = getattr(code, "co_qualname", code.co_name)
        self.base = os.path.basename(code.co_filename)
        self.raw = offset_bytes(code)
        self._spans: tuple[tuple[int, int], ...] | None = None

    def spans(self) -> tuple[tuple[int, int], ...]:
        """Its loops' offsets (:func:`loop_spans`)."""
        if self._spans is None:
            self._spans = loop_spans(self.code)
        return self._spans


#: a project frame as ``_remember`` describes it: (frame, its code, line, ``path:line name``)
_Found = tuple[FrameType, _Code, int, str]
#: a frame's code, line, part of the stack hash and text (``path:line name``; '' outside the
#: project), as one (code, offset) always gives them
_Place = tuple[_Code, int, str, str]


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
        #: called with (stack hash, frames outermost first) the first time a hash is made
        self.on_stack: Callable[[str, StackFrames], None] | None = None
        #: stack hashes already handed to on_stack (each once per process)
        self._told: set[str] = set()
        #: id(code) -> what _remember reads of it
        self._codes: dict[int, _Code] = {}
        #: (id(code), f_lasti) -> its _Place: ``f_lineno`` decodes the line table from the
        #: start of the function on every read (2 us at the end of a 600-line one)
        self._places: dict[tuple[int, int], _Place] = {}
        #: (id(code), f_lasti) -> whether that offset stands in a loop of its function
        self._loops: dict[tuple[int, int], bool] = {}
        #: (floor, project frames from it down, their hash parts): the same for every stack
        #: described while the floor stands
        self._tail: tuple[FrameType | None, list[_Found], list[str]] = (None, [], [])

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
                elif not managing and self._is_task_step(at):
                    self._awaiting_key(key)
                at = at.f_back
        return body

    def _chain(
        self, frame: FrameType | None, floor: FrameType | None, thread: int
    ) -> Iterator[tuple[FrameType, bool]]:
        """Every frame ``walk`` keys (without the floor shortcut), innermost first, each with
        whether the instruction it stands at is stable (False in another running thread,
        where only its line is: see :class:`Crossing`)."""
        current = frame
        while current is not None and current is not floor:
            yield current, True
            if self._is_task_step(current):
                yield from ((f, True) for f in awaiting_frames())
            current = current.f_back
        if current is None and floor is not None:
            for hops, (start, managing, running) in enumerate(crossings(thread, self._is_project)):
                if hops >= MAX_CROSSINGS:
                    return
                at: FrameType | None = start
                while at is not None and at is not floor:
                    if not managing:
                        yield at, not running
                        if self._is_task_step(at):
                            yield from ((f, True) for f in awaiting_frames())
                    at = at.f_back
                if at is not None:
                    current = at
                    break
        while current is not None:  # the floor and what is below it
            yield current, True
            current = current.f_back

    def _is_task_step(self, frame: FrameType) -> bool:
        code = frame.f_code
        return code.co_name == "_run" and self.kind(code.co_filename) is LOOP

    def _code(self, code: CodeType) -> _Code:
        facts = self._codes.get(id(code))
        if facts is None:
            facts = self._codes[id(code)] = _Code(code, self.relpath(code.co_filename))
        return facts

    def _place(self, frame: FrameType) -> _Place:
        """Where a suspended ``frame`` stands (one offset of one code is always one line)."""
        code = frame.f_code
        lasti = frame.f_lasti
        place = self._places.get((id(code), lasti))
        if place is None:
            facts = self._code(code)
            at = call_offset(code, lasti, facts.raw)
            if facts.path is None:
                place = (facts, 0, f"{facts.base}:{facts.name}@{at}", "")
            else:
                line = frame.f_lineno or 0
                text = f"{facts.path}:{line} {facts.name}"
                place = (facts, line, f"{text}@{at}", text)
            self._places[(id(code), lasti)] = place
        return place

    def _floor_tail(self, floor: FrameType) -> tuple[FrameType | None, list[_Found], list[str]]:
        """The project frames from ``floor`` down, with their hash parts (kept while the floor
        stands: the frames under it are suspended, so their lines and offsets do not move)."""
        found: list[_Found] = []
        parts: list[str] = []
        current: FrameType | None = floor
        while current is not None:
            facts, line, part, text = self._place(current)
            if facts.path is not None:
                parts.append(part)
                found.append((current, facts, line, text))
            current = current.f_back
        self._tail = (floor, found, parts)
        return self._tail

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
            self._codes.clear()
            self._places.clear()
            self._loops.clear()
            self._below = (None, ())
            self._tail = (None, [], [])
        direct = self._direct(frame, floor)
        found, parts = direct if direct is not None else self._crossed(frame, floor, thread)
        if not found:  # a crossing that changed under us: nothing to describe
            return NO_SITE
        digest = hashlib.blake2b("\n".join(parts).encode(), digest_size=HASH_BYTES).hexdigest()
        change = 0
        # whether a frame was handed the statement depends on this call's arguments: asked
        # for every new stack (``Database.execute("VACUUM")`` is not a helper's call)
        while change < len(found) - 1 and is_helper(found[change][0]):
            change += 1
        # a repeated statement repeats in a loop: the innermost frame standing in one, from
        # the first that was not handed the statement outward, is the line to change
        loops = self._loops
        for at in range(change, len(found)):
            current, facts = found[at][0], found[at][1]
            where = (id(facts.code), current.f_lasti)
            inside = loops.get(where)
            if inside is None:
                inside = loops[where] = in_loop(current, facts.spans())
            if inside:
                change = at
                break
        site = Site(found[change][3], found[0][3], "" if setup else digest)
        self._stacks[stack] = site
        if setup:  # set-up work: never grouped, so no stack to keep
            return site
        if self.on_stack is not None and digest not in self._told:
            self._told.add(digest)
            kept = reversed(found[:MAX_STORED_FRAMES])
            self.on_stack(digest, [(str(f[1].path), f[2], f[1].name) for f in kept])
        return site

    def _direct(
        self, frame: FrameType | None, floor: FrameType | None
    ) -> tuple[list[_Found], list[str]] | None:
        """``_remember``'s project frames (innermost first) and hash parts of a stack that
        reaches ``floor`` in this thread with project code above it, read in one loop (most
        new stacks: a generator over their frames costs a quarter of describing one); None
        for any other stack, described by ``_crossed``."""
        found: list[_Found] = []
        parts: list[str] = []
        places = self._places
        current = frame
        while current is not None and current is not floor:
            code = current.f_code
            place = places.get((id(code), current.f_lasti))
            if place is None:
                place = self._place(current)
            facts = place[0]
            if facts.path is not None:
                parts.append(place[2])
                found.append((current, facts, place[1], place[3]))
            elif code.co_name == "_run":  # perhaps a task's step: the awaiting tasks count
                return None
            elif not found:  # library code above the project's frames
                parts.append(place[2])
            current = current.f_back
        if current is None or not found:
            return None
        tail = self._tail if self._tail[0] is floor else self._floor_tail(current)
        found.extend(tail[1])
        parts.extend(tail[2])
        return found, parts

    def _crossed(
        self, frame: FrameType | None, floor: FrameType | None, thread: int
    ) -> tuple[list[_Found], list[str]]:
        """``_direct``'s answer for any stack, across greenlets, threads and tasks."""
        found: list[_Found] = []  # innermost first
        parts: list[str] = []
        for current, stable in self._chain(frame, floor, thread):
            if current is floor and found:  # below it: as for the last stack described
                tail = self._tail if self._tail[0] is floor else self._floor_tail(current)
                found.extend(tail[1])
                parts.extend(tail[2])
                break
            if not stable:  # running in another thread: only its line holds still, read once
                facts = self._code(current.f_code)
                if facts.path is not None:
                    line = current.f_lineno or 0
                    text = f"{facts.path}:{line} {facts.name}"
                    parts.append(f"{text}@-1")
                    found.append((current, facts, line, text))
                    continue
            facts, line, part, text = self._place(current)
            if facts.path is not None:
                parts.append(part)
                found.append((current, facts, line, text))
            elif not found:  # library code above the project's frames
                parts.append(part)
        return found, parts
