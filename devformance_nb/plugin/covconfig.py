"""Which coverage configuration a child applies, and the ``coverage.Coverage`` built from it
(plugin layer: stdlib only; coverage.py is handed in by the caller).

Which configuration: the file coverage itself would read for a project whose pytest rootdir
is ``rootpath`` (``$COVERAGE_RCFILE``, ``.coveragerc``, ``.coveragerc.toml``, then
``setup.cfg``, ``tox.ini`` and ``pyproject.toml`` when they hold coverage settings). What to
measure: ``coverage_source`` from ``[tool.devformance]``, else the configuration's own
``source``/``source_pkgs``/``include``, else the project's top-level packages (never its
tests, never site-packages).
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from devformance_nb.core.contract import ChildOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found]

#: files that are coverage's own: read whenever they exist (coverage's order)
OWN_CONFIG_FILES = (".coveragerc", ".coveragerc.toml")
#: shared files: used only when they hold coverage settings (coverage's order)
SHARED_CONFIG_FILES = ("setup.cfg", "tox.ini", "pyproject.toml")
#: folder names never taken as the project's source by default
NOT_SOURCE = frozenset(
    {"tests", "test", "testing", "docs", "doc", "build", "dist", "site-packages", "node_modules"}
)
#: file names left out when devformance picks the source itself
TEST_FILE_PATTERNS = ("test_*.py", "*_test.py", "conftest.py", "setup.py", "noxfile.py")


class CoverageConfigProblem(Exception):
    """The project's coverage configuration cannot be read."""


def find_config_file(folders: Iterable[Path]) -> str | None:
    """The coverage configuration file coverage would use, looking in ``folders`` in order.

    Raises CoverageConfigProblem when a candidate file cannot be parsed (coverage
    itself would stop there too).
    """
    env = os.environ.get("COVERAGE_RCFILE")
    if env:
        return os.path.abspath(env)
    for folder in folders:
        for name in (*OWN_CONFIG_FILES, *SHARED_CONFIG_FILES):
            path = folder / name
            if path.is_file() and (name in OWN_CONFIG_FILES or has_coverage_settings(path)):
                return str(path)
    return None


def has_coverage_settings(path: Path) -> bool:
    """Whether a shared file (setup.cfg, tox.ini, pyproject.toml) holds coverage settings."""
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            tool = data.get("tool")
            return isinstance(tool, dict) and bool(tool.get("coverage"))
        parser = configparser.RawConfigParser()
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError, ValueError, configparser.Error) as exc:
        raise CoverageConfigProblem(f"cannot read {path}: {exc}") from None
    return any(section.startswith("coverage:") for section in parser.sections())


def default_source(rootpath: Path) -> list[str]:
    """The project's top-level packages under ``rootpath`` (and ``src/``), as absolute folders.

    Falls back to ``rootpath`` itself when it holds no package (a flat project);
    :func:`omit_tests` keeps the tests out either way.
    """
    found: list[str] = []
    for folder in (rootpath, rootpath / "src"):
        found += [str(p) for p in _packages_in(folder)]
    return found or [str(rootpath.resolve())]


def omit_tests(source_dirs: Iterable[str]) -> list[str]:
    """Omit patterns that keep test folders and test files out of ``source_dirs``."""
    patterns = list(TEST_FILE_PATTERNS)  # no slash: coverage matches the file name anywhere
    for folder in source_dirs:
        for name in ("tests", "test", "testing"):
            # both spellings: coverage before 7.2 read '*' as crossing folders, '**' not at all
            patterns += [f"{folder}/{name}/*", f"{folder}/**/{name}/*"]
    return patterns


def resolve_source(entries: Iterable[str], base: Path) -> list[str]:
    """``entries`` with folders that exist under ``base`` made absolute; package names kept."""
    resolved = []
    for entry in entries:
        path = Path(entry) if os.path.isabs(entry) else base / entry
        resolved.append(str(path.resolve()) if path.is_dir() else entry)
    return resolved


def _packages_in(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for child in sorted(folder.iterdir()):
        name = child.name
        if (
            name.isidentifier()
            and name not in NOT_SOURCE
            and not name.startswith(("test_", "."))
            and (child / "__init__.py").is_file()
        ):
            yield child.resolve()


def config_folders(rootpath: Path, inipath: Path | None, root: str) -> list[Path]:
    folders: list[Path] = []
    for folder in (rootpath, inipath.parent if inipath else None, Path(root) if root else None):
        if folder is not None and folder.resolve() not in folders:
            folders.append(folder.resolve())
    return folders


def _config_argument(config_file: str | None) -> str | bool:
    """What to pass as ``config_file``: True when coverage's own search would find the same file.

    Passing True then keeps coverage's exact reading rules (setup.cfg sections
    need the ``coverage:`` prefix only when the file is not named explicitly).
    """
    if config_file is None:
        return False
    if os.environ.get("COVERAGE_RCFILE") or Path(config_file).parent == Path.cwd().resolve():
        return True
    return config_file


def make_coverage(
    coverage: Any,
    data_file: str | None,
    options: ChildOptions,
    config_file: str | None,
    rootpath: Path,
) -> Any:
    cov = coverage.Coverage(
        data_file=data_file,
        data_suffix=False,  # one known file name even when the config says parallel = true
        config_file=_config_argument(config_file),
        check_preimported=True,  # warn (as a note) when project modules imported too early
    )
    base = Path(config_file).parent if config_file else rootpath
    given = options.coverage_source
    if given:
        cov.set_option("run:source", resolve_source([str(s) for s in given], rootpath))
    elif cov.get_option("run:source"):
        cov.set_option("run:source", resolve_source(cov.get_option("run:source"), base))
    elif not _configured_elsewhere(cov):
        source = default_source(rootpath)
        cov.set_option("run:source", source)
        omit = list(cov.get_option("run:omit") or [])
        cov.set_option("run:omit", omit + omit_tests(source))
    return cov


def _configured_elsewhere(cov: Any) -> bool:
    """Whether the configuration says what to measure without ``source``."""
    for option in ("run:source_pkgs", "run:include", "run:source_dirs"):
        try:
            if cov.get_option(option):
                return True
        except Exception:  # run:source_dirs is unknown before coverage 7.10
            continue
    return False


def contexts_wanted(cov: Any, options: ChildOptions, notes: list[str]) -> bool:
    if not options.coverage_contexts:
        return False
    if cov.get_option("run:dynamic_context"):
        notes.append("per-test contexts come from the project's own dynamic_context setting")
        return False
    if cov.get_option("run:core") is None:
        # the sys.monitoring core cannot switch contexts; the C tracer can
        cov.set_option("run:core", "ctrace")
    return True
