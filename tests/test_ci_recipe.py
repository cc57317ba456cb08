"""README's GitHub Actions recipe, its commands run in order on a copy of the demo's history.

The workflow is read from README.md itself, so the recipe a user copies is the one tested.
Its steps run as Actions would run them: each ``run`` in bash with the job's environment,
``if:`` conditions evaluated for the event, a failing step ending the job unless it may
``continue-on-error``, ``always()`` steps run anyway. The ``uses:`` steps (checkout, Python,
the cache) are Actions' own; the install step is skipped (this environment is the installed
one). First two pushes to ``main`` add to the history, then a pull request that brings back
the per-book author lookups is gated against the newest five ``main`` runs (an odd number: each
median is one run's figure).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from plugins import devformance_slowfloor as slowfloor

from devformance_nb.cli.demo_history import FLAG, STEPS, Edit

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]

README = Path(__file__).resolve().parent.parent / "README.md"
GIT = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid"]
LIST_BOOKS = "tests/services/test_catalog.py::test_list_books_shows_each_books_author"
ONE_GENRE = "tests/services/test_catalog.py::test_one_book_of_a_genre_loads_one_author"


def workflow() -> dict[str, Any]:
    """The workflow of README's "GitHub Actions" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("#### GitHub Actions") :]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, "README's GitHub Actions section has no yaml block"
    loaded = yaml.safe_load(match.group(1))
    assert isinstance(loaded, dict)
    return loaded


@dataclass
class Job:
    """One simulated job: each step's exit status by name, in order."""

    statuses: dict[str, int] = field(default_factory=dict)
    failed: bool = False
    summary: str = ""


def condition(text: str, event: str, job: Job, outcomes: dict[str, str]) -> bool:
    """The ``if:`` conditions the recipe uses (any other one fails the test: teach it here)."""
    if text == "always()":
        return True
    event_check = re.fullmatch(r"github\.event_name == '(\w+)'", text)
    if event_check:
        return not job.failed and event == event_check.group(1)
    outcome = re.fullmatch(r"steps\.(\w+)\.outcome == '(\w+)'", text)
    if outcome:
        return not job.failed and outcomes.get(outcome.group(1)) == outcome.group(2)
    raise AssertionError(f"the recipe has an if: this test cannot evaluate: {text!r}")


def run_job(project: Path, event: str, extra_env: dict[str, str]) -> Job:
    """Run the recipe's job in ``project`` as the ``event`` would."""
    spec = workflow()["jobs"]["test"]
    summary = project.parent / f"summary-{event}-{len(list(project.parent.iterdir()))}.md"
    env = {
        **os.environ,
        **{k: str(v) for k, v in spec.get("env", {}).items()},
        **extra_env,
        "PATH": os.pathsep.join([os.fspath(Path(sys.executable).parent), os.environ["PATH"]]),
        "GITHUB_STEP_SUMMARY": os.fspath(summary),
        "GITHUB_EVENT_NAME": event,
    }
    job, outcomes = Job(), {}
    for step in spec["steps"]:
        if "run" not in step or step.get("name") == "Install":
            continue
        if "if" in step and not condition(step["if"], event, job, outcomes):
            continue
        if job.failed and "if" not in step:
            continue
        proc = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        job.statuses[step["name"]] = proc.returncode
        if "id" in step:
            outcomes[step["id"]] = "success" if proc.returncode == 0 else "failure"
        if proc.returncode != 0 and not step.get("continue-on-error"):
            job.failed = True
        assert "Traceback" not in proc.stderr, proc.stderr
    job.summary = summary.read_text(encoding="utf-8") if summary.exists() else ""
    return job


def git(project: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=project, check=True, capture_output=True)


def test_the_recipe_records_main_and_gates_a_pull_request(
    facts: Facts, db: Path, tmp_path: Path
) -> None:
    steps = [s.get("name") for s in workflow()["jobs"]["test"]["steps"] if "run" in s]
    assert steps == ["Install", "Run the suite", "Gate against main", "Fail on failing tests"]
    project = tmp_path / "work" / "bookshop"
    shutil.copytree(facts.project, project, ignore=shutil.ignore_patterns(".devformance"))
    store = project / ".devformance" / "history.duckdb"
    store.parent.mkdir()
    shutil.copy(db, store)  # the restored cache: the history's four runs
    # the CI's settings, committed on main: the history's threshold (see tests/history.py)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8").replace(
        "slow_query_ms = 100", f"slow_query_ms = {slowfloor.THRESHOLD_MS:g}"
    )
    pyproject.write_text(text, encoding="utf-8")
    git(project, "checkout", "-q", "main")
    git(project, "commit", "-q", "-am", "CI settings")
    (project / FLAG).unlink(missing_ok=True)
    from history import slow_floor_env  # a plugin of this module too: imported once it is

    ci = slow_floor_env()

    for _ in range(2):  # two pushes to main: recorded, never gated; five main runs in all
        push = run_job(project, "push", {**ci, "GITHUB_REF_NAME": "main"})
        assert push.statuses == {"Run the suite": 0}, push
        assert not push.failed and push.summary == ""

    # a pull request: list_books without its joinedload again, on a detached checkout
    git(project, "checkout", "-q", "-b", "slim-listing")
    fix = next(e for step in STEPS if step.name == "fix" for e in step.edits if e.old)
    Edit(fix.path, old=fix.new, new=fix.old or "").apply(project)  # the fix step undone
    git(project, "commit", "-q", "-am", "A slimmer listing")
    git(project, "checkout", "-q", "--detach")
    (project / FLAG).write_text("down\n", encoding="utf-8")  # the flaky test fails again
    pull = run_job(project, "pull_request", {**ci, "GITHUB_HEAD_REF": "slim-listing"})

    # the suite failed (the flaky test), the gate failed (the N+1 is back): the job fails at
    # the gate, so "Fail on failing tests" never runs
    assert pull.statuses == {"Run the suite": 1, "Gate against main": 1}, pull
    assert pull.failed
    summary = pull.summary
    assert summary.startswith("## devformance: 3 regressions\n"), summary
    assert "against a baseline of 5 runs" in summary  # main's three, and the pushes
    assert table_rows(summary, 0) == [
        ["new N+1", facts.caller(facts.fixed_n_plus_one)],
        ["statements up", LIST_BOOKS],  # +8: the author lookups, one per book
        ["statements up", ONE_GENRE],  # +1 of 4: over the recipe's 20%
    ]
    assert "+8 x SELECT … FROM authors WHERE authors.id = ?" in summary
    assert table_rows(summary, 1) == [["flaky test", facts.flaky_test]]  # reported, not failing
    details = summary[summary.index("<details>") :]
    assert {row[0] for row in table_rows(details, 0)} == {LIST_BOOKS, ONE_GENRE}


def table_rows(markdown: str, index: int) -> list[list[str]]:
    """The first two cells of each body row of the ``index``-th table of ``markdown``."""
    tables = re.findall(r"((?:^\|.*\|\n)+)", markdown, re.M)
    rows = [line.strip("|").split(" | ") for line in tables[index].splitlines()[2:]]
    return [[cell.strip() for cell in row[:2]] for row in rows]
