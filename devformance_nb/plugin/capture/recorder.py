"""The recorder every adapter hands its statements to: one ``query`` event per statement.

Adapters time the statement themselves (they sit right around the driver call) and call
:meth:`Recorder.record` once, after it ran or failed. The recorder adds what is the same for
every library: the statement number, the test and phase, the project call site and the
optional parameter text. It never raises into the code under test.
"""

from __future__ import annotations

import json
import os
import reprlib
import sys
import time
from collections.abc import Hashable
from json.encoder import encode_basestring
from types import FrameType
from typing import TYPE_CHECKING, Any

from devformance_nb.plugin.capture.eagerloads import EagerLoad, EagerLoads
from devformance_nb.plugin.capture.frames import FrameIndex
from devformance_nb.plugin.capture.loadmarks import LoadMarks
from devformance_nb.plugin.capture.pages import Plan, page_of, plan_of
from devformance_nb.plugin.capture.querysites import QuerySites
from devformance_nb.plugin.capture.stacks import NO_SITE, Site, StackFrames

if TYPE_CHECKING:
    from devformance_nb.core.contract import ChildOptions
    from devformance_nb.core.eventlog import EventWriter
    from devformance_nb.plugin.context import TestContext

PARAMS_LIMIT = 500

#: where a statement was sent from: its site, how many times the test body ran before, and the
#: mark of the ORM lazy load that sent it (None when it is no lazy load)
Placed = tuple[Site, int, "str | None"]

_PARAMS_REPR = reprlib.Repr()
# reprlib never walks a whole executemany parameter list: it stops after a few items
_PARAMS_REPR.maxstring = 80
_PARAMS_REPR.maxother = 80
_PARAMS_REPR.maxlist = _PARAMS_REPR.maxtuple = _PARAMS_REPR.maxdict = _PARAMS_REPR.maxset = 16
_PARAMS_REPR.maxlevel = 3


class ClaimedCursor:
    """Marks a DB-API cursor class whose statements a DB-API adapter times and records itself.

    ORM adapters (SQLAlchemy, later Django) see such a cursor and only set ``devformance_orm``
    on it for the duration of their execute, so a statement is recorded once, by the layer
    closest to the driver, with the ORM's name attached.
    """

    #: the ORM whose execute is running on this cursor now ("" outside any ORM)
    devformance_orm: str = ""
    #: where the ORM found that execute was sent from, when the driver runs it in another
    #: thread (aiosqlite), where the stack no longer shows who sent it
    devformance_site: Placed | None = None


def known_rows(rowcount: Any) -> int | None:
    """A DB-API ``rowcount`` as a row count, or None when the driver does not know (-1)."""
    if type(rowcount) is int and rowcount >= 0:
        return rowcount
    return None


def short_params(params: Any) -> str | None:
    """A short, capped repr of statement parameters (never iterates a whole list)."""
    if params is None or (type(params) in (tuple, list, dict) and not params):
        return None  # no parameters (the DB-API default of an empty sequence)
    try:
        text = _PARAMS_REPR.repr(params)
    except Exception:  # a user type with a broken __repr__
        text = f"<{type(params).__name__}>"
    return text if len(text) <= PARAMS_LIMIT else text[: PARAMS_LIMIT - 3] + "..."


#: encoded statement texts cached (per distinct statement and call site) before the cache resets
MAX_ENCODED = 20_000
#: longer statements are encoded each time, never cached (a huge text is rarely repeated)
MAX_CACHED_SQL = 4_000


#: a text whose page plan is not worked out yet
_UNPLANNED: Any = object()


def _json(text: str) -> str:
    """``json.dumps(text, ensure_ascii=False)`` without its encoder object: ``dumps`` with any
    option builds a ``JSONEncoder`` on each call (2-3 us, paid for every field of every new
    statement text and call site), and for a string that encoder calls this C function."""
    if isinstance(text, str):
        return encode_basestring(text)
    return json.dumps(text, ensure_ascii=False)  # not a string after all: as before


#: a stack's frame -> its JSON text (the frames of new stacks repeat: their tests call the same
#: code); emptied when it holds this many
MAX_FRAME_TEXTS = 50_000
_FRAME_TEXTS: dict[tuple[str, int, str], str] = {}


def _json_frames(frames: StackFrames) -> str:
    """``json.dumps`` of the frames as lists, each frame's text encoded once."""
    texts = _FRAME_TEXTS
    if len(texts) >= MAX_FRAME_TEXTS:
        texts.clear()
    out = []
    for frame in frames:
        text = texts.get(frame)
        if text is None:  # as json.dumps(list(frame)) writes it
            path, line, name = frame
            path, name = encode_basestring(path), encode_basestring(name)
            text = texts[frame] = f"[{path}, {int(line)}, {name}]"
        out.append(text)
    return "[" + ", ".join(out) + "]"


