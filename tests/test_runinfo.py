"""Where a run happened: git facts of a real repository, a CI's detached checkout included."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devformance_nb.run.runinfo import CI_BRANCH_VARIABLES, git_info

GIT = [
    "git",
    "-c",
    "user.name=t",
    "-c",
    "user.email=t@example.invalid",
    "-c",
    "commit.gpgsign=false",
]


def repository(tmp_path: Path) -> Path:
    """A repository on branch ``main`` with one commit."""
    root = tmp_path / "repo"
    root.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "one"]):
        subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True)
    return root


@pytest.fixture(autouse=True)
def no_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CI_BRANCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_branch_checkout_names_its_branch_whatever_the_ci_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repository(tmp_path)
    monkeypatch.setenv("GITHUB_HEAD_REF", "feature")
    info = git_info(root)
    assert info["git_branch"] == "main" and info["git_dirty"] is False
    assert len(info["git_commit"]) == 40


def test_a_detached_checkout_takes_the_branch_its_ci_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repository(tmp_path)
    subprocess.run([*GIT, "checkout", "-q", "--detach"], cwd=root, check=True)
    assert git_info(root)["git_branch"] == "HEAD"  # no CI: git's own answer
    monkeypatch.setenv("GITHUB_REF_NAME", "42/merge")
    assert git_info(root)["git_branch"] == "42/merge"
    monkeypatch.setenv("GITHUB_HEAD_REF", "feature")  # a pull request's source branch first
    assert git_info(root)["git_branch"] == "feature"


def test_outside_git_there_are_no_git_facts(tmp_path: Path) -> None:
    assert git_info(tmp_path) == {"git_commit": None, "git_branch": None, "git_dirty": None}
