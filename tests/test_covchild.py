"""Coverage inside real pytest children: what is measured, with which config, and bad input."""

from __future__ import annotations

import importlib.util
import shutil
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from covdriver import ChildRun, run_child, write_project
from coverage import CoverageData

from devformance_nb.core.contract import ChildOptions
from devformance_nb.plugin.coverage import silence_pytest_cov, start_child_coverage
from devformance_nb.run import covdata

SHOP = {
    "shop/__init__.py": "VERSION = '1'\n",
    "shop/calc.py": """
        def add(a, b):
            return a + b


        def sign(x):
            if x > 0:
                return 1
            return -1
        """,
    "shop/admin.py": "def never():\n    return 42\n",
    "shop/tests/__init__.py": "",
    "shop/tests/test_inner.py": "def test_inner():\n    pass\n",
    "tests/conftest.py": "import shop.calc  # imported by a conftest: must still count\n",
    "tests/test_calc.py": """
        from shop.calc import add

        def test_add():
            assert add(1, 2) == 3

        def test_add_again():
            assert add(2, 2) == 4
        """,
}
PYTEST_INI = '[tool.pytest.ini_options]\npythonpath = ["."]\n'

#: scenario -> (files on top of SHOP, extra child options, extra pytest args)
SCENARIOS: dict[str, tuple[dict[str, str], dict[str, object], list[str]]] = {
    "default": ({"pyproject.toml": PYTEST_INI}, {}, []),
    "branch_config": (
        {"pyproject.toml": PYTEST_INI + '[tool.coverage.run]\nsource = ["shop"]\nbranch = true\n'},
        {},
        [],
    ),
    "option_source": (
        {
            "pyproject.toml": PYTEST_INI + '[tool.coverage.run]\nsource = ["other"]\n',
            "other/__init__.py": "X = 1\n",
        },
        {"coverage_source": ["shop"]},
        [],
    ),
    "broken": ({"pyproject.toml": PYTEST_INI, ".coveragerc": "[run\nbranch = ???\n"}, {}, []),
    "contexts": ({"pyproject.toml": PYTEST_INI}, {"coverage_contexts": True}, []),
    "warnings_are_errors": (
        {
            "pyproject.toml": PYTEST_INI + 'filterwarnings = ["error"]\n',
            "tests/conftest.py": "",
            "tests/test_calc.py": "def test_nothing_from_shop():\n    pass\n",
        },
        {},
        [],
    ),
}
if importlib.util.find_spec("xdist") is not None:
    SCENARIOS["xdist"] = ({"pyproject.toml": PYTEST_INI + 'addopts = "-n 2"\n'}, {}, [])
if importlib.util.find_spec("pytest_cov") is not None:
    SCENARIOS["pytest_cov"] = (
        {"pyproject.toml": PYTEST_INI + 'addopts = "--cov=shop --cov-fail-under=100"\n'},
        {},
        [],
    )


@pytest.fixture(scope="module")
def children(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, ChildRun]]:
    """Every scenario's project, run as one child each, all at once (real pytest processes)."""

    # folders first, in this thread: mktemp is not thread-safe
    roots = {name: tmp_path_factory.mktemp(name) / "project" for name in SCENARIOS}

    def run(name: str) -> tuple[Path, ChildRun]:
        files, options, args = SCENARIOS[name]
        root = write_project(roots[name], {**SHOP, **files})
        data_file = root.parent / "run" / "tests__test_calc.coverage"
        return root, run_child(root, "tests/test_calc.py", data_file, args=args, **options)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(SCENARIOS, pool.map(run, SCENARIOS), strict=True))


def measured(run: ChildRun) -> tuple[CoverageData, dict[str, list[int]]]:
    data = CoverageData(basename=run.result["data_file"])
    data.read()
    lines = {Path(f).as_posix().split("/project/")[1]: data.lines(f) for f in data.measured_files()}
    return data, {name: sorted(found or []) for name, found in lines.items()}


def test_import_time_lines_count_and_only_the_project_is_measured(
    children: dict[str, tuple[Path, ChildRun]],
) -> None:
    root, run = children["default"]
    assert run.returncode == 0, run.output
    assert run.result["source"] == [str((root / "shop").resolve())]
    data, lines = measured(run)
    # tests (top-level and inside the package) and conftest are never measured
    assert set(lines) == {"shop/__init__.py", "shop/calc.py", "shop/admin.py"}
    assert lines["shop/__init__.py"] == [1]  # ran at import, from a conftest, before any test
    assert lines["shop/calc.py"] == [1, 2, 5]  # both def lines at import, add's body in a test
    assert lines["shop/admin.py"] == []  # never imported: listed so it reports as 0%
    assert not data.has_arcs()


def test_branches_and_source_from_the_project_configuration(
    children: dict[str, tuple[Path, ChildRun]],
) -> None:
    root, run = children["branch_config"]
    assert run.returncode == 0, run.output
    assert run.result["config_file"] == str(root / "pyproject.toml")
    assert run.result["source"] == [str((root / "shop").resolve())]
    data, _ = measured(run)
    assert data.has_arcs()


def test_coverage_source_setting_wins_over_the_coverage_config(
    children: dict[str, tuple[Path, ChildRun]],
) -> None:
    root, run = children["option_source"]
    assert run.result["source"] == [str((root / "shop").resolve())]
    _, lines = measured(run)
    assert "other/__init__.py" not in lines
    assert "shop/calc.py" in lines


