"""The summary cards of the live view: the run's figures, one HTML block."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from devformance_nb.run.state import FileState, RunState
from devformance_nb.ui.text import BORDER, COLOURS, esc, megabytes


@dataclass
class Summary:
    """The figures of the summary cards."""

    files: int = 0
    finished: int = 0
    tests: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    slow: int = 0
    n_plus_one: int = 0
    coverage: str = "–"
    status: str = "pending"
    #: files running now, the CPU their process trees use (percent of one core) and memory
    busy: int = 0
    cpu: float = 0.0
    memory: int | None = None
    #: files a --changed run did not run (their last results are counted above)
    carried: int = 0
    notes: list[str] = field(default_factory=list)


def _coverage_text(state: RunState, files: Iterable[FileState]) -> str:
    # the run total is the union of lines, which per-file percentages cannot give:
    # show it when the core provides it, otherwise the per-file range
    total = getattr(state, "coverage", None)
    if isinstance(total, (int, float)):
        return f"{total:.1f}%"
    values = [fs.coverage for fs in files if fs.coverage is not None]
    if not values:
        return "–"
    low, high = min(values), max(values)
    return f"{low:.0f}%" if round(low) == round(high) else f"{low:.0f}–{high:.0f}% per file"


def summarize(state: RunState) -> Summary:
    """Summary figures of a run, from its state."""
    files = list(state.files.values())
    totals = state.totals()
    summary = Summary(
        files=len(files),
        finished=sum(fs.is_finished for fs in files),
        tests=totals["tests"],
        passed=totals.get("passed", 0),
        failed=totals.get("failed", 0),
        errors=totals.get("error", 0),
        skipped=totals.get("skipped", 0),
        slow=sum(len(fs.slow) for fs in files),
        n_plus_one=sum(len(fs.n_plus_one) for fs in files),
        coverage=_coverage_text(state, files),
        status=state.status,
    )
    summary.carried = sum(fs.status == "carried" for fs in files)
    running = [fs for fs in files if fs.status == "running"]
    summary.busy = len(running)
    sampled = [fs for fs in running if fs.rss is not None]
    if sampled:
        summary.cpu = sum(fs.cpu_percent or 0.0 for fs in sampled)
        summary.memory = sum(fs.rss or 0 for fs in sampled)
    not_collected = sum(bool(fs.errors) and fs.status in ("error", "running") for fs in files)
    if files and not_collected == len(files):
        summary.notes.append(f"All {len(files)} files failed to collect: see each file's errors.")
    elif not_collected:
        summary.notes.append(f"{not_collected} of {len(files)} files failed to collect.")
    return summary


def _card(name: str, value: Any, colour: str = "inherit") -> str:
    return (
        f'<div style="border:1px solid {BORDER};border-radius:6px;padding:4px 12px;min-width:6em">'
        f'<div style="font-size:85%;opacity:.75">{esc(name)}</div>'
        f'<div style="font-size:150%;font-weight:600;color:{colour}">{esc(value)}</div></div>'
    )


def summary_html(s: Summary) -> str:
    """The summary cards as one HTML block (one widget: one message per change)."""
    bad = s.failed + s.errors
    cards = [
        _card("files", f"{s.finished}/{s.files}"),
        _card("tests run", s.tests),
        _card("passed", s.passed, COLOURS["passed"] if s.passed else "inherit"),
        _card(
            "failed",
            bad if not s.errors else f"{bad} ({s.errors} err)",
            COLOURS["failed"] if bad else "inherit",
        ),
        _card("slow queries", s.slow, COLOURS["timeout"] if s.slow else "inherit"),
        _card("N+1", s.n_plus_one, COLOURS["timeout"] if s.n_plus_one else "inherit"),
        _card("coverage", s.coverage),
        _card("running", s.busy),
        _card("CPU", f"{s.cpu:.0f}%" if s.memory is not None else "–"),
        _card("memory", megabytes(s.memory)),
    ]
    if s.carried:  # only in a --changed run: how many results are old, not re-run
        cards.insert(1, _card("carried, not re-run", s.carried, COLOURS["carried"]))
    notes = "".join(f'<div style="color:{COLOURS["error"]}">{esc(n)}</div>' for n in s.notes)
    return f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(cards)}</div>{notes}'
