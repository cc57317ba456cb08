"""Configuration: ``[tool.devformance]`` in the project's pyproject.toml; arguments override."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast

from devformance_nb.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:  # only for annotations, which stay strings at runtime
    from typing_extensions import Unpack

_F = TypeVar("_F", bound=Callable[..., Any])

#: files whose presence marks a project root (searched upward from the working directory)
ROOT_MARKERS = ("pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini", ".git")
STATE_DIR = ".devformance"
DEFAULT_DB = f"{STATE_DIR}/devformance.duckdb"
EXECUTORS = ("spawn", "forkserver", "dask")
#: how the project's code reaches Dask workers: decided by a probe, or one of the two ways
DASK_SHIPPING = ("auto", "shared", "archive")
#: where settings given to a function come from, as messages name it
ARGUMENTS = "the arguments"


@dataclass
class Config:
    """Every setting of a run; see README "Configuration" for what each one does."""

    workers: int | None = None
    timeout: float | None = None
    db: str | None = None
    #: "forkserver", "spawn" or "dask"; None picks the fork server where the OS allows it
    #: (or Dask, when a scheduler is given)
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
    #: most queries a test may send, by glob over node ids (first match in table order)
    query_budgets: dict[str, int] = field(default_factory=dict)
    preload: list[str] = field(default_factory=list)
    lock_timeout: float = 10.0
    #: the Dask scheduler's address (``tcp://host:8786``); None: a local cluster
    scheduler: str | None = None
    #: times a file whose Dask worker died mid-file runs again elsewhere (0: it is crashed)
    dask_retries: int = 0
    #: how the project reaches Dask workers: "auto" (a shared filesystem if the workers see
    #: the root, else an archive), "shared" or "archive"
    dask_ship: str = "auto"
    #: fork each file's child from a warm server on its worker, as the local default does
    #: (False: a cold ``python -m pytest`` per file)
    dask_warm: bool = True

    def effective_workers(self, n_files: int, slots: int | None = None) -> int:
        """Files to run at once: the setting, or ``slots`` (a cluster's threads), or the CPUs
        available; never more than files."""
        wanted = self.workers or slots or available_cpus()
        return max(1, min(wanted, n_files))

    def executor_name(self, fork_available: bool) -> str:
        """The executor to use: the setting; else Dask if a scheduler is given, else the fork
        server where the OS has fork, else spawn."""
        if self.executor:
            return self.executor
        if self.scheduler:
            return "dask"
        return "forkserver" if fork_available else "spawn"

    def to_dict(self) -> dict[str, Any]:
        """Settings as a JSON-ready dict (stored with each run)."""
        return asdict(self)


class Overrides(TypedDict, total=False):
    """Settings given as arguments, each on top of ``[tool.devformance]`` (None: not given).

    The one list of what a caller may override: ``run_tests``, ``start_run``, ``prepare``,
    the notebook's ``run_tests`` and ``LiveRunView`` take exactly these keywords (a test
    checks it) and hand them on as one ``Overrides``.
    """

    workers: int | None
    db: str | os.PathLike[str] | None
    timeout: float | None
    executor: str | None
    preload: list[str] | tuple[str, ...] | None
    pytest_args: list[str] | tuple[str, ...] | None
    python: str | None
    slow_query_ms: float | None
    n_plus_one_min: int | None
    allow_n_plus_one: list[str] | tuple[str, ...] | None
    query_budgets: dict[str, int] | None
    capture_sql: bool | None
    capture_params: bool | None
    coverage: bool | None
    coverage_source: list[str] | tuple[str, ...] | None
    coverage_contexts: bool | None
    lock_timeout: float | None
    scheduler: str | None
    dask_retries: int | None
    dask_ship: str | None
    dask_warm: bool | None


#: the keywords of ``Overrides``, in the order the docstrings list them
OVERRIDABLE: tuple[str, ...] = tuple(Overrides.__annotations__)

SETTINGS_DOC = """Settings (each None by default: from ``[tool.devformance]`` in pyproject.toml,
else the default shown; README "Configuration"):

- ``workers``: test files run at once (default: the CPUs available).
- ``db``: the DuckDB store (default ``.devformance/devformance.duckdb`` in the root;
  an argument is relative to the working directory).
- ``timeout``: seconds a test file may take before it is killed (default: none).
- ``executor``: ``"forkserver"``, ``"spawn"`` or ``"dask"`` (default: the fork server where
  the OS has fork; Dask when ``scheduler`` is given).
- ``preload``: modules the fork server imports once for every child.
- ``pytest_args``: arguments added to every pytest child, e.g. ``["-x"]``.
- ``python``: interpreter of the children (default: this one).
- ``slow_query_ms``: a statement at least this slow is a slow query (default 100).
- ``n_plus_one_min``: repeats of one SELECT from one call stack that make an N+1 (default 2).
- ``allow_n_plus_one``: accepted N+1 findings, by call site, ``sql:`` pattern or stack hash.
- ``query_budgets``: most statements a test may send, by node-id glob, e.g.
  ``{"tests/api/*": 12}``; the first glob that matches applies, and a test's own
  ``@pytest.mark.devformance(max_queries=N)`` wins over them (default: no budgets).
