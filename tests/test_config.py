from __future__ import annotations

import inspect
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeProject

from devformance_nb.api import facade
from devformance_nb.core.config import (
    _EXPECTED,
    DEFAULT_DB,
    OVERRIDABLE,
    SETTINGS_DOC,
    Config,
    Overrides,
    db_path,
    find_root,
    load_config,
)
from devformance_nb.core.errors import ConfigError
from devformance_nb.ui import notebook
from devformance_nb.ui.liveview import LiveRunView

pytestmark = pytest.mark.quick


def write(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(text, encoding="utf-8")
    return root


def test_defaults_without_a_table(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[project]\nname='x'\n"))
    assert config == Config()
    assert config.slow_query_ms == 100 and config.n_plus_one_min == 2
    assert db_path(tmp_path, config) == (tmp_path / DEFAULT_DB).resolve()


def test_table_then_arguments_override(tmp_path: Path) -> None:
    root = write(tmp_path, "[tool.devformance]\nworkers = 3\ntimeout = 30\nslow-query-ms = 50\n")
    config = load_config(root, workers=1, timeout=None)
    assert (config.workers, config.timeout, config.slow_query_ms) == (1, 30, 50)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tool.devformance]\nworkerz = 2\n", "unknown setting 'workerz'"),
        ("[tool.devformance]\nworkers = 'two'\n", "must be int"),
        ("[tool.devformance]\ncapture_sql = 1\n", "must be bool"),
        ("[tool.devformance]\nworkers = 0\n", "at least 1"),
        ("[tool.devformance]\nexecutor = 'magic'\n", "executor must be one of"),
        ("[tool.devformance\n", "not valid TOML"),
    ],
)
def test_bad_settings_say_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_query_budgets_keep_their_table_order(tmp_path: Path) -> None:
    text = """[tool.devformance]
query_budgets = {"tests/api/test_users.py::*" = 5, "tests/api/*" = 12, "tests/x.py::t" = 0}
"""
    config = load_config(write(tmp_path, text))
    assert list(config.query_budgets.items()) == [
        ("tests/api/test_users.py::*", 5),
        ("tests/api/*", 12),
        ("tests/x.py::t", 0),
    ]
    assert Config().query_budgets == {}, "no budgets unless asked"


