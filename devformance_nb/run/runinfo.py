"""Where and on what a run happens: git commit, branch and dirtiness, host, versions."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


#: where CI services name the branch of a detached checkout: GitHub's pull request source
#: branch, then its ref name (a push or a tag), GitLab's ref name
CI_BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME")


def git_info(root: Path) -> dict[str, Any]:
    """Commit, branch and dirty flag of the git checkout at ``root`` (Nones outside git).

    A detached checkout's branch is the one its CI names (``CI_BRANCH_VARIABLES``), else
    ``HEAD``."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_branch": None, "git_dirty": None}
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    if branch == "HEAD":  # detached, as a CI checkout of a pull request is: the CI names it
        branch = next((os.environ[n] for n in CI_BRANCH_VARIABLES if os.environ.get(n)), branch)
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_branch": branch, "git_dirty": bool(status)}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def run_meta(root: Path) -> dict[str, Any]:
    """Everything recorded about the machine and checkout a run started on."""
    return {
        **git_info(root),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "pytest_version": _version("pytest"),
        "devformance_version": _version("devformance_nb"),
    }
