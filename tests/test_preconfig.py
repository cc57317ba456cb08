"""pytest's initial configuration made once in the fork server: taken over only when it fits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devformance_nb.run.preconfig import CHILD_PYTEST_ARGS, KeptConfig, exclusions


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ()),
        (["-p", "no:cacheprovider", "tests/test_a.py"], ("no:cacheprovider",)),
        (["-pno:warnings", "-p", " no:doctest "], ("no:warnings", "no:doctest")),
        (["-p", "myplugin", "-p", "no:x"], ("no:x",)),
        (["-k", "no:thing", "-q"], ()),  # not a -p argument
        (["-p"], ()),  # a dangling -p: pytest reports it later
    ],
)
def test_exclusions_are_the_no_plugin_arguments(args: list[str], expected: tuple[str, ...]) -> None:
    assert exclusions(args) == expected


@dataclass(frozen=True)
class _Params:
    args: tuple[str, ...] = ()
    plugins: Any = None
    dir: Path = Path("/")


@dataclass
class _Config:
    made_with: tuple[Any, ...]
    invocation_params: _Params = field(default_factory=_Params)


class _Maker:
    """A stand-in ``get_config`` recording its calls (the choice logic is what is tested)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, args: Any = None, plugins: Any = None, **kwargs: Any) -> _Config:
        self.calls.append((args, plugins, kwargs))
        return _Config((args, plugins, kwargs))


def _kept_in_a_child(maker: _Maker, kwargs: dict[str, Any] | None = None) -> KeptConfig:
    kept = KeptConfig(maker, CHILD_PYTEST_ARGS, kwargs or {})
    kept.pid = -1  # as seen from a forked child: made in another process
    return kept


def test_a_fitting_first_call_takes_over_the_kept_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PYTEST_DEBUG", raising=False)
    maker = _Maker()
    kept = _kept_in_a_child(maker, {"prog": "pytest.main()"})
    made = kept.config
    monkeypatch.chdir(tmp_path)
    args = [*CHILD_PYTEST_ARGS, "--color=yes", "tests/test_a.py"]
    config = kept(args, None, prog="pytest.main()")
    assert config is made
    assert config.invocation_params == _Params(tuple(args), None, tmp_path)
    assert len(maker.calls) == 1  # only the one made ahead
    # a second call (pytester in the child) gets a fresh one
    again = kept(args, None, prog="pytest.main()")
    assert again is not made and len(maker.calls) == 2


@pytest.mark.parametrize(
    "change",
    ["other exclusions", "plugins", "other keywords", "debug", "same process"],
)
def test_a_call_that_does_not_fit_makes_a_fresh_config(
    monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    monkeypatch.delenv("PYTEST_DEBUG", raising=False)
    maker = _Maker()
    kept = _kept_in_a_child(maker)
    made = kept.config
    args: list[str] = [*CHILD_PYTEST_ARGS, "t.py"]
    plugins: Any = None
    keywords: dict[str, Any] = {}
    if change == "other exclusions":
        args = [*args, "-p", "no:warnings"]
    elif change == "plugins":
        plugins = [object()]
    elif change == "other keywords":
        keywords = {"prog": "pytest"}
    elif change == "debug":
        monkeypatch.setenv("PYTEST_DEBUG", "1")
    else:
        kept.pid = os.getpid()
    config = kept(args, plugins, **keywords)
    assert config is not made and config.made_with == (args, plugins, keywords)
    assert kept.config is None  # and the kept one is gone: never handed out later


CHILD = """
import json, os, sys
from devformance_nb.run import preconfig
kept = preconfig.install()
pid = os.fork()
if pid == 0:
    import pytest
    code = pytest.main([*preconfig.CHILD_PYTEST_ARGS, "-q", sys.argv[1]])
    used = kept.config is None
    os.write(3, json.dumps({"code": int(code), "used": used}).encode())
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_a_forked_child_runs_pytest_on_the_kept_config(tmp_path: Path) -> None:
    (tmp_path / "test_two.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    (tmp_path / "test_fail.py").write_text("def test_c():\n    assert 0\n")
    for name, code, counted in (("test_two.py", 0, "2 passed"), ("test_fail.py", 1, "1 failed")):
        read, write = os.pipe()
        out = subprocess.run(
            [sys.executable, "-c", CHILD.replace("os.write(3", f"os.write({write}"), name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            pass_fds=(write,),
        )
        os.close(write)
        with os.fdopen(read) as answers:
            found = json.loads(answers.read())
        assert found == {"code": code, "used": True}, out.stderr
        assert counted in out.stdout
