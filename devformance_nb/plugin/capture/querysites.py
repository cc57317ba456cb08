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
                helper = self._helpers.get(id(code))
                if helper is None:
                    self._keep(code)
                    helper = self._helpers[id(code)] = is_helper(current)
                if not helper:
                    return self._described(current)
                first = first or current
            current = current.f_back
        return "" if first is None else self._described(first)

    def mark(self, frame: FrameType) -> str:
        """``here(frame)`` for a call made on every queryset (Django's manager methods): when
        ``frame`` or its caller is project code already known not to be a query helper, its
        text at once; otherwise what ``here`` finds within ``MARK_DEPTH`` frames ('' if
        nothing: the lazy loads of those rows then name their own line)."""
        known, helpers = self.index.kinds, self._helpers
        for candidate in (frame, frame.f_back):
            if candidate is None:
                break
            code = candidate.f_code
            if known.get(code.co_filename) is True:
                if helpers.get(id(code)) is False:  # known not to be a query helper
                    return self._described(candidate)
                break  # ask ``here``, which tells (and remembers)
        # a manager called from library code: look a little further, never the whole stack
        # (a stack with no project frame near would be walked whole for every queryset)
        return self.here(frame, MARK_DEPTH)

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
            self._alive.clear()
        self._alive[id(code)] = code