def test_query_budgets_as_their_own_toml_section(tmp_path: Path) -> None:
    text = '[tool.devformance.query_budgets]\n"tests/test_reports.py::*" = 40\n'
    config = load_config(write(tmp_path, text))
    assert config.query_budgets == {"tests/test_reports.py::*": 40}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('query_budgets = {"tests/*" = -1}', r"query_budgets\['tests/\*'\] .* 0 or more, not -1"),
        ('query_budgets = {"tests/*" = "12"}', r"whole number of queries, 0 or more, not '12'"),
        ('query_budgets = {"tests/*" = 1.5}', r"not 1\.5"),
        ('query_budgets = {"tests/*" = true}', r"not True"),
        ('query_budgets = ["tests/*"]', r"'query_budgets' .* must be a table \(dict\), not list"),
        ("query_budgets = 12", r"must be a table \(dict\), not int"),
    ],
)
def test_bad_query_budgets_say_what_to_write(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(write(tmp_path, f"[tool.devformance]\n{line}\n"))
    assert "pyproject.toml" in str(raised.value), "names the file to fix"
    assert 'e.g. query_budgets = {"tests/api/*" = 12' in str(raised.value), "shows a good line"


def test_bad_query_budgets_as_arguments_show_a_dict(tmp_path: Path) -> None:
    root = write(tmp_path, "")
    with pytest.raises(ConfigError, match=r"in the arguments .* 0 or more, not -2") as raised:
        load_config(root, query_budgets={"tests/*": -2})
    assert 'e.g. query_budgets={"tests/api/*": 12' in str(raised.value)
    with pytest.raises(ConfigError, match=r"7 must be a glob over test node ids"):
        load_config(root, query_budgets={7: 1})  # type: ignore[dict-item]


def test_query_budgets_given_are_copied(tmp_path: Path) -> None:
    given = {"tests/*": 3}
    config = load_config(write(tmp_path, ""), query_budgets=given)
    given["tests/*"] = 99
    assert config.query_budgets == {"tests/*": 3}


def test_effective_workers_never_exceed_files() -> None:
    assert Config(workers=8).effective_workers(3) == 3
    assert Config(workers=2).effective_workers(10) == 2
    assert Config().effective_workers(1) == 1


def test_a_cluster_s_slots_size_the_run_unless_workers_are_given() -> None:
    assert Config().effective_workers(100, slots=12) == 12
    assert Config().effective_workers(5, slots=12) == 5
    assert Config(workers=3).effective_workers(100, slots=12) == 3


@pytest.mark.parametrize(
    ("settings", "fork", "expected"),
    [
        ({}, True, "forkserver"),
        ({}, False, "spawn"),
        ({"scheduler": "tcp://h:8786"}, True, "dask"),
        ({"scheduler": "tcp://h:8786", "executor": "spawn"}, True, "spawn"),
        ({"executor": "dask"}, True, "dask"),
    ],
)
def test_which_executor_runs(settings: dict[str, Any], fork: bool, expected: str) -> None:
    assert Config(**settings).executor_name(fork) == expected


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("dask_retries = -1", "dask_retries must be 0 or more"),
        ('dask_ship = "nfs"', "dask_ship must be one of auto, shared, archive"),
        ('executor = "ray"', "executor must be one of spawn, forkserver, dask"),
        ("scheduler = 8786", "setting 'scheduler'"),
    ],
)
def test_dask_settings_are_checked(tmp_path: Path, table: str, message: str) -> None:
    write(tmp_path, f"[tool.devformance]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


def test_find_root_walks_up_to_a_marker(tmp_path: Path) -> None:
    write(tmp_path / "proj", "")
    deep = tmp_path / "proj" / "a" / "b"
    deep.mkdir(parents=True)
    assert find_root(deep) == (tmp_path / "proj").resolve()


#: the typed surfaces that take every overridable setting as a keyword
SURFACES = {
    "api.run_tests": facade.run_tests,
    "api.start_run": facade.start_run,
    "api.prepare": facade.prepare,
    "notebook.run_tests": notebook.run_tests,
    "LiveRunView": LiveRunView.__init__,
}


def test_every_setting_is_overridable_and_checked() -> None:
    names = [f.name for f in fields(Config)]
    assert sorted(OVERRIDABLE) == sorted(names)
    assert sorted(_EXPECTED) == sorted(names), "each setting has its runtime type check"


@pytest.mark.parametrize("surface", SURFACES)
def test_every_surface_takes_each_setting_as_a_typed_keyword(surface: str) -> None:
    func = SURFACES[surface]
    params = inspect.signature(func).parameters
    declared = {name: t.__forward_arg__ for name, t in Overrides.__annotations__.items()}
    for name in OVERRIDABLE:
        assert name in params, f"{surface} lacks the setting {name!r}"
        param = params[name]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY, (surface, name)
        assert param.default is None, f"{surface}: {name} must default to None (not given)"
        assert param.annotation == declared[name], (surface, name, param.annotation)
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    doc = inspect.getdoc(func) or ""
    assert SETTINGS_DOC in doc
    assert all(f"``{name}``" in doc for name in OVERRIDABLE), surface


def test_given_settings_reach_the_config(make_project: MakeProject, in_dir: Any) -> None:
    root = make_project({"tests/test_a.py": "def test_a():\n    pass\n"})
    in_dir(root.parent)
    given: dict[str, Any] = {
        "workers": 3,
        "db": "elsewhere.duckdb",
        "timeout": 7.5,
        "executor": "spawn",
        "preload": ("json",),
        "pytest_args": ["-q"],
        "python": sys.executable,
        "slow_query_ms": 5,
        "n_plus_one_min": 4,
        "allow_n_plus_one": ["app.py:1"],
        "query_budgets": {"tests/*": 3},
        "capture_sql": False,
        "capture_params": True,
        "coverage": False,
        "coverage_source": ["app"],
        "coverage_contexts": True,
        "lock_timeout": 2,
        # the executor is spawn: a scheduler is kept in the settings, not used
        "scheduler": "tcp://127.0.0.1:8786",
        "dask_retries": 1,
        "dask_ship": "archive",
        "dask_warm": False,
    }
    assert sorted(given) == sorted(OVERRIDABLE)
    config = facade.prepare(root=root, store=False, **given).config
    expected = {**given, "preload": ["json"], "db": str(root.parent / "elsewhere.duckdb")}
    assert config.to_dict() == expected
    untouched = facade.prepare(root=root, store=False, executor="spawn", workers=None).config
    assert untouched == Config(executor="spawn"), "None means: not given"
