"""The analysis notebooks, executed top to bottom in a real kernel, in the Binder environment.

The store is the one ``binder/postBuild`` built (tests/history.py) and the
kernel gets the environment ``binder/start`` gives the server. Every cell must
run; every cell that draws a chart must output a Vega-Lite spec with its data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
import pytest
from nbclient import NotebookClient

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]  # the session's bookshop history: db, facts

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
ANALYSIS = [
    "00_tour.ipynb",
    "02_slow_queries.ipynb",
    "03_n_plus_one.ipynb",
    "04_coverage.ipynb",
    "05_compare_runs.ipynb",
]
RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
#: how our charts' HTML output hands the spec to vega-embed (devformance_nb.charts.renderer)
SPEC = re.compile(r"var spec = (\{.*?\});\n", re.S)


def _read(name: str) -> Any:
    return nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]


def _code(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", ANALYSIS)
def test_stored_without_outputs_and_parameterised(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    code = _code(nb)
    assert all(not c.outputs and c.execution_count is None for c in code)
    first = code[0]
    assert first.metadata.get("tags") == ["parameters"]
    assert 'os.environ.get("DEVFORMANCE_DB"' in first.source
    text = "\n".join(c.source for c in nb.cells)
    assert not RUN_ID.search(text), "a hard-coded run id"


def binder_env(db: Path) -> dict[str, str]:
    """The environment binder/start gives the server (and so its kernels), for ``db``."""
    proc = subprocess.run(
        ["bash", os.fspath(REPO / "binder" / "start"), "env", "-0"],
        env={**os.environ, "DEVFORMANCE_DB": os.fspath(db)},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(item.split("=", 1) for item in proc.stdout.split("\0") if "=" in item)


@pytest.fixture(scope="module")
def executed(db: Path) -> dict[str, Any]:
    """Every analysis notebook after running in a real kernel."""
    env = binder_env(db)
    assert env["DEVFORMANCE_DB"] == os.fspath(db)
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits the server's environment
    try:
        done = {}
        for name in ANALYSIS:
            nb = _read(name)
            client = NotebookClient(
                nb,
                timeout=240,
                kernel_name="python3",
                resources={"metadata": {"path": os.fspath(NOTEBOOKS)}},
            )
            client.execute()
            done[name] = nb
        return done
    finally:
        os.environ.clear()
        os.environ.update(saved)


def vega_lite(cell: Any) -> list[dict[str, Any]]:
    """The Vega-Lite specs a cell's outputs carry."""
    specs = []
    for output in cell.outputs:
        data = output.get("data", {})
        for mime, value in data.items():
            if "vegalite" in mime:
                specs.append(value if isinstance(value, dict) else json.loads(value))
        if "text/html" in data and "devformance-chart" in data["text/html"]:
            match = SPEC.search(data["text/html"])
            assert match, "a chart output without its spec"
            specs.append(json.loads(match.group(1)))
            # drawn offline: no script or stylesheet comes from a CDN
            assert not re.search(r"<(script|link)[^>]+(src|href)=", data["text/html"])
    return specs


def chart_of(cell: Any) -> dict[str, Any]:
    """The one Vega-Lite spec a chart cell outputs."""
    specs = vega_lite(cell)
    assert len(specs) == 1, cell.source
    (spec,) = specs
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    return spec