- ``capture_sql``: record every SQL statement (default True).
- ``capture_params``: record parameter values too; they may hold personal data (default False).
- ``coverage``: measure line coverage, one data file per test file (default True).
- ``coverage_source``: what coverage measures (default: your coverage config, else your packages).
- ``coverage_contexts``: record which test ran each line (default False).
- ``lock_timeout``: seconds to wait for a store another process holds (default 10).
- ``scheduler``: the Dask scheduler to run on, e.g. ``"tcp://10.0.0.5:8786"`` (default: a
  local cluster of ``workers`` processes, when ``executor="dask"``).
- ``dask_retries``: runs again elsewhere of a file whose Dask worker died mid-file (default 0:
  the file is crashed).
- ``dask_ship``: how the project reaches Dask workers: ``"auto"`` (a shared filesystem when
  the workers see the root, else a zip archive), ``"shared"`` or ``"archive"``.
- ``dask_warm``: fork each child from a warm server on its Dask worker, as locally
  (default True; False starts a cold ``python -m pytest`` per file)."""


def overrides_from(values: Mapping[str, Any]) -> Overrides:
    """The settings among ``values`` that were given (not None), e.g. a function's ``locals()``.

    Lets a function with the typed keywords of ``Overrides`` hand them on in one line.
    """
    return cast(Overrides, {key: values[key] for key in OVERRIDABLE if values.get(key) is not None})


def with_settings_doc(func: _F) -> _F:
    """Append ``SETTINGS_DOC`` to ``func``'s docstring (what ``?`` shows in Jupyter)."""
    func.__doc__ = f"{inspect.cleandoc(func.__doc__ or '')}\n\n{SETTINGS_DOC}"
    return func


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
            kinds = " or ".join(_KIND_NAMES.get(t, t.__name__) for t in expected)
            example = f"; e.g. {_budgets_example(source)}" if key == "query_budgets" else ""
            raise ConfigError(
                f"setting {key!r} in {source} must be {kinds}, not {type(value).__name__}{example}"
            )
        if key == "query_budgets" and isinstance(value, dict):  # a dict: checked just above
            _check_budgets(value, source)


def _check_budgets(budgets: dict[Any, Any], source: str) -> None:
    for pattern, budget in budgets.items():
        if not isinstance(pattern, str):
            raise ConfigError(
                f"query_budgets in {source}: {pattern!r} must be a glob over test node ids "
                f"(a string); e.g. {_budgets_example(source)}"
            )
        # bool is an int to Python, never a count of statements to a user
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
            raise ConfigError(
                f"query_budgets[{pattern!r}] in {source} must be a whole number of queries, "
                f"0 or more, not {budget!r}; e.g. {_budgets_example(source)}"
            )


def _budgets_example(source: str) -> str:
    # the syntax of where the user wrote it: a notebook argument is a dict, the file is TOML
    if source == ARGUMENTS:
        return 'query_budgets={"tests/api/*": 12, "tests/test_reports.py::*": 40}'
    return 'query_budgets = {"tests/api/*" = 12, "tests/test_reports.py::*" = 40}'


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
    "query_budgets": (dict,),
    "preload": (list, tuple),
    "lock_timeout": _NUMBER,
    "scheduler": (str,),
    "dask_retries": (int,),
    "dask_ship": (str,),
    "dask_warm": (bool,),
}


#: how a message names a type a user writes in TOML
_KIND_NAMES: dict[type, str] = {dict: "a table (dict)"}


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


def load_config(root: Path, **overrides: Unpack[Overrides]) -> Config:
    """Config from ``root``'s pyproject.toml, with non-None ``overrides`` on top.

    The overrides are checked at runtime too: callers without a type checker (a
    notebook cell) get a ConfigError naming the setting, not a TypeError later.
    """
    from_file = read_pyproject(root)
    _check_types(from_file, f"[tool.devformance] of {root / 'pyproject.toml'}")
    given = {k: v for k, v in overrides.items() if v is not None}
    _check_types(given, ARGUMENTS)
    merged = {**from_file, **given}
    for key in ("pytest_args", "coverage_source", "allow_n_plus_one", "preload"):
        if merged.get(key) is not None:
            merged[key] = [str(item) for item in merged[key]]
    if merged.get("query_budgets") is not None:  # a copy: the caller's dict stays theirs
        merged["query_budgets"] = dict(merged["query_budgets"])
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
    if config.dask_retries < 0:
        raise ConfigError(f"dask_retries must be 0 or more, got {config.dask_retries}")
    if config.dask_ship not in DASK_SHIPPING:
        raise ConfigError(
            f"dask_ship must be one of {', '.join(DASK_SHIPPING)}; got {config.dask_ship!r}"
        )


def db_path(root: Path, config: Config) -> Path:
    """Where the store lives: ``config.db`` (relative to root) or the embedded default."""
    return (root / (config.db or DEFAULT_DB)).resolve()
