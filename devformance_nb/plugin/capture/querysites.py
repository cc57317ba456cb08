"""Where a query was built or run: the line a lazy load's fix goes to.

A lazy load's statement is sent from the line that touched the relation, but its fix (a loader
option, ``select_related``/``prefetch_related``) goes on the query the parent rows came from.
The ORM adapters ask :class:`QuerySites` for that line when a queryset is built (Django) or an
ORM result is turned into instances (SQLAlchemy), and carry it to the lazy loads of those rows.
"""

from __future__ import annotations

from types import CodeType, FrameType

from devformance_nb.plugin.capture.callsites import is_helper
from devformance_nb.plugin.capture.frames import FrameIndex

#: code locations described before the cache is dropped (bounds memory)
MAX_SITES = 20_000

#: frames ``QuerySites.mark`` looks through for a project frame before it gives up
MARK_DEPTH = 8


class QuerySites:
    """``path:line function`` of the project frame that builds or runs a query."""

    def __init__(self, index: FrameIndex) -> None:
        self.index = index
        #: (id(code), f_lasti) -> its text; the code objects are kept so ids stay theirs
        self._texts: dict[tuple[int, int], str] = {}
        #: id(code) -> whether its function is a query helper (handed statements)
        self._helpers: dict[int, bool] = {}
        self._alive: dict[int, CodeType] = {}
        #: (id(code), f_lasti) of a frame that alone decides a mark -> the mark (see ``mark``)
        self.marks: dict[tuple[int, int], str] = {}

    def here(self, frame: FrameType | None, depth: int = 1 << 30) -> str:
        """The innermost project frame from ``frame`` outward that was not handed the statement
        (a query helper, as for a statement's caller; the innermost project frame when all
        were), or '' when no project code is on the stack. Cached per code location, and
        helper or not per function, so a repeated call costs a short walk and a few lookups."""
        known = self.index.kinds  # the walk's own cache: a frame costs one lookup
        first: FrameType | None = None
        current = frame
        while current is not None and depth > 0:
            depth -= 1
            code = current.f_code
            try:
                kind = known[code.co_filename]
            except KeyError:
                kind = self.index.kind(code.co_filename)
            if kind is True:
                if not self._helper(current):
                    return self._described(current)
                first = first or current
            current = current.f_back
        return "" if first is None else self._described(first)

    def mark(self, frame: FrameType, through: frozenset[str]) -> str:
        """Where a query is built, for a call made on every queryset (Django's managers):
        ``frame`` and its callers are passed while they are the library's own query-making
        code (files in ``through``, such as its managers), and the first frame past them
        decides. Project code not a query helper: its text; other project code: what
        ``here`` finds within ``MARK_DEPTH`` frames; other library code: '' (a query the
        library makes for itself, as a model's save does: the lazy loads of its rows, if
        any, name their own line). A frame that decides alone is remembered by code
        location in ``marks``, which callers read first: one lookup, no walk."""
        known = self.index.kinds
        current: FrameType | None = frame
        for _ in range(MARK_DEPTH):
            if current is None:
                return ""
            code = current.f_code
            path = code.co_filename
            kind = known.get(path)
            if kind is None:
                kind = self.index.kind(path)
            if kind is True:
                if self._helper(current):  # the site is further out, it depends on the caller
                    return self.here(current, MARK_DEPTH)
                text = self._described(current)
            elif path in through:
                current = current.f_back
                continue
            else:
                text = ""
            self._keep(code)
            self.marks[(id(code), current.f_lasti)] = text
            return text
        return ""

    def _helper(self, frame: FrameType) -> bool:
        code = frame.f_code
        helper = self._helpers.get(id(code))
        if helper is None:
            self._keep(code)
            helper = self._helpers[id(code)] = is_helper(frame)
        return helper

    def _described(self, frame: FrameType) -> str:
        code = frame.f_code
        where = (id(code), frame.f_lasti)
        text = self._texts.get(where)
        if text is None:
            self._keep(code)
            name = getattr(code, "co_qualname", code.co_name)
            path = self.index.relpath(code.co_filename)
            text = self._texts[where] = f"{path}:{frame.f_lineno or 0} {name}"
        return text

    def _keep(self, code: CodeType) -> None:
        if len(self._alive) >= MAX_SITES:
            self._texts.clear()
            self._helpers.clear()
            self.marks.clear()
            self._alive.clear()
        self._alive[id(code)] = code