class Recorder:
    """Turns timed statements into ``query`` events on the child's writer (thread-safe).

    The hot path builds the event's JSON line itself, without an event object: the parts that
    repeat (statement text, call site, database, test and phase) are encoded once and cached,
    so a statement costs a frame walk, two cache lookups and one string format.
    """

    def __init__(self, writer: EventWriter, context: TestContext, options: ChildOptions):
        self.writer = writer
        self.context = context
        self.capture_params = options.capture_params
        self.frames = FrameIndex(options.root or os.getcwd())
        self.frames.on_stack = self._write_stack
        #: where queries are built or run (for the lazy loads of their rows)
        self.query_sites = QuerySites(self.frames)
        #: statements that could not be recorded (the error is swallowed, the count kept)
        self.dropped = 0
        #: (sql, site, vendor, alias, orm, many) -> their encoded fields
        self._encoded: dict[tuple[str, Site, str, str, str, bool], str] = {}
        #: the test context last seen and its encoded fields (one attribute: threads read it)
        self._context: tuple[str, str, str] = ("", "", self._encode_context("", ""))
        #: the test body frame and unittest subTest last seen, their test and phase, and how
        #: many times the body ran again in that phase before (hypothesis examples, reruns,
        #: subTests): one attribute
        self._body: tuple[FrameType | None, object, str, str, int] = (None, None, "", "", 0)
        #: the ORM lazy loads running in each thread (set by the ORM adapters)
        self.loads = LoadMarks()
        #: the eager loads of the running test not read yet (set by the ORM adapters)
        self.eager = EagerLoads()
        #: statement text -> its page plan (None: no page statement), per distinct text
        self._plans: dict[str, Plan | None] = {}

    def record(
        self,
        sql: Any,
        vendor: str,
        alias: str,
        start: float,
        duration: float,
        rows: int | None,
        orm: str = "",
        many: bool = False,
        params: Any = None,
        placed: Placed | None = None,
    ) -> None:
        """Write one ``query`` event for a statement that ran (or failed) just now.

        Called from inside the adapter's wrapper, so the stack above it is the code that
        issued the statement (``placed``, when given, was found by an ORM before it handed the
        statement to a driver thread). Any failure here is counted in ``dropped``, never raised.
        """
        try:
            context = self.context
            if placed is None:
                # _place inlined: this is the hottest path of the capture
                site, library, body = self.frames.walk(
                    sys._getframe(1), context.floor, context.thread, context.body_code
                )
                repeat = 0 if body is None else self._repeat(body, context)
            else:
                (site, repeat, _), library = placed, ""
            text = sql if type(sql) is str else str(sql)
            # the ORM an adapter tagged the cursor with, else one whose code is on the stack
            key = (text, site, vendor, alias, orm or library, many)
            static = self._encoded.get(key)
            if static is None:
                static = self._encode_static(key)
            if self.capture_params:
                shown = short_params(params)
                if shown is not None:
                    static = f'{static},"params":{_json(shown)}'
            known = self._context
            if context.nodeid is known[0] and context.phase is known[1]:
                where = known[2]
            else:
                where = self._switch_context(context.nodeid, context.phase)
            # integers with an exponent (valid JSON numbers, read back as floats): formatting
            # an int costs a quarter of a fixed-point float's (microsecond wall clock,
            # nanosecond durations); the wall start doubles as the event's time
            began = f"{int(start * 1e6)}e-6"
            if repeat:
                where = f'{where},"repeat":{repeat}'
            plan = self._plans.get(text, _UNPLANNED)
            if plan is _UNPLANNED:
                plan = self._plan(text)
            if plan is not None and not many:
                where = f'{where},"page":"{page_of(plan, params)}"'
            if placed is not None:
                if placed[2] is not None:  # a lazy load in the thread that handed it over
                    where = f"{where},{placed[2]}"
            elif self.loads.marks:
                load = self.loads.take()
                if load is not None:
                    where = f"{where},{load}"
            self.writer.write_fields(
                "query",
                f'"t":{began},"start":{began},"duration":{int(duration * 1e9)}e-9,'
                f'"rows":{"null" if rows is None else rows},{where},{static}',
                "qseq",
            )
        except Exception:
            self.dropped += 1

    def _plan(self, text: str) -> Plan | None:
        """The page plan of a text not seen yet (cached like the encoded texts)."""
        plan = plan_of(text)
        if len(text) <= MAX_CACHED_SQL:
            if len(self._plans) >= MAX_ENCODED:
                self._plans.clear()
            self._plans[text] = plan
        return plan

    def _place(self, frame: FrameType) -> tuple[Site, str, int]:
        """(site, library, repeat) of a statement sent from ``frame``: ``repeat`` counts the
        times the test function's body was entered again in this phase before (hypothesis
        examples, reruns) or a new unittest subTest began, so one body run again is never one
        loop."""
        context = self.context
        site, library, body = self.frames.walk(
            frame, context.floor, context.thread, context.body_code
        )
        return site, library, 0 if body is None else self._repeat(body, context)

    def _repeat(self, body: FrameType, context: TestContext) -> int:
        """How many times the test body (``body``: a frame of the test's own function) was
        entered again in this phase before, counting each unittest subTest as a run."""
        case = context.case
        sub = getattr(case, "_subtest", None) if case is not None else None
        known = self._body
        if body is not known[0] or sub is not known[1]:
            again = known[2] == context.nodeid and known[3] == context.phase
            known = (body, sub, context.nodeid, context.phase, known[4] + 1 if again else 0)
            self._body = known
        return known[4]

    def phase_ended(self) -> None:
        """Let go of the test body's frame (and its locals) once its phase ended."""
        self.frames.release()
        _, _, nodeid, phase, count = self._body
        self._body = (None, None, nodeid, phase, count)

    def note_eager(
        self,
        model: type,
        attribute: str,
        relation: str,
        option: str,
        orm: str,
        frame: FrameType,
        key: Hashable | None = None,
        built_at: str = "",
    ) -> None:
        """A query sent from ``frame``'s stack loaded ``relation`` eagerly with ``option``: it
        is reported when the test ends unless the relation is read meanwhile (with ``key``:
        once ``self.eager.confirm(key)`` says a row's relation was filled). Its call site is
        where the query was built (``built_at``, when the adapter knows) or run."""
        try:
            site, _, _ = self._place(frame)
            # the option to drop is on the query: its line, not a loop around it
            at = built_at or self.query_sites.here(frame) or site.caller
            site = site._replace(caller=at)
            context = self.context
            load = EagerLoad(
                model, attribute, relation, option, orm, site, context.nodeid, context.phase
            )
            self.eager.loaded(load, key)
        except Exception:  # never break a query over a finding
            self.dropped += 1

    def test_ended(self) -> None:
        """Write an ``eager_unused`` event for each eager load of the test never read."""
        for unread in self.eager.take():
            load, site = unread.load, unread.load.site
            self.writer.write_fields(
                "eager_unused",
                f'"t":{time.time():.6f},"nodeid":{_json(load.nodeid)},"phase":{_json(load.phase)},'
                f'"relation":{_json(load.relation)},"option":{_json(load.option)},'
                f'"orm":{_json(load.orm)},"count":{unread.count},'
                f'"caller":{_json(site.caller)},"sent_by":{_json(site.sent_by)},'
                f'"stack_hash":{_json(site.stack_hash)}',
            )

    def place_here(self) -> Placed:
        """Where the code calling the caller of this method (an ORM's listener) sent its
        statement from, for a statement the ORM hands to a driver running it in another
        thread: (site, repeat, the mark of the lazy load running in this thread)."""
        try:
            site, _, repeat = self._place(sys._getframe(2))
        except Exception:
            return NO_SITE, 0, None
        return site, repeat, self.loads.take()

    def _write_stack(self, stack_hash: str, frames: StackFrames) -> None:
        # one per new stack, before the first statement that names it
        self.writer.write_fields(
            "stack", f'"stack_hash":{_json(stack_hash)},"frames":{_json_frames(frames)}'
        )

    def _encode_static(self, key: tuple[str, Site, str, str, str, bool]) -> str:
        text, (caller, sent_by, stack_hash), vendor, alias, orm, many = key
        encoded = (
            f'"sql":{_json(text)},"vendor":{_json(vendor)},"alias":{_json(alias)},'
            f'"caller":{_json(caller)},"sent_by":{_json(sent_by)},'
            f'"stack_hash":{_json(stack_hash)},"orm":{_json(orm)},'
            f'"many":{"true" if many else "false"}'
        )
        if len(text) <= MAX_CACHED_SQL:
            if len(self._encoded) >= MAX_ENCODED:
                self._encoded.clear()
            self._encoded[key] = encoded
        return encoded

    @staticmethod
    def _encode_context(nodeid: str, phase: str) -> str:
        return f'"nodeid":{_json(nodeid)},"phase":{_json(phase)}'

    def _switch_context(self, nodeid: str, phase: str) -> str:
        where = self._encode_context(nodeid, phase)
        self._context = (nodeid, phase, where)
        return where

    def flush(self) -> None:
        """Hand buffered events to the OS (the writer stays open)."""
        self.writer.flush()
