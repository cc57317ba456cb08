"""What the parent tells each child: ChildOptions through DEVFORMANCE_OPTIONS, both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devformance_nb.api.facade import child_options
from devformance_nb.core.config import load_config
from devformance_nb.core.contract import ENV_OPTIONS, ChildOptions
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import TestFile
from devformance_nb.run.executor import Job


def test_options_survive_the_environment() -> None:
    options = ChildOptions(
        capture_sql=False,
        capture_params=True,
        coverage=True,
        coverage_source=("app", "lib"),
        coverage_contexts=True,
        root="/project",
        coverage_data="/project/.devformance/runs/r/x.coverage",
    )
    assert ChildOptions.from_env(options.to_env()) == options
    assert json.loads(options.to_env())["coverage_source"] == ["app", "lib"]


def test_nothing_said_means_the_defaults() -> None:
    assert ChildOptions.from_env(None) == ChildOptions.from_env("") == ChildOptions()
    assert ChildOptions.from_env("{}") == ChildOptions()
    told_nothing = ChildOptions()
    assert told_nothing.capture_sql and not told_nothing.coverage


def test_keys_of_another_version_are_ignored() -> None:
    text = json.dumps({"capture_params": True, "future_setting": [1, 2], "_config": "x"})
    assert ChildOptions.from_env(text) == ChildOptions(capture_params=True)


def test_a_value_that_is_no_json_object_is_refused() -> None:
    with pytest.raises(ValueError, match=ENV_OPTIONS):
        ChildOptions.from_env("[1, 2]")


def test_the_parent_builds_them_from_the_config_and_completes_them_per_file(
    tmp_path: Path,
) -> None:
    config = load_config(tmp_path, coverage_source=["app"], capture_params=True)
    options = child_options(config)
    assert options == ChildOptions(
        capture_sql=True, capture_params=True, coverage=True, coverage_source=("app",)
    )
    test_file = TestFile("tests/test_a.py", tmp_path / "tests" / "test_a.py")
    job = Job("run-1", test_file, tmp_path, RunDir(tmp_path / "run"), options=options)
    sent = ChildOptions.from_env(job.environment()[ENV_OPTIONS])
    assert sent == job.child_options()
    assert sent.root == str(tmp_path) and sent.coverage_data == str(job.coverage_path)
    assert sent.coverage_source == ("app",) and sent.capture_params
    without = Job("run-1", test_file, tmp_path, RunDir(tmp_path / "run"), options=ChildOptions())
    assert without.child_options().coverage_data == "", "no data file while coverage is off"
