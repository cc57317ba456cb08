"""Binder: what repo2docker installs, what postBuild builds, where JupyterLab opens.

postBuild itself runs once per session (tests/history.py, into a temp folder);
test_notebooks_analysis.py executes the notebooks in the environment it made.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from devformance_nb import analysis
from devformance_nb.cli.demo_history import History

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]  # the session's bookshop history: db, facts

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"


def _extras(names: list[str]) -> list[str]:
    """The requirements of this package's ``names`` extras, from pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = []
    for name in names:
        for requirement in project["optional-dependencies"][name]:
            found.append(re.split(r"[ ;<>=!\[]", requirement, maxsplit=1)[0].lower())
    return found


def test_requirements_install_the_package_with_the_demo_and_notebook_extras() -> None:
    lines = [
        line.strip()
        for line in (BINDER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == ["-e .[demo,notebook]"]
    needed = _extras(["demo", "notebook"])
    assert {"sqlalchemy", "jupyterlab", "altair", "vl-convert-python"} <= set(needed)
    for name in needed:  # this environment is what Binder builds: everything is there
        assert metadata.version(name)
    assert re.fullmatch(r"python-3\.\d+\s*", (BINDER / "runtime.txt").read_text())


def test_postbuild_recorded_the_demo_history(history: History, facts: Facts) -> None:
    assert [r.step for r in history.runs] == list(facts.steps)
    assert [r.status for r in history.runs] == ["passed", "passed", "passed", "failed"]
    overview = analysis.runs_overview(history.db, "all")
    assert list(overview["run_id"]) == facts.ids
    assert overview["queries"].gt(0).all() and overview["coverage_percent"].gt(0).all()


def test_postbuild_opens_jupyterlab_on_the_tour(history: History, facts: Facts) -> None:
    base = history.db.parent
    config = base / "jupyter" / "jupyter_server_config.json"
    url = json.loads(config.read_text())["ServerApp"]["default_url"]
    assert url == "/lab/tree/notebooks/00_tour.ipynb"
    assert (REPO / url.removeprefix("/lab/tree/")).is_file()
    # and jupyter server reads it from there
    env = facts.postbuild_env(base)
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_server", "--show-config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "default_url" in proc.stdout and "00_tour.ipynb" in proc.stdout, proc.stderr[-2000:]


def test_start_points_the_notebooks_at_the_demo_store() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DEVFORMANCE_DB"}
    proc = subprocess.run(
        ["bash", os.fspath(BINDER / "start"), sys.executable, "-c",
         "import os; print(os.environ['DEVFORMANCE_DB'])"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    default = REPO / "examples" / "bookshop" / ".devformance" / "devformance.duckdb"
    assert Path(proc.stdout.strip()) == default
    # the notebooks' own default (relative to notebooks/) is the same file
    tour = (REPO / "notebooks" / "00_tour.ipynb").read_text()
    assert "../examples/bookshop/.devformance/devformance.duckdb" in tour
    assert (REPO / "notebooks" / "../examples/bookshop/.devformance").resolve() == default.parent
