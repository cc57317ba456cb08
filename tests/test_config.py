from __future__ import annotations

from pathlib import Path

import pytest

from devformance_nb.core.config import DEFAULT_DB, Config, db_path, find_root, load_config
from devformance_nb.core.errors import ConfigError

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


def test_effective_workers_never_exceed_files() -> None:
    assert Config(workers=8).effective_workers(3) == 3
    assert Config(workers=2).effective_workers(10) == 2
    assert Config().effective_workers(1) == 1


def test_find_root_walks_up_to_a_marker(tmp_path: Path) -> None:
    write(tmp_path / "proj", "")
    deep = tmp_path / "proj" / "a" / "b"
    deep.mkdir(parents=True)
    assert find_root(deep) == (tmp_path / "proj").resolve()
