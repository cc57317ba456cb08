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
#: how altair's default renderer hands the spec to vega-embed in its HTML output
SPEC = re.compile(r"\}\)\((\{.*\}), \{\"mode\": \"vega-lite\"\}\);", re.S)


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
        if "text/html" in data and "vega-embed" in data["text/html"]:
            match = SPEC.search(data["text/html"])
            assert match, "a chart output without its spec"
            specs.append(json.loads(match.group(1)))
    return specs


@pytest.mark.parametrize("name", ANALYSIS)
def test_notebook_runs_and_draws_its_charts(executed: dict[str, Any], name: str) -> None:
    nb = executed[name]
    code = _code(nb)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert errors == []
    chart_cells = [c for c in code if "charts." in c.source.splitlines()[-1]]
    assert chart_cells, "a notebook without a chart"
    for cell in chart_cells:
        specs = vega_lite(cell)
        assert len(specs) == 1, cell.source
        (spec,) = specs
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
        datasets = spec.get("datasets", {})
        assert datasets and all(datasets.values()), f"a chart without data: {cell.source}"


def _printed(nb: Any) -> str:
    return "".join(o.get("text", "") for c in _code(nb) for o in c.outputs)


def test_tour_and_compare_show_the_history(executed: dict[str, Any], facts: Facts) -> None:
    tour = json.dumps([c.outputs for c in _code(executed["00_tour.ipynb"])])
    for run in facts.ids:
        assert run in tour
    compare = _printed(executed["05_compare_runs.ipynb"])
    assert f"run {facts.run('flaky')} against run {facts.run('regress')}" in compare
    assert f"newly failing: {facts.flaky_test}" in compare
    n_plus_one = _printed(executed["03_n_plus_one.ipynb"])
    assert facts.new_n_plus_one_caller in n_plus_one
    assert "fix: " in n_plus_one