def test_a_broken_config_runs_the_tests_without_coverage(
    children: dict[str, tuple[Path, ChildRun]],
) -> None:
    root, run = children["broken"]
    assert run.returncode == 0, run.output
    assert "2 passed" in run.output
    message = run.result["message"]
    assert message.startswith("coverage is off: the coverage configuration in ")
    assert ".coveragerc is broken" in message
    assert f"devformance: {message}" in run.output
    assert "data_file" not in run.result
    assert not list(root.parent.glob("run/*.coverage"))


def test_per_test_contexts(children: dict[str, tuple[Path, ChildRun]]) -> None:
    _, run = children["contexts"]
    data, _ = measured(run)
    calc = next(f for f in data.measured_files() if f.endswith("calc.py"))
    contexts = data.contexts_by_lineno(calc)
    assert sorted(contexts[2]) == [
        "tests/test_calc.py::test_add",
        "tests/test_calc.py::test_add_again",
    ]
    assert contexts[1] == [""]  # import time belongs to no test


def test_coverage_warnings_never_fail_a_strict_project(
    children: dict[str, tuple[Path, ChildRun]],
) -> None:
    _, run = children["warnings_are_errors"]
    assert run.returncode == 0, run.output
    assert any("No data was collected" in note for note in run.result["notes"])
    assert run.result["data_file"]


@pytest.mark.skipif("pytest_cov" not in SCENARIOS, reason="pytest-cov is not installed")
def test_pytest_cov_in_addopts_is_switched_off_and_we_still_measure(
    children: dict[str, tuple[Path, ChildRun]],
) -> None:
    root, run = children["pytest_cov"]
    # with pytest-cov active, --cov-fail-under=100 would fail this 60% suite
    assert run.returncode == 0, run.output
    assert any("pytest-cov (--cov) is switched off" in note for note in run.result["notes"])
    assert not (root / ".coverage").exists()  # parallel children would fight over this file
    _, lines = measured(run)
    assert lines["shop/calc.py"] == [1, 2, 5]


@pytest.mark.skipif("xdist" not in SCENARIOS, reason="pytest-xdist is not installed")
def test_xdist_workers_in_a_child_write_their_own_files(
    children: dict[str, tuple[Path, ChildRun]],
) -> None:
    root, run = children["xdist"]
    assert run.returncode == 0, run.output
    main = Path(run.result["data_file"])
    assert sorted(p.name for p in main.parent.glob(main.name + "*")) == [
        main.name,
        f"{main.name}.gw0",
        f"{main.name}.gw1",
    ]
    result = covdata.read_test_file(main, root)  # the workers' files are read with the main one
    calc = next(f for f in result.files if f.source_file == "shop/calc.py")
    assert calc.missing == "6-8"  # add() ran in a worker: only sign()'s body is missing


@pytest.mark.quick
def test_nothing_happens_unless_asked(tmp_path: Path) -> None:
    assert start_child_coverage(ChildOptions(), tmp_path).coverage is None
    off = start_child_coverage(ChildOptions(coverage=True), tmp_path)  # no data file to write
    assert (off.coverage, off.message) == (None, "")
    off = start_child_coverage(ChildOptions(coverage=False, coverage_data="x"), tmp_path)
    assert off.message == ""


@pytest.mark.quick
def test_an_unwritable_data_file_means_no_coverage_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("a file where the run folder should be")
    options = ChildOptions(coverage=True, coverage_data=str(tmp_path / "run" / "x.coverage"))
    started = start_child_coverage(options, tmp_path)
    assert started.coverage is None
    assert started.message.startswith("coverage is off: cannot write its data file: ")


def test_a_failed_save_is_reported_not_raised(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", {"app.py": "X = 1\n"})
    run_dir = tmp_path / "run"
    options = ChildOptions(coverage=True, coverage_data=str(run_dir / "x.coverage"))
    started = start_child_coverage(options, project)
    assert started.coverage is not None, started.message
    shutil.rmtree(run_dir)
    run_dir.write_text("the run folder is gone")
    assert started.coverage.stop_and_save() == ""
    assert started.coverage.message.startswith("coverage data could not be saved to ")
    assert started.coverage.stop_and_save() == ""  # a second call changes nothing


@pytest.mark.quick
def test_pytest_cov_is_silenced_only_when_asked_for() -> None:
    asked = Namespace(cov_source=[True], no_cov=False)
    assert "switched off" in silence_pytest_cov(asked)
    assert asked.no_cov is True
    for namespace in (
        Namespace(),
        Namespace(cov_source=None),
        Namespace(cov_source=["x"], no_cov=True),
    ):
        assert silence_pytest_cov(namespace) == ""


@pytest.mark.quick
def test_a_child_takes_over_the_servers_measurement_only_when_configured_alike(
    tmp_path: Path,
) -> None:
    import coverage

    from devformance_nb.plugin.covconfig import make_coverage
    from devformance_nb.plugin.coverage import coverage_key

    root = write_project(tmp_path, {**SHOP, ".coveragerc": "[run]\nbranch = true\n"})
    config = str(root / ".coveragerc")

    def key(options: ChildOptions, contexts: bool = False) -> tuple[object, ...]:
        cov = make_coverage(coverage, None, options, config, root)  # built, never started
        return coverage_key(cov, config, contexts)

    server = ChildOptions(coverage=True, root=str(root))
    assert key(server) == key(ChildOptions(coverage=True, root=str(root), coverage_data="x"))
    assert key(server) != key(ChildOptions(coverage=True, coverage_source=("shop.calc",)))
    assert key(server) != key(server, contexts=True)
    assert coverage_key(coverage.Coverage(config_file=False), None, False) != key(server)
