"""Describing a stack the first time its key is seen: its hash, the line to change, its frames.

:class:`~devformance_nb.plugin.capture.frames.FrameIndex` walks every statement's stack and
keys it cheaply (code ids and offsets); a key it has not seen comes here once. The description
reads each frame's place (file, line, function, normalised call offset) once per (code,
offset), hashes the project frames and the library frames above them, finds the line to
change (past helpers handed the statement, at the innermost loop) and hands each new stack's
frames to ``on_stack`` once per process. The hash is made from offsets normalised to their
call (:func:`call_offset`): Python 3.11 moves a specialized builtin call from CALL to PRECALL,
so one loop can show two raw offsets (two keys, one hash). A suite whose own code is deep
(a library testing itself) makes a new stack for about every second statement, so this path
is kept short too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
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
from devformance_nb.plugin.capture.filekinds import LOOP, Library
from devformance_nb.plugin.capture.tasks import awaiting_frames

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


#: a project frame as ``describe`` finds it: (frame, its code, line, ``path:line name``)
_Found = tuple[FrameType, _Code, int, str]
#: a frame's code, line, part of the stack hash and text (``path:line name``; '' outside the
#: project), as one (code, offset) always gives them
_Place = tuple[_Code, int, str, str]


def is_task_step(frame: FrameType, kind: Callable[[str], bool | Library]) -> bool:
    """Whether ``frame`` is an asyncio task's step (``kind`` classifies its file)."""
    code = frame.f_code
    return code.co_name == "_run" and kind(code.co_filename) is LOOP


class StackDescriber:
    """Describes new stacks; ``relpath`` and ``kind`` are the frame index's own answers."""

    def __init__(
        self,
        relpath: Callable[[str], str | None],
        kind: Callable[[str], bool | Library],
    ) -> None:
        self._relpath = relpath
        self._kind = kind
        #: called with (stack hash, frames outermost first) the first time a hash is made
        self.on_stack: Callable[[str, StackFrames], None] | None = None
        #: stack hashes already handed to on_stack (each once per process)
        self._told: set[str] = set()
        #: id(code) -> what describing reads of it
        self._codes: dict[int, _Code] = {}
        #: (id(code), f_lasti) -> its _Place: ``f_lineno`` decodes the line table from the
        #: start of the function on every read (2 us at the end of a 600-line one)
        self._places: dict[tuple[int, int], _Place] = {}
        #: (id(code), f_lasti) -> whether that offset stands in a loop of its function
        self._loops: dict[tuple[int, int], bool] = {}
        #: (floor, project frames from it down, their hash parts): the same for every stack
        #: described while the floor stands
        self._tail: tuple[FrameType | None, list[_Found], list[str]] = (None, [], [])

    def clear(self) -> None:
        """Forget every code object and place (the frame index dropped its stacks)."""
        self._codes.clear()
        self._places.clear()
        self._loops.clear()
        self._tail = (None, [], [])

    def describe(
        self,
        frame: FrameType | None,
        floor: FrameType | None,
        thread: int,
        setup: bool = False,
    ) -> Site | None:
        """The site of the stack from ``frame`` (walked as ``FrameIndex.walk`` walks it), or
        None when no project frame is found after all (a crossing that changed meanwhile).
        ``setup``: a set-up file is on the stack, so the site has no stack hash."""
        direct = self._direct(frame, floor)
        found, parts = direct if direct is not None else self._crossed(frame, floor, thread)
        if not found:  # a crossing that changed under us: nothing to describe
            return None
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
        if setup:  # set-up work: never grouped, so no stack to keep
            return site
        if self.on_stack is not None and digest not in self._told:
            self._told.add(digest)
            kept = reversed(found[:MAX_STORED_FRAMES])
            self.on_stack(digest, [(str(f[1].path), f[2], f[1].name) for f in kept])
        return site

    def _chain(
        self, frame: FrameType | None, floor: FrameType | None, thread: int
    ) -> Iterator[tuple[FrameType, bool]]:
        """Every frame ``walk`` keys (without the floor shortcut), innermost first, each with
        whether the instruction it stands at is stable (False in another running thread,
        where only its line is: see :class:`Crossing`)."""
        current = frame
        while current is not None and current is not floor:
            yield current, True
            if is_task_step(current, self._kind):
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
                        if is_task_step(at, self._kind):
                            yield from ((f, True) for f in awaiting_frames())
                    at = at.f_back
                if at is not None:
                    current = at
                    break
        while current is not None:  # the floor and what is below it
            yield current, True
            current = current.f_back

    def _code(self, code: CodeType) -> _Code:
        facts = self._codes.get(id(code))
        if facts is None:
            facts = self._codes[id(code)] = _Code(code, self._relpath(code.co_filename))
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
        if self._tail[0] is floor:
            return self._tail
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

    def _direct(
        self, frame: FrameType | None, floor: FrameType | None
    ) -> tuple[list[_Found], list[str]] | None:
        """``describe``'s project frames (innermost first) and hash parts of a stack that
        reaches ``floor`` in this thread with project code above it (most new stacks), read
        in one loop without ``_chain``'s generator; None for any other stack, which
        ``_crossed`` reads."""
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
        tail = self._floor_tail(current)
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
                tail = self._floor_tail(current)
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

    def _is_project(self, filename: str) -> bool:
        return self._relpath(filename) is not None
