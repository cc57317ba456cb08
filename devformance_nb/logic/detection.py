"""N+1 detection over captured ``Query`` events (the slow-query rule is ``logic.slow``).

Runs in the parent at ingest, one test file at a time (``find_n_plus_one``), or streaming
with ``NPlusOneDetector``, which keeps only the open tests' groups in memory.

N+1 (after Prosopite): within one test and phase, the same SELECT fingerprint issued from the
same project call stack at least ``min_count`` times; or, where the ORM says so (after Bullet
and nplusone), a lazy load of a relation on an instance that came from a result of two rows or
more, however few times it ran (the finding then names the relation and the exact fix). A stack
is the project frames with their instruction offsets, so two statements sent from one line by
two different calls are two stacks while the iterations of one loop share theirs. Never
counted: statements with no project frame on their stack (nothing to change, and nothing to
tell their sources apart), SELECTs that read no table (``SELECT quote(?)``), catalog lookups
and transaction control.

Pages (a SELECT with ``LIMIT`` or ``OFFSET``) are judged by the same rule, with one listing
counted once: the child tags each with a hash of what selects its listing (the parameters that
are not the page) and one of the page (offset, keyset cursor compared with ``>``/``<``,
limit), so successive pages of one listing count as one statement, while the same page asked
for each parent (a listing per parent) counts once per parent; the same page of one listing
asked again counts again. A page statement recorded without that tag (an older child) is never
counted, as before. The labelled corpus in ``tests/corpus`` holds the cases this rule is
checked on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

from devformance_nb.core.events import Query
from devformance_nb.logic.fingerprint import fingerprint, fingerprint_hash
from devformance_nb.logic.hints import hint_for, lazy_load_hint
from devformance_nb.logic.slow import cap_example, first_table
from devformance_nb.logic.statementinfo import is_catalog_or_control, is_select, names_a_table

_PHASE_ORDER = {"setup": 0, "call": 1, "teardown": 2}
_CALLER = re.compile(r"^(?P<path>.*):(?P<line>\d+)(?: (?P<func>.*))?$", re.DOTALL)


@dataclass(frozen=True)
class NPlusOneFinding:
    """A repeated SELECT in one test phase; ``total_duration`` in seconds."""

    file: str
    nodeid: str
    phase: str
    fingerprint: str
    fingerprint_hash: str
    table: str
    count: int
    total_duration: float
    caller: str
    stack_hash: str
    example_sql: str
    orm: str
    hint: str
    first_qseq: int
    sent_by: str = ""
    #: the relation or deferred field the ORM loaded lazily (``Author.books``), or ''
    relation: str = ""


def find_n_plus_one(
    queries: Iterable[Query], min_count: int = 2, allow: Sequence[str] = ()
) -> list[NPlusOneFinding]:
    """N+1 findings in ``queries`` (typically one test file's), ordered by
    (file, nodeid, phase, first_qseq).

    Within one (file, nodeid, phase), SELECTs sent by project code (a stack hash) that read a
    table and are not catalog lookups, transaction control or page reads (``OFFSET``) are
    grouped by (fingerprint, stack_hash). A group of at least ``min_count`` queries, or one
    holding an ORM lazy load for an instance of a multi-row result (``peers`` of 2 or more), is
    a finding, unless an ``allow`` entry matches it:

    - ``sql:PATTERN``: an fnmatch pattern on the fingerprint, case-insensitive, e.g.
      ``sql:SELECT * FROM "settings"*``;
    - ``stack:HASH``: exactly this stack hash;
    - anything else: an fnmatch pattern on the call site (the frame to change or the frame
      that sent the statement), tried against ``path:line function``, ``path:line``,
      ``path:function`` and ``path``, e.g. ``app/views.py:list_books``,
      ``app/legacy/*`` or ``*:42 *``.
    """
    detector = NPlusOneDetector(min_count=min_count, allow=allow, auto_finish=False)
    for query in queries:
        detector.add(query)
    return detector.findings()


@dataclass
class _Group:
    """Running totals of one (phase, fingerprint, stack, run of the body) within one test."""

    fingerprint: str
    count: int
    total: float
    first: Query
    orm: str
    #: the number of the statement ``orm`` came from (the first that had one)
    orm_qseq: int
    #: the earliest lazy load of the group (its relation and fix), if any
    load: Query | None = None
    #: whether a statement of the group loaded lazily for an instance of a multi-row result
    lazy_peers: bool = False
    #: page statements by listing: listing hash -> (statements, the distinct pages read)
    pages: dict[str, tuple[int, set[str]]] | None = None

    def repeats(self) -> int:
        """The statements of the group as the rule counts them: each listing's successive
        pages count once, a page read again counts again."""
        if not self.pages:
            return self.count
        paged = sum(n for n, _ in self.pages.values())
        listings = sum(n - len(seen) + 1 for n, seen in self.pages.values())
        return self.count - paged + listings

    def note_page(self, page: str) -> None:
        """Count one page statement (``page``: ``LISTING:PAGE``)."""
        listing, _, at = page.partition(":")
        pages = self.pages if self.pages is not None else {}
        n, seen = pages.get(listing, (0, set()))
        seen.add(at)
        pages[listing] = (n + 1, seen)
        self.pages = pages

    def add(self, query: Query) -> None:
        self.count += 1
        if query.page:
            self.note_page(query.page)
        self.total += query.duration
        if query.orm and (not self.orm or query.qseq < self.orm_qseq):
            self.orm, self.orm_qseq = query.orm, query.qseq
        if query.relation:
            self.note_load(query)
        # keep the earliest as the example, whatever order the events arrive in
        if query.qseq < self.first.qseq:
            self.first = query

    def note_load(self, query: Query) -> None:
        """Remember a statement that the ORM said loads a relation lazily."""
        if self.load is None or query.qseq < self.load.qseq:
            self.load = query
        if query.peers >= 2:
            self.lazy_peers = True


_TestKey = tuple[str, str]
_GroupKey = tuple[str, str, str, int]


class NPlusOneDetector:
    """Streaming N+1 detection: memory is bounded by the open tests' distinct statements.

    Feed queries with ``add``. Tests of one file run one after another in one child, so when a
    file's nodeid changes the previous test of that file is finished (``auto_finish``) and its
    findings are emitted; ``finish_test`` and ``finish_file`` close tests explicitly. ``add`` and
    the ``finish_*`` methods return the findings they emitted; ``findings()`` returns all of them
    (plus those of still-open tests) in order; ``drain()`` closes everything and forgets it.
    """

    def __init__(
        self, min_count: int = 2, allow: Sequence[str] = (), *, auto_finish: bool = True
    ) -> None:
        if min_count < 2:
            raise ValueError(f"min_count must be at least 2, got {min_count}")
        self.min_count = min_count
        self.auto_finish = auto_finish
        self._allow = AllowList(allow)
        self._open: dict[_TestKey, dict[_GroupKey, _Group]] = {}
        self._current: dict[str, str] = {}  # file -> nodeid of its open test
        self._emitted: list[NPlusOneFinding] = []

    def add(self, query: Query) -> list[NPlusOneFinding]:
        """Count one query; returns findings of a test this query showed to be finished."""
        emitted: list[NPlusOneFinding] = []
        previous = self._current.get(query.file)
        if self.auto_finish and previous is not None and previous != query.nodeid:
            emitted = self.finish_test(query.file, previous)
        self._current[query.file] = query.nodeid
        if not query.stack_hash:  # no project frame: nothing to change, never grouped
            return emitted
        fp = fingerprint(query.sql)
        if not is_candidate(fp, paged=bool(query.page)):
            return emitted
        key = (query.phase, fp, query.stack_hash, query.repeat)
        groups = self._open.setdefault((query.file, query.nodeid), {})
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(fp, 1, query.duration, query, query.orm, query.qseq)
            if query.relation:
                group.note_load(query)
            if query.page:
                group.note_page(query.page)
        else:
            group.add(query)
        return emitted

    def finish_test(self, file: str, nodeid: str) -> list[NPlusOneFinding]:
        """Close one test: emit its findings and drop its groups."""
        if self._current.get(file) == nodeid:
            del self._current[file]
        groups = self._open.pop((file, nodeid), {})
        found = sorted(self._findings_of(groups), key=finding_order)
        self._emitted.extend(found)
        return found

    def finish_file(self, file: str) -> list[NPlusOneFinding]:
        """Close every open test of ``file``."""
        found: list[NPlusOneFinding] = []
        for open_file, nodeid in [key for key in self._open if key[0] == file]:
            found += self.finish_test(open_file, nodeid)
        self._current.pop(file, None)
        return sorted(found, key=finding_order)

    def findings(self) -> list[NPlusOneFinding]:
        """All findings so far, including those of tests still open (which stay open)."""
        pending = [f for groups in self._open.values() for f in self._findings_of(groups)]
        return sorted(self._emitted + pending, key=finding_order)

    def drain(self) -> list[NPlusOneFinding]:
        """Close every open test, return all findings, and forget them."""
        for file, nodeid in list(self._open):
            self.finish_test(file, nodeid)
        found = sorted(self._emitted, key=finding_order)
        self._emitted = []
        self._current.clear()
        return found

    @property
    def open_tests(self) -> int:
        """How many (file, test) pairs still hold groups in memory."""
        return len(self._open)

    def _reportable(self, group: _Group) -> bool:
        repeated = group.repeats() >= self.min_count or group.lazy_peers
        return repeated and not self._allow.matches(group)

    def _findings_of(self, groups: dict[_GroupKey, _Group]) -> list[NPlusOneFinding]:
        """One finding per (phase, fingerprint, stack) whose group reaches the minimum in at
        least one run of the test body: its count is the largest run's, its time the sum of
        the runs that reached it."""
        merged: dict[tuple[str, str, str], list[_Group]] = {}
        for (phase, fp, stack, _), group in groups.items():
            if self._reportable(group):
                merged.setdefault((phase, fp, stack), []).append(group)
        return [self._finding(runs) for runs in merged.values()]

    @staticmethod
    def _finding(runs: list[_Group]) -> NPlusOneFinding:
        first = min((g.first for g in runs), key=lambda q: q.qseq)
        tagged = [g for g in runs if g.orm]
        orm = min(tagged, key=lambda g: g.orm_qseq).orm if tagged else ""
        loads = [g.load for g in runs if g.load is not None]
        load = min(loads, key=lambda q: q.qseq) if loads else None
        return make_finding(
            file=first.file,
            nodeid=first.nodeid,
            phase=first.phase,
            qseq=first.qseq,
            sql=first.sql,
            caller=first.caller,
            stack_hash=first.stack_hash,
            fp=runs[0].fingerprint,
            count=max(g.repeats() for g in runs),
            total_duration=sum(g.total for g in runs),
            orm=orm,
            sent_by=first.sent_by,
            relation=load.relation if load is not None else "",
            fix=load.fix if load is not None else "",
            query_at=load.query_at if load is not None else "",
        )


def make_finding(
    *,
    file: str,
    nodeid: str,
    phase: str,
    qseq: int,
    sql: str,
    caller: str,
    stack_hash: str,
    fp: str,
    count: int,
    total_duration: float,
    orm: str,
    sent_by: str = "",
    relation: str = "",
    fix: str = "",
    query_at: str = "",
) -> NPlusOneFinding:
    """The finding for ``count`` repeats of fingerprint ``fp``; the other fields are those of the
    earliest statement of the group (its caller, sender, stack hash, text and number), and the
    relation and fix of its earliest lazy load, if the ORM said so. Where the ORM also said
    where the query that loaded the parents was built (``query_at``), that is the frame to
    change: the fix goes there."""
    digest, table, hint = _finding_texts(fp, orm)
    if relation:
        hint = lazy_load_hint(relation, fix)
    return NPlusOneFinding(
        file=file,
        nodeid=nodeid,
        phase=phase,
        fingerprint=fp,
        fingerprint_hash=digest,
        table=table,
        count=count,
        total_duration=total_duration,
        caller=query_at or caller,
        stack_hash=stack_hash,
        example_sql=cap_example(sql),
        orm=orm,
        hint=hint,
        first_qseq=qseq,
        sent_by=sent_by,
        relation=relation,
    )


@lru_cache(maxsize=4_096)
def _finding_texts(fp: str, orm: str) -> tuple[str, str, str]:
    """(fingerprint hash, first table, fix hint) of findings of ``fp`` from ``orm``."""
    table = first_table(fp)
    return fingerprint_hash(fp), table, hint_for(orm, table, fp)


class AllowList:
    """Compiled allow entries (see ``find_n_plus_one`` for the syntax)."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.sql: list[str] = []
        self.stacks: set[str] = set()
        self.sites: list[str] = []
        for raw in entries:
            entry = raw.strip()
            if entry[:4].lower() == "sql:":
                self.sql.append(entry[4:].strip().lower())
            elif entry[:6].lower() == "stack:":
                self.stacks.add(entry[6:].strip())
            elif entry:
                self.sites.append(entry)

    def matches(self, group: _Group) -> bool:
        """Whether an entry silences this group."""
        first = group.first
        return self.allows(group.fingerprint, first.stack_hash, first.caller, first.sent_by)

    def allows(self, fp: str, stack_hash: str, caller: str, sent_by: str = "") -> bool:
        """Whether an entry silences repeats of ``fp`` from this stack and call site (a site
        pattern may name the frame to change or the frame that sent the statement)."""
        if stack_hash and stack_hash in self.stacks:
            return True
        if self.sql:
            lowered = fp.lower()
            if any(fnmatchcase(lowered, pattern) for pattern in self.sql):
                return True
        if self.sites:
            for where in {caller, sent_by} - {""}:
                sites = _call_site_forms(where)
                if any(fnmatchcase(site, p) for p in self.sites for site in sites):
                    return True
        return False


def _call_site_forms(caller: str) -> tuple[str, ...]:
    """``path:line function`` as itself, ``path:line``, ``path:function`` and ``path``."""
    match = _CALLER.match(caller)
    if match is None:
        return (caller,)
    path, line, func = match.group("path"), match.group("line"), match.group("func") or ""
    return (caller, f"{path}:{line}", f"{path}:{func}", path)


#: a page of a paginated read: "OFFSET ?" (literals and placeholders are "?" in a fingerprint)
#: or MySQL's "LIMIT ?, ?"
_PAGE = re.compile(r"\bOFFSET \?|\bLIMIT \?, \?")


@lru_cache(maxsize=32_768)
def is_candidate(fp: str, paged: bool = False) -> bool:
    """A SELECT worth counting for N+1: it reads a table, and is not a catalog lookup or
    transaction control; an ``OFFSET`` page only when the child told its listing apart
    (``paged``)."""
    return (
        is_select(fp)
        and not is_catalog_or_control(fp)
        and (paged or _PAGE.search(fp) is None)
        and names_a_table(fp)
    )


def finding_order(finding: NPlusOneFinding) -> tuple[str, str, int, str, int, str]:
    """The sort key findings are listed by: file, test, phase, first statement, fingerprint."""
    phase_rank = _PHASE_ORDER.get(finding.phase, len(_PHASE_ORDER))
    return (
        finding.file,
        finding.nodeid,
        phase_rank,
        finding.phase,
        finding.first_qseq,
        finding.fingerprint,
    )
