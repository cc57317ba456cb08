"""What ``devformance compare`` prints: text, Markdown (rendered as GitHub would, then its
structure checked) and JSON, on the real bookshop history (tests/history.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from devformance_nb.analysis.compare import Gate, compare_runs
from devformance_nb.cli.comparison import comparison_markdown, comparison_text, markdown_table

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]


class Structure(HTMLParser):
    """The headings, tables (rows of cell texts) and <details> blocks of rendered HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[tuple[str, str]] = []
        self.tables: list[list[list[str]]] = []
        self.details = 0
        self._heading: str | None = None
        self._cell: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h2", "h3"):
            self._heading, self._text = tag, []
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell, self._text = [], []
        elif tag == "details":
            self.details += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h2", "h3") and self._heading:
            self.headings.append((self._heading, "".join(self._text).strip()))
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._text).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self._text.append(data)


def rendered(markdown: str) -> Structure:
    """``markdown`` rendered as GitHub-flavoured (tables, inline HTML), parsed back."""
    html = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    structure = Structure()
    structure.feed(html)
    return structure


def test_the_markdown_renders_the_verdict_regressions_and_diffs(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db, facts.run("fix"), facts.run("regress"))
    page = rendered(comparison_markdown(cmp))
    regressions = cmp.regressions()
    assert page.headings[0] == ("h2", f"devformance: {len(regressions)} regressions")
    header, *rows = page.tables[0]
    assert header == ["kind", "subject", "detail"]
    assert [r[:2] for r in rows] == regressions[["kind", "subject"]].values.tolist()
    assert [r[2] for r in rows] == list(regressions["detail"])  # every character back
    assert ("h3", "Statements per test") in page.headings and page.details == 1
    diff_header, *diff_rows = page.tables[1]
    assert diff_header == ["test", "change", "base", "new", "statement", "at"]
    changes = cmp.statement_changes
    assert changes is not None
    assert [r[4] for r in diff_rows] == [" ".join(f.split()) for f in changes["fingerprint"]]
    assert ("h3", "Coverage") in page.headings


def test_a_clean_comparison_says_so_and_lists_the_flaky_test(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db, facts.run("regress"), facts.run("flaky"))
    page = rendered(comparison_markdown(cmp))
    assert page.headings[0] == ("h2", "devformance: no regressions")
    assert ("h3", "Reported, not failing") in page.headings
    assert page.tables[0][1:] == [
        ["flaky test", facts.flaky_test, "failed in b; passed and failed on one commit"]
    ]
    assert page.details == 0  # the same commit: no statement changed
    text = comparison_text(cmp)
    assert "reported, not failing: 1" in text and text.rstrip().endswith("regressions: 0")


@pytest.mark.quick
def test_table_cells_keep_pipes_markup_and_newlines_as_text() -> None:
    df = pd.DataFrame(
        [{"kind": "a|b", "subject": "<script>x</script>", "detail": "SELECT 1\n  | 2"}]
    )
    page = rendered("\n".join(markdown_table(df, ["kind", "subject", "detail"], code="detail")))
    assert page.tables == [
        [["kind", "subject", "detail"], ["a|b", "<script>x</script>", "SELECT 1 | 2"]]
    ]


def test_json_holds_the_verdict_and_every_table(db: Path, facts: Facts) -> None:
    args = [facts.run("fix"), facts.run("regress"), "--db", str(db), "--format", "json"]
    proc = subprocess.run(
        [sys.executable, "-m", "devformance_nb.cli", "compare", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    cmp = compare_runs(db, facts.run("fix"), facts.run("regress"))
    assert (data["a"], data["b"], data["base"]) == (cmp.a, cmp.b, [cmp.a])
    assert data["failed"] is True
    assert data["regressions"] == cmp.regressions().to_dict("records")
    changes = cmp.statement_changes
    assert changes is not None and len(data["statement_changes"]) == len(changes)
    assert {r["nodeid"] for r in data["statement_changes"]} == set(changes["nodeid"])
    assert data["coverage"]["delta"] == pytest.approx(cmp.coverage_delta)
    passing = Gate.parse("newly-failing")
    assert comparison_markdown(cmp, passing).startswith("## devformance: no regressions")
