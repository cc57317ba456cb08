"""notebooks/01_live_run.ipynb executed top to bottom in a real kernel, widget state checked.

The notebook runs a temp copy of the bookshop demo (DEVFORMANCE_ROOT) into a
temp DuckDB file (DEVFORMANCE_DB), so nothing is written into the repository.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from devformance_nb.api import facade as api
from devformance_nb.ui import text as widgets_text

REPO = Path(__file__).resolve().parent.parent
BOOKSHOP = REPO / "examples" / "bookshop"
NOTEBOOK = REPO / "notebooks" / "01_live_run.ipynb"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
FINAL_ICONS = tuple(
    icon for s, icon in widgets_text.ICONS.items() if s not in ("pending", "running")
)


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "widgets" not in nb.metadata
    assert "run.wait()" in code[-1].source and "summary()" in code[-1].source


@pytest.fixture
def executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path, Path]:
    """The notebook after a run in a real kernel: (notebook, project copy, database)."""
    project = tmp_path / "bookshop"
    shutil.copytree(BOOKSHOP, project, ignore=shutil.ignore_patterns(".devformance", "__pycache__"))
    db = tmp_path / "live.duckdb"
    monkeypatch.setenv("DEVFORMANCE_ROOT", str(project))
    monkeypatch.setenv("DEVFORMANCE_DB", str(db))
    monkeypatch.setenv("DEVFORMANCE_WORKERS", "2")
    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb,
        timeout=240,
        kernel_name="python3",
        store_widget_state=True,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    return nb, project, db


def _models(nb: Any) -> dict[str, dict[str, Any]]:
    state: dict[str, dict[str, Any]] = nb.metadata["widgets"][WIDGET_STATE]["state"]
    return state


def _child(models: dict[str, dict[str, Any]], ref: str) -> dict[str, Any]:
    return models[ref.removeprefix("IPY_MODEL_")]


def _state(models: dict[str, dict[str, Any]], ref: str) -> dict[str, Any]:
    state: dict[str, Any] = _child(models, ref)["state"]
    return state


def _progress_of(models: dict[str, dict[str, Any]], item_ref: str) -> dict[str, Any]:
    """An item's progress bar: item VBox -> first HBox -> first child."""
    row = _child(models, _child(models, item_ref)["state"]["children"][0])
    return _state(models, row["state"]["children"][0])


def test_live_notebook_shows_every_bookshop_file_finished(
    executed: tuple[Any, Path, Path],
) -> None:
    nb, project, db = executed
    models = _models(nb)
    (accordion,) = [m["state"] for m in models.values() if m["model_name"] == "AccordionModel"]
    titles: list[str] = accordion["titles"]
    keys = sorted(p.relative_to(project).as_posix() for p in project.glob("tests/**/test_*.py"))
    assert len(titles) == len(accordion["children"]) == len(keys)
    assert sorted(t.split("  ·  ")[1] for t in titles) == sorted(keys)
    assert all(t.startswith(FINAL_ICONS) for t in titles), titles

    store = api.open_store(db)
    (run,) = store.runs()
    rows = store.query(
        "SELECT file, status, tests FROM test_files WHERE run_id = ?", [run["run_id"]]
    )
    by_file = {r["file"]: r for r in rows}
    for title, ref in zip(titles, accordion["children"], strict=True):
        key = title.split("  ·  ")[1]
        status_words = title.split("  ·  ")[0].split(" ", 1)[1]
        assert status_words == widgets_text.label(by_file[key]["status"])
        bar = _progress_of(models, ref)
        assert bar["description"].startswith(f"{by_file[key]['tests']}/"), (key, bar)
        assert bar["value"] == bar["max"] or by_file[key]["status"] != "passed"

    printed = [
        "".join(o.get("text", "") for o in c.outputs) for c in nb.cells if c.cell_type == "code"
    ]
    free = re.search(r"kernel free while run \S+ is (\w+): (\d+)/(\d+) files", printed[-2])
    assert free, printed[-2]
    assert free.group(1) in ("pending", "running") and int(free.group(2)) < len(keys), (
        "a cell ran while the run was still going"
    )
    summary_text = printed[-1]
    tests = int(re.search(r"(\d+) tests:", summary_text).group(1))  # type: ignore[union-attr]
    assert tests == run["tests"]
    summary = [m["state"]["value"] for m in models.values() if "tests run" in str(m["state"])]
    assert summary and f">{tests}<" in summary[0]
    assert f">{len(keys)}/{len(keys)}<" in summary[0], "every file counted as finished"
