"""The CI gate: ``--fail-on`` read into a Gate, and each threshold and budget on real runs.

The thresholds run on the bookshop history (tests/history.py) and on small generated projects
run twice into one store; budgets on a project whose tests send a known number of statements.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import MakeProject

from devformance_nb.analysis.compare import Gate, compare_runs
from devformance_nb.api import facade as api
from devformance_nb.cli import main
from devformance_nb.core.errors import ConfigError

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]

AUTHOR_PAGES = "tests/api/test_catalog.py::test_authors_with_their_titles"


@pytest.mark.quick
def test_the_default_gate_has_every_switch_and_no_opt_in_threshold() -> None:
    gate = Gate()
    assert gate.new_n_plus_one and gate.newly_failing and gate.budget and gate.broken_file
    assert gate.coverage_drop == 0.0
    assert gate.queries_up_percent is gate.queries_up_count is gate.memory_up_percent is None
    assert Gate.parse("default") == gate


@pytest.mark.quick
def test_fail_on_turns_on_only_what_it_names() -> None:
    gate = Gate.parse("newly-failing,queries-up:25%,memory-up:10%")
    assert gate.newly_failing and not gate.new_n_plus_one and not gate.budget
    assert gate.coverage_drop is None  # not named: coverage never fails
    assert (gate.queries_up_percent, gate.queries_up_count, gate.memory_up_percent) == (
        25.0,
        None,
        10.0,
    )
    both = Gate.parse(["default", "queries-up:3", "coverage-drop:0.5"])
    assert both.new_n_plus_one and both.queries_up_count == 3 and both.coverage_drop == 0.5


@pytest.mark.quick
@pytest.mark.parametrize("spec", ["", "bogus", "queries-up", "queries-up:x%", "memory-up:5"])
def test_a_fail_on_it_cannot_read_names_the_kinds(spec: str) -> None:
    with pytest.raises(ConfigError, match="kind"):
        Gate.parse(spec)


@pytest.mark.quick
def test_a_negative_threshold_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 0"):
        Gate.parse("coverage-drop:-1")


def test_statements_up_fails_beyond_a_percentage_or_a_count(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db, facts.run("fix"), facts.run("regress"))
    row = cmp.query_changes.set_index("nodeid").loc[AUTHOR_PAGES]
    up = int(row["queries_b"] - row["queries_a"])
    percent = 100 * up / float(row["queries_a"])
    assert up > 0

    def failing(spec: str) -> list[str]:
        regressions = cmp.regressions(gate=Gate.parse(spec))
        return list(regressions[regressions["kind"] == "statements up"]["subject"])

    assert failing(f"queries-up:{up}") == []  # not more than allowed
    assert failing(f"queries-up:{up - 1}") == [AUTHOR_PAGES]
    assert failing(f"queries-up:{percent:.0f}%") == []
    assert failing(f"queries-up:{percent - 1:.0f}%") == [AUTHOR_PAGES]
    assert failing("default") == []  # opt-in: off by default
    detail = cmp.regressions(gate=Gate.parse("queries-up:0"))["detail"].iloc[0]
    # says which statements moved and where from
    assert detail.startswith(f"+{up} statements")
    assert "x SELECT … FROM books WHERE ? = books.author_id" in detail
    assert facts.new_n_plus_one_caller.split(":")[0] in detail


def _two_runs(
    make_project: MakeProject, tmp_path: Path, files: dict[str, str], changed: dict[str, str]
) -> tuple[Path, str, str]:
    db = tmp_path / "gate.duckdb"
    root = make_project(files)
    first = api.run_tests(root=root, db=db, workers=2, coverage=False)
    for rel, source in changed.items():
        (root / rel).write_text(source, encoding="utf-8")
    second = api.run_tests(root=root, db=db, workers=2, coverage=False)
    assert first.store_error is None and second.store_error is None
    return db, first.id, second.id


#: a test file holding about ``MB`` megabytes when its one test ends (every page written)
HEAVY = "HELD = []\n\ndef test_holds():\n    HELD.append(b'x' * ({mb} * 1024 * 1024))\n"


def test_memory_up_fails_a_file_whose_peak_grew_beyond_the_percentage(
    make_project: MakeProject, tmp_path: Path
) -> None:
    db, a, b = _two_runs(
        make_project,
        tmp_path,
        {"tests/test_heavy.py": HEAVY.format(mb=1), "tests/test_light.py": HEAVY.format(mb=1)},
        {"tests/test_heavy.py": HEAVY.format(mb=300)},
    )
    cmp = compare_runs(db, a, b)
    assert cmp.memory_changes is not None
    grown = cmp.memory_changes.set_index("file")["growth_percent"]
    assert grown["tests/test_heavy.py"] > 100
    regressions = cmp.regressions(gate=Gate.parse("memory-up:100%"))
    assert list(regressions["kind"]) == ["memory up"]
    assert list(regressions["subject"]) == ["tests/test_heavy.py"]
    assert "allowed +100%" in regressions["detail"].iloc[0]
    assert cmp.regressions().empty  # opt-in


#: a test file whose tests send a known number of statements to SQLite
BUDGETED = """
import sqlite3

