"""Which saved paths a watch acts on, and how long saves settle (``devformance watch`` and
the notebook view's Watch toggle)."""

from __future__ import annotations

from pathlib import Path

from devformance_nb.core.config import STATE_DIR

#: folders whose changes never affect a test (ours, version control, caches)
IGNORED_PARTS = frozenset(
    {STATE_DIR, ".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv"}
)
#: how long saves settle before a round starts (an editor writes a file in several steps)
DEBOUNCE_MS = 50
#: how long a quiet watcher waits before it says it listens (and how often it wakes after)
READY_MS = 200


def relevant(root: Path, path: str) -> bool:
    """Whether a change of ``path`` can matter: not in our state or a cache, not an editor's
    swap or backup file."""
    try:
        parts = Path(path).resolve().relative_to(root).parts
    except ValueError:
        return False
    if not parts or any(p in IGNORED_PARTS for p in parts):
        return False
    name = parts[-1]
    return not (name.endswith(("~", ".swp", ".swx", ".tmp")) or name.startswith(".#"))


def saved_paths(root: Path, paths: list[str]) -> list[str]:
    """The saved ``paths`` as sorted root-relative POSIX paths."""
    return sorted({Path(p).resolve().relative_to(root).as_posix() for p in paths})
