"""``%load_ext devformance_nb``, the ``%devformance`` magic and ``notebook.run_tests``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import MakeProject

from devformance_nb.ui import magic, notebook
from devformance_nb.ui.liveview import LiveRunView

SUITE = {
    "tests/test_one.py": "def test_ok():\n    print('one')\n",
    "tests/test_two.py": "def test_ok():\n    assert True\n",
}


@pytest.mark.quick
@pytest.mark.parametrize(
    ("line", "paths", "options"),
    [
        ("", [], {}),
        ("tests/", ["tests/"], {}),
        ("tests/a.py tests/b --workers 3", ["tests/a.py", "tests/b"], {"workers": 3}),
        ("-n 2 --db x.duckdb --timeout 5", [], {"workers": 2, "db": "x.duckdb", "timeout": 5.0}),
        ("--root 'my project' --no-live", [], {"root": "my project", "live": False}),
        ("tests -- -x -k 'a or b'", ["tests"], {"pytest_args": ["-x", "-k", "a or b"]}),
    ],
)
def test_parse_line(line: str, paths: list[str], options: dict[str, Any]) -> None:
    assert magic.parse_line(line) == (paths, options)


@pytest.mark.quick
def test_bad_arguments_raise_a_usage_error_not_system_exit() -> None:
    with pytest.raises(magic.MagicUsageError, match="usage: %devformance"):
        magic.parse_line("--workers many")
    with pytest.raises(magic.MagicUsageError, match="unrecognized"):
        magic.parse_line("--bogus")


@pytest.fixture
def shell() -> Any:
    """A real (terminal) IPython shell with the extension loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "devformance_nb")
    yield ip
    ip.user_ns.pop(magic.RUN_NAME, None)


@pytest.mark.quick
def test_load_ext_registers_the_magic(shell: Any) -> None:
    assert "devformance" in shell.magics_manager.magics["line"]


def test_magic_runs_outside_a_notebook_and_keeps_the_run(
    shell: Any, make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(SUITE)
    db = tmp_path / "m.duckdb"
    shell.run_line_magic("devformance", f"tests/test_one.py --root {root} --db {db} -n 1")
    run = shell.user_ns[magic.RUN_NAME]
    assert run.done and run.status == "passed" and run.db == db
    assert [fs.key for fs in run.files] == ["tests/test_one.py"]
    assert "devformance: passed" in capsys.readouterr().out, "the terminal view printed"


def test_magic_reports_errors_in_one_line(
    shell: Any, make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(SUITE)
    shell.run_line_magic("devformance", f"missing/ --root {root}")
    shell.run_line_magic("devformance", "--workers lots")
    out = capsys.readouterr().out
    assert "%devformance: error: path 'missing/' does not exist" in out
    assert "%devformance: error: argument --workers" in out
    assert magic.RUN_NAME not in shell.user_ns


@pytest.mark.quick
def test_in_notebook_is_false_in_a_terminal_shell(shell: Any) -> None:
    assert notebook.in_notebook() is False


def test_run_tests_live_returns_at_once_and_fills_the_view(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project(SUITE)
    run = notebook.run_tests(root=root, live=True, workers=2, db=str(tmp_path / "l.duckdb"))
    (view,) = [o for o in run._setup.launcher.observers if isinstance(o, LiveRunView)]
    run.wait(300)  # returns as soon as the run ends: generous for a loaded machine
    assert run.status == "passed" and len(run.files) == 2
    assert view.run is run and len(view.accordion.children) == 2
    assert all(t.startswith("✔ passed") for t in view.accordion.titles)


def test_run_tests_not_live_delegates_to_the_blocking_api(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project(SUITE)
    run = notebook.run_tests(root=root, live=False, db=str(tmp_path / "b.duckdb"))
    assert run.done and run.status == "passed"


def test_magic_in_a_real_kernel_shows_the_live_view(
    make_project: MakeProject, tmp_path: Path
) -> None:
    import nbformat
    from nbclient import NotebookClient

    root = make_project(SUITE)
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext devformance_nb"),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
            f"%devformance tests/ --root '{root}' --db '{tmp_path / 'k.duckdb'}' -n 2"
        ),
        nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
            "print(devformance_run.wait().status)"
        ),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True).execute()
    assert nb.cells[2].outputs[0]["text"] == "passed\n"
    models = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    (accordion,) = [m["state"] for m in models.values() if m["model_name"] == "AccordionModel"]
    assert [t.split("  ·  ")[:2] for t in accordion["titles"]] == [
        ["✔ passed", "tests/test_one.py"],
        ["✔ passed", "tests/test_two.py"],
    ]


def test_a_rerun_cell_stops_the_run_still_going(make_project: MakeProject, tmp_path: Path) -> None:
    root = make_project(
        {
            **SUITE,
            # waits forever: only the second run's stop ends it
            "tests/test_slow.py": (
                "import threading\n\ndef test_slow():\n    threading.Event().wait()\n"
            ),
        }
    )
    db = str(tmp_path / "r.duckdb")
    first = notebook.run_tests(root=root, live=True, workers=3, db=db)
    (old_view,) = [o for o in first._setup.launcher.observers if isinstance(o, LiveRunView)]
    second = notebook.run_tests("tests/test_one.py", root=root, live=True, workers=1, db=db)
    assert first.done and first.status == "stopped"
    assert "a new run was started" in old_view.status.value
    second.wait(300)
    assert second.status == "passed" and not old_view.running