def chart_rows(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return list(spec.get("datasets", {}).values())


#: the cell of notebook 05 drawing each test's statement changes
STATEMENTS_CHART = "charts.statement_changes("


@pytest.mark.parametrize("name", ANALYSIS)
def test_notebook_runs_and_draws_its_charts(executed: dict[str, Any], name: str) -> None:
    nb = executed[name]
    code = _code(nb)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    chart_cells = [c for c in code if "charts." in c.source.splitlines()[-1]]
    assert chart_cells, "a notebook without a chart"
    for cell in chart_cells:
        spec = chart_of(cell)
        if STATEMENTS_CHART in cell.source:
            # the flaky run against the one before: one commit, so no test's statements
            # changed (test_statements); the chart says so (against a baseline: below)
            assert chart_rows(spec) == [[]]
            assert spec["title"]["subtitle"] == "no test's statements changed"
            continue
        datasets = chart_rows(spec)
        assert datasets and all(datasets), f"a chart without data: {cell.source}"


def _printed(nb: Any) -> str:
    return "".join(o.get("text", "") for c in _code(nb) for o in c.outputs)


def test_tour_and_compare_show_the_history(executed: dict[str, Any], facts: Facts) -> None:
    tour = json.dumps([c.outputs for c in _code(executed["00_tour.ipynb"])])
    for run in facts.ids:
        assert run in tour
    compare = _printed(executed["05_compare_runs.ipynb"])
    assert f"run {facts.run('flaky')} against run {facts.run('regress')}" in compare
    # the flaky test fails in the flaky run: reported, never a regression
    assert f"newly failing: 1\n  {facts.flaky_test} (failed)" in compare
    assert f"reported, not failing: 1\n  flaky test: {facts.flaky_test}" in compare
    notices = _cell_with(executed["05_compare_runs.ipynb"], "comparison.notices()")
    assert "flaky test" in notices and facts.flaky_test[:40] in notices
    n_plus_one = _printed(executed["03_n_plus_one.ipynb"])
    assert facts.new_n_plus_one_caller in n_plus_one
    assert "fix: " in n_plus_one


def _cell_with(nb: Any, text: str) -> str:
    """What the one code cell whose source holds ``text`` shows: HTML (a DataFrame's table:
    pandas cuts each long value to its first 47 characters) or text."""
    (cell,) = [c for c in _code(nb) if text in c.source]
    data = [o.get("data", {}) for o in cell.outputs]
    return "".join(d.get("text/html", d.get("text/plain", "")) for d in data) + "".join(
        o.get("text", "") for o in cell.outputs
    )


def test_compare_against_a_baseline_shows_each_tests_statements(db: Path, facts: Facts) -> None:
    # the flaky run (branch feature) against main's runs: the author pages' loop of the
    # regress step ran in one of three, so those tests' statements changed against the median
    baseline = f"branch:{facts.main_branch}:last:5"
    nb = _execute("05_compare_runs.ipynb", db, {"A": baseline})
    assert _errors(nb) == []
    printed = _printed(nb)
    base = f"{facts.run('baseline')} to {facts.run('regress')}"
    assert f"run {facts.run('flaky')} against a baseline of 3 runs ({base})" in printed
    (cell,) = [c for c in _code(nb) if STATEMENTS_CHART in c.source]
    (data,) = chart_rows(chart_of(cell))
    expected = facts.changed_tests["regress"]
    assert sorted({r["nodeid"] for r in data}) == sorted(expected)
    table = _cell_with(nb, "statements = comparison.statement_changes")
    assert all(test[:40] in table for test in expected) and "SELECT … FROM books" in table
    assert facts.flaky_test[:40] in _cell_with(nb, "comparison.notices()")


# --- the history a notebook finds: another project's store, one run, two runs, none ---

OTHER_APP = """\
import sqlite3


def connect():
    db = sqlite3.connect(":memory:")
    db.executescript(
        "CREATE TABLE team (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE player (id INTEGER PRIMARY KEY, team_id INTEGER, name TEXT);"
        "INSERT INTO team VALUES (1, 'a'), (2, 'b'), (3, 'c');"
        "INSERT INTO player VALUES (1, 1, 'x'), (2, 2, 'y'), (3, 3, 'z');"
    )
    return db


def rosters(db):
    teams = db.execute("SELECT id, name FROM team").fetchall()
    return {name: db.execute("SELECT name FROM player WHERE team_id = ?", (tid,)).fetchall()
            for tid, name in teams}
"""
OTHER_TESTS = """\
from league import connect, rosters


def test_rosters():
    assert len(rosters(connect())) == 3


def test_fails():
    assert rosters(connect())["a"] == []
"""


def _other_project(base: Path) -> Path:
    """A project that is not the bookshop: other tables, other files, one failing test."""
    project = base / "league"
    (project / "tests").mkdir(parents=True)
    (project / "league.py").write_text(OTHER_APP, encoding="utf-8")
    (project / "tests" / "test_league.py").write_text(OTHER_TESTS, encoding="utf-8")
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n',
        encoding="utf-8",
    )
    return project


def _record(project: Path, db: Path) -> None:
    cli = Path(sys.executable).with_name("devformance")
    proc = subprocess.run(
        [os.fspath(cli), "run", "--root", os.fspath(project), "--db", os.fspath(db), "-n", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the planted failing test


def _execute(name: str, db: Path, parameters: dict[str, object] | None = None) -> Any:
    """``name`` run on ``db``; ``parameters`` set after its parameters cell (as papermill)."""
    nb = _read(name)
    if parameters:
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        given = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(given))  # type: ignore[no-untyped-call]
    saved = os.environ.get("DEVFORMANCE_DB")
    os.environ["DEVFORMANCE_DB"] = os.fspath(db)
    try:
        client = NotebookClient(
            nb,
            timeout=240,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": os.fspath(NOTEBOOKS)}},
        )
        client.execute()
    finally:
        if saved is None:
            os.environ.pop("DEVFORMANCE_DB", None)
        else:
            os.environ["DEVFORMANCE_DB"] = saved
    return nb


def _errors(nb: Any) -> list[str]:
    return [
        f"{o.ename}: {o.evalue}" for c in _code(nb) for o in c.outputs if o.output_type == "error"
    ]


@pytest.fixture(scope="module")
def other_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("other-project")
    project, db = _other_project(base), base / "league.duckdb"
    _record(project, db)
    return project, db


@pytest.mark.parametrize("name", ANALYSIS)
def test_one_run_of_another_project(other_store: tuple[Path, Path], name: str) -> None:
    _, db = other_store
    nb = _execute(name, db)
    assert _errors(nb) == []
    text = _printed(nb)
    if name in ("00_tour.ipynb", "05_compare_runs.ipynb"):
        assert "`devformance run`" in text and "to compare" in text
    for cell in _code(nb):
        if "charts." in cell.source.splitlines()[-1] and name != "05_compare_runs.ipynb":
            assert len(vega_lite(cell)) == 1, cell.source
    assert "bookshop" not in json.dumps([c.outputs for c in _code(nb)]).lower()


def test_two_runs_of_another_project_compare(other_store: tuple[Path, Path]) -> None:
    project, db = other_store
    _record(project, db)
    for name in ("00_tour.ipynb", "05_compare_runs.ipynb"):
        nb = _execute(name, db)
        assert _errors(nb) == []
    compare = _printed(nb)
    assert "to compare" not in compare
    assert re.search(rf"run {RUN_ID.pattern} against run {RUN_ID.pattern}", compare)
    chart = [c for c in _code(nb) if "charts.run_comparison" in c.source]
    assert chart and len(vega_lite(chart[0])) == 1


def test_no_store_names_the_command_to_run(tmp_path: Path) -> None:
    nb = _execute("03_n_plus_one.ipynb", tmp_path / "missing.duckdb")
    errors = _errors(nb)
    assert errors and errors[0].startswith("StoreError: no store at")
    assert "devformance run" in errors[0]
