"""The CI gate: which of a comparison's changes fail it, and how each one is said.

``Gate`` is the policy (``devformance compare --fail-on``): the kinds of regression that
count and the thresholds of the opt-in ones. ``regressions(cmp, gate)`` lists what fails;
``notices(cmp)`` lists what is reported but never fails (a test flaky on one commit: its
failure says nothing about the change under test).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import pandas as pd

from devformance_nb.analysis.statements import compact
from devformance_nb.analysis.statements import one_line as short
from devformance_nb.core.errors import ConfigError

#: regressions() and notices() columns
REGRESSION_COLUMNS = ["kind", "subject", "detail"]
#: file statuses of a file whose tests did not all run to an outcome (see run/state.py)
BROKEN_FILE_STATUSES = ("error", "crashed", "timeout")
#: the ``--fail-on`` words of the switches, and the Gate field each turns on
_SWITCHES = {
    "new-n-plus-one": "new_n_plus_one",
    "new-slow-query": "new_slow_query",
    "newly-failing": "newly_failing",
    "broken-file": "broken_file",
    "missing-test": "missing_test",
    "budget": "budget",
}
_THRESHOLDS = ("coverage-drop[:POINTS]", "queries-up:PCT% or :COUNT", "memory-up:PCT%")
#: statement changes named in a detail
_STATEMENTS_SHOWN = 3


class Comparison(Protocol):
    """What the gate reads of a ``compare.Comparison`` (which imports this module)."""

    @property
    def new_n_plus_one(self) -> pd.DataFrame: ...
    @property
    def new_slow_queries(self) -> pd.DataFrame: ...
    @property
    def query_changes(self) -> pd.DataFrame: ...
    @property
    def newly_failing(self) -> pd.DataFrame: ...
    @property
    def broken_files(self) -> pd.DataFrame: ...
    @property
    def missing_tests(self) -> pd.DataFrame: ...
    @property
    def coverage_a(self) -> float | None: ...
    @property
    def coverage_b(self) -> float | None: ...
    @property
    def statement_changes(self) -> pd.DataFrame | None: ...
    @property
    def over_budget(self) -> pd.DataFrame | None: ...
    @property
    def memory_changes(self) -> pd.DataFrame | None: ...

    @property
    def coverage_delta(self) -> float | None: ...


@dataclass(frozen=True)
class Gate:
    """What fails the gate. The switches are on by default; the thresholds: ``coverage_drop``
    (percentage points the total may fall; None: never fails), ``queries_up_percent`` and
    ``queries_up_count`` (a test's statements up by more than that, against the base), and
    ``memory_up_percent`` (a test file's peak memory up by more than that): off (None) by
    default."""

    new_n_plus_one: bool = True
    new_slow_query: bool = True
    newly_failing: bool = True
    broken_file: bool = True
    missing_test: bool = True
    budget: bool = True
    coverage_drop: float | None = 0.0
    queries_up_percent: float | None = None
    queries_up_count: float | None = None
    memory_up_percent: float | None = None

    @classmethod
    def parse(cls, spec: str | Sequence[str]) -> Gate:
        """The gate ``--fail-on`` names: comma-separated kinds, each turned on, every other
        off; ``default`` stands for the default ones. Kinds: new-n-plus-one, new-slow-query,
        newly-failing, broken-file, missing-test, budget, coverage-drop[:POINTS] (0 when
        not given), queries-up:PCT% or queries-up:COUNT, memory-up:PCT%."""
        words = [spec] if isinstance(spec, str) else list(spec)
        items = [w.strip() for word in words for w in word.split(",") if w.strip()]
        if not items:
            raise ConfigError(f"--fail-on needs at least one kind; {_known()}")
        gate = Gate(**{field: False for field in _SWITCHES.values()}, coverage_drop=None)
        for item in items:
            gate = _turn_on(gate, item)
        return gate


def _known() -> str:
    return f"kinds: default, {', '.join(_SWITCHES)}, {', '.join(_THRESHOLDS)}"


def _turn_on(gate: Gate, item: str) -> Gate:
    name, _, value = item.partition(":")
    if name == "default" and not value:
        drop = gate.coverage_drop if gate.coverage_drop is not None else Gate().coverage_drop
        return replace(gate, **{field: True for field in _SWITCHES.values()}, coverage_drop=drop)
    if name in _SWITCHES and not value:
        return replace(gate, **{_SWITCHES[name]: True})
    try:
        if name == "coverage-drop":
            return replace(gate, coverage_drop=_number(value or "0", item))
        if name == "queries-up" and value.endswith("%"):
            return replace(gate, queries_up_percent=_number(value[:-1], item))
        if name == "queries-up" and value:
            return replace(gate, queries_up_count=_number(value, item))
        if name == "memory-up" and value.endswith("%"):
            return replace(gate, memory_up_percent=_number(value[:-1], item))
    except ValueError:
        pass
    raise ConfigError(f"--fail-on: cannot read {item!r}; {_known()}")


def _number(text: str, item: str) -> float:
    value = float(text)
    if value < 0:
        raise ConfigError(f"--fail-on: {item!r} needs a number of at least 0")
    return value


def regressions(cmp: Comparison, gate: Gate) -> pd.DataFrame:
    """What got worse in ``cmp`` and fails ``gate`` (kind, subject, detail), in a fixed order:
    N+1, slow queries, coverage, failing tests, broken files, missing tests, budgets,
    statements, memory."""
    return pd.DataFrame(list(_rows(cmp, gate)), columns=REGRESSION_COLUMNS)


def notices(cmp: Comparison) -> pd.DataFrame:
    """What is reported but never fails the gate: tests failing in b that are flaky (both
    passed and failed on one commit)."""
    rows = [
        _row("flaky test", r.nodeid, f"{r.outcome_b} in b; passed and failed on one commit")
        for r in cmp.newly_failing.itertuples()
        if bool(getattr(r, "flaky", False))
    ]
    return pd.DataFrame(rows, columns=REGRESSION_COLUMNS)


def _row(kind: str, subject: object, detail: str) -> dict[str, str]:
    return {"kind": kind, "subject": str(subject), "detail": detail}


def _rows(cmp: Comparison, gate: Gate) -> Iterator[dict[str, str]]:
    if gate.new_n_plus_one:
        for r in cmp.new_n_plus_one.itertuples():
            detail = f"{r.queries} SELECTs on {r.table_name} in {', '.join(r.tests)}"
            yield _row("new N+1", r.caller, detail)
    if gate.new_slow_query:
        for r in cmp.new_slow_queries.itertuples():
            yield _row("new slow query", r.call_site, f"{r.max_ms:.0f} ms: {short(r.fingerprint)}")
    delta = cmp.coverage_delta
    if gate.coverage_drop is not None and delta is not None and -delta > gate.coverage_drop + 1e-9:
        detail = (
            f"{cmp.coverage_a:.2f}% -> {cmp.coverage_b:.2f}% "
            f"({delta:+.2f} points, allowed -{gate.coverage_drop:g})"
        )
        yield _row("coverage down", "total", detail)
    if gate.newly_failing:
        for r in cmp.newly_failing.itertuples():
            if not bool(getattr(r, "flaky", False)):
                detail = f"{r.outcome_b} (was {r.outcome_a or 'absent'})"
                yield _row("newly failing", r.nodeid, detail)
    if gate.broken_file:
        yield from _broken(cmp)
    if gate.missing_test:
        for r in cmp.missing_tests.itertuples():
            detail = f"{r.outcome_a} in a, absent from b ({r.file} {r.file_status_b})"
            yield _row("missing test", r.nodeid, detail)
    if gate.budget and cmp.over_budget is not None:
        for r in cmp.over_budget.itertuples():
            detail = f"{r.queries} statements, budget {r.budget}: {'; '.join(r.statements)}"
            yield _row("over budget", r.nodeid, detail)
    yield from _statements_up(cmp, gate)
    yield from _memory_up(cmp, gate)


def _broken(cmp: Comparison) -> Iterator[dict[str, str]]:
    for r in cmp.broken_files.itertuples():
        lost = f"; {r.missing_tests} tests of a not run" if r.missing_tests else ""
        message = f": {short(_last_line(r.message), 70)}" if _text(r.message) else ""
        was = _text(r.status_a) or "absent"
        yield _row("broken file", r.file, f"{r.status_b} (was {was}){message}{lost}")


def _statements_up(cmp: Comparison, gate: Gate) -> Iterator[dict[str, str]]:
    if gate.queries_up_percent is None and gate.queries_up_count is None:
        return
    changes = cmp.query_changes.dropna(subset=["queries_a", "queries_b"])
    for r in changes.itertuples():
        up = float(r.queries_b) - float(r.queries_a)
        over_count = gate.queries_up_count is not None and up > gate.queries_up_count
        over_percent = gate.queries_up_percent is not None and (
            up * 100 > gate.queries_up_percent * float(r.queries_a) if r.queries_a else up > 0
        )
        if up > 0 and (over_count or over_percent):
            head = f"{up:+g} statements ({r.queries_a:g} -> {r.queries_b:g})"
            yield _row("statements up", r.nodeid, ": ".join([head, *_changes_of(cmp, r.nodeid)]))


def _changes_of(cmp: Comparison, nodeid: str) -> list[str]:
    """The largest statement changes of one test, as ``+12 x SELECT ... at site`` (joined)."""
    df = cmp.statement_changes
    if df is None or df.empty:
        return []
    mine = df[df["nodeid"] == nodeid].head(_STATEMENTS_SHOWN)
    return ["; ".join(statement_change_text(r) for r in mine.itertuples())] if len(mine) else []


def statement_change_text(r: Any) -> str:
    """One row of ``statement_changes`` as ``+12 x SELECT ... FROM t WHERE id = ? at site``."""
    at = f" at {r.caller}" if _text(r.caller) else ""
    return f"{r.delta:+g} x {compact(r.fingerprint)}{at}"


def _memory_up(cmp: Comparison, gate: Gate) -> Iterator[dict[str, str]]:
    if gate.memory_up_percent is None or cmp.memory_changes is None:
        return
    for r in cmp.memory_changes.itertuples():
        if r.growth_percent > gate.memory_up_percent:
            detail = (
                f"peak {r.peak_mb_a:.0f} MB -> {r.peak_mb_b:.0f} MB ({r.growth_percent:+.0f}%, "
                f"allowed +{gate.memory_up_percent:g}%)"
            )
            yield _row("memory up", r.file, detail)


def _text(value: object) -> str | None:
    """A text cell of a frame, None for SQL NULL (which pandas may hand over as NaN)."""
    return value if isinstance(value, str) else None


def _last_line(text: str) -> str:
    """The last non-blank line of a collection error: the exception, after its traceback."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("E").strip() if lines else ""