import pytest


def send(n):
    con = sqlite3.connect(":memory:")
    for i in range(n):
        con.execute("SELECT ?", (i,)).fetchone()
    con.close()


@pytest.mark.devformance(max_queries=3)
def test_marked_within():
    send(3)


@pytest.mark.devformance(max_queries=3)
def test_marked_over():
    send({over})


def test_by_pattern():
    send(5)


def test_unbudgeted():
    send(50)
"""


def test_a_test_over_its_budget_fails_the_gate_with_its_statements(
    make_project: MakeProject, tmp_path: Path
) -> None:
    pyproject = (
        "[tool.pytest.ini_options]\n"
        "[tool.devformance]\n"
        'query_budgets = {"tests/test_budget.py::test_by_*" = 4}\n'
    )
    db, a, b = _two_runs(
        make_project,
        tmp_path,
        {"pyproject.toml": pyproject, "tests/test_budget.py": BUDGETED.format(over=3)},
        {"tests/test_budget.py": BUDGETED.format(over=7)},
    )
    before = compare_runs(db, b, a)  # a's own budgets: only the pattern's test is over
    assert before.over_budget is not None
    assert list(before.over_budget["nodeid"]) == ["tests/test_budget.py::test_by_pattern"]
    cmp = compare_runs(db, a, b)
    assert cmp.over_budget is not None
    over = cmp.over_budget[["nodeid", "queries", "budget"]].to_dict("records")
    assert over == [
        {"nodeid": "tests/test_budget.py::test_by_pattern", "queries": 5, "budget": 4},
        {"nodeid": "tests/test_budget.py::test_marked_over", "queries": 7, "budget": 3},
    ]
    regressions = cmp.regressions()
    budget_rows = regressions[regressions["kind"] == "over budget"]
    assert list(budget_rows["subject"]) == [r["nodeid"] for r in over]
    assert "7 statements, budget 3: 7 x SELECT ?" in budget_rows["detail"].iloc[1]
    assert cmp.regressions(gate=Gate.parse("newly-failing")).empty  # budgets off

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "devformance_nb.cli", "compare", a, b, "--db", str(db)]
        return subprocess.run([*command, *extra], capture_output=True, text=True, timeout=120)

    proc = cli()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "over budget: tests/test_budget.py::test_marked_over" in proc.stdout
    assert cli("--fail-on", "default").returncode == 1
    proc = cli("--fail-on", "newly-failing,new-n-plus-one")  # budgets not asked for
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize(
    ("steps", "fail_on", "code"),
    [
        (("fix", "regress"), "default", 1),  # a new N+1 and a new slow query
        (("fix", "regress"), "newly-failing,missing-test,broken-file", 0),
        (("fix", "regress"), "new-slow-query", 1),
        (("fix", "regress"), "queries-up:1000%", 0),
        (("fix", "regress"), "queries-up:100%", 1),  # the author pages: 5 -> 12
        (("fix", "baseline"), "coverage-drop:5", 0),  # the fix undone: coverage down 1.3
        (("fix", "baseline"), "coverage-drop", 1),
        (("regress", "flaky"), "default", 0),  # the flaky test: reported, never failing
        (("regress", "flaky"), "newly-failing", 0),
    ],
)
def test_the_exit_code_is_the_gate(
    db: Path,
    facts: Facts,
    steps: tuple[str, str],
    fail_on: str,
    code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = (facts.run(step) for step in steps)
    assert main(["compare", a, b, "--db", str(db), "--fail-on", fail_on]) == code
    printed = capsys.readouterr().out
    counted = [line for line in printed.splitlines() if line.startswith("regressions: ")]
    assert (counted == ["regressions: 0"]) == (code == 0), printed
