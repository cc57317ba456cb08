"""Configuration: ``[tool.devformance]`` in the project's pyproject.toml; arguments override."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from devformance_nb.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: files whose presence marks a project root (searched upward from the working directory)
ROOT_MARKERS = ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini", ".git")
STATE_DIR = ".devformance"
DEFAULT_DB = f"{STATE_DIR}/devformance.duckdb"
EXECUTORS = ("spawn", "forkserver")


@dataclass
class Config:
    """Every setting of a run; see README "Configuration" for what each one does."""

    workers: int | None = None
    timeout: float | None = None
    db: str | None = None
    #: "forkserver" or "spawn"; None picks the fork server where the OS allows it
    executor: str | None = None
    pytest_args: list[str] = field(default_factory=list)
    python: str | None = None
    slow_query_ms: float = 100.0
    n_plus_one_min: int = 2
    capture_sql: bool = True
    capture_params: bool = False
    coverage: bool = True
    coverage_source: list[str] | None = None
    coverage_contexts: bool = False
    allow_n_plus_one: list[str] = field(default_factory=list)
    preload: list[str] = field(default_factory=list)
    lock_timeout: float = 10.0

    def effective_workers(self, n_files: int) -> int:
        """Worker threads to use: the setting, or the CPUs available, never more than files."""
        wanted = self.workers or available_cpus()
        return max(1, min(wanted, n_files))

    def to_dict(self) -> dict[str, Any]:
        """Settings as a JSON-ready dict (stored with each run)."""
        return asdict(self)


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def find_root(start: Path | None = None) -> Path:
    """The project root: nearest folder at or above ``start`` holding a project marker."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return here


def _check_types(values: dict[str, Any], source: str) -> None:
    known = {f.name: f for f in fields(Config)}
    for key, value in values.items():
        if key not in known:
            names = ", ".join(sorted(known))
            raise ConfigError(f"unknown setting {key!r} in {source}; known settings: {names}")
        if value is None:
            continue
        expected = _EXPECTED[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            kinds = " or ".join(t.__name__ for t in expected)
            raise ConfigError(
                f"setting {key!r} in {source} must be {kinds}, not {type(value).__name__}"
            )


_NUMBER = (int, float)
_EXPECTED: dict[str, tuple[type, ...]] = {
    "workers": (int,),
    "timeout": _NUMBER,
    "db": (str, os.PathLike),
    "executor": (str,),
    "pytest_args": (list, tuple),
    "python": (str,),
    "slow_query_ms": _NUMBER,
    "n_plus_one_min": (int,),
    "capture_sql": (bool,),
    "capture_params": (bool,),
    "coverage": (bool,),
    "coverage_source": (list, tuple),
    "coverage_contexts": (bool,),
    "allow_n_plus_one": (list, tuple),
    "preload": (list, tuple),
    "lock_timeout": _NUMBER,
}


def read_pyproject(root: Path) -> dict[str, Any]:
    """The ``[tool.devformance]`` table of ``root/pyproject.toml`` (empty if absent)."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix the file and retry") from None
    table = data.get("tool", {}).get("devformance", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.devformance] in {path} must be a table")
    return {key.replace("-", "_"): value for key, value in table.items()}


def load_config(root: Path, **overrides: Any) -> Config:
    """Config from ``root``'s pyproject.toml, with non-None ``overrides`` on top."""
    from_file = read_pyproject(root)
    _check_types(from_file, f"[tool.devformance] of {root / 'pyproject.toml'}")
    given = {k: v for k, v in overrides.items() if v is not None}
    _check_types(given, "the arguments")
    merged = {**from_file, **given}
    for key in ("pytest_args", "coverage_source", "allow_n_plus_one", "preload"):
        if merged.get(key) is not None:
            merged[key] = [str(item) for item in merged[key]]
    if "db" in merged:
        merged["db"] = os.fspath(merged["db"])
    config = Config(**merged)
    _validate(config)
    return config


def _validate(config: Config) -> None:
    if config.workers is not None and config.workers < 1:
        raise ConfigError(f"workers must be at least 1, got {config.workers}")
    if config.timeout is not None and config.timeout <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {config.timeout}")
    if config.n_plus_one_min < 2:
        raise ConfigError(f"n_plus_one_min must be at least 2, got {config.n_plus_one_min}")
    if config.executor is not None and config.executor not in EXECUTORS:
        raise ConfigError(
            f"executor must be one of {', '.join(EXECUTORS)}; got {config.executor!r}"
        )


def db_path(root: Path, config: Config) -> Path:
    """Where the store lives: ``config.db`` (relative to root) or the embedded default."""
    return (root / (config.db or DEFAULT_DB)).resolve()
