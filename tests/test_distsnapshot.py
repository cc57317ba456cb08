"""The fork server's snapshot of installed distributions: same answers, never stale."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from devformance_nb.run import distsnapshot
from devformance_nb.run.distsnapshot import KeptDistribution, Snapshot


def _described(dists: Iterable[Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted(
        (
            d.metadata["Name"] or "",
            d.version,
            tuple(sorted(f"{p.group}:{p.name}" for p in d.entry_points)),
        )
        for d in dists
    )


def _make_distribution(folder: Path, name: str, plugin: str = "") -> None:
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if plugin:
        (info / "entry_points.txt").write_text(f"[pytest11]\n{plugin} = {plugin}\n")
    (info / "RECORD").write_text(f"{plugin or name}.py,,\n")


def test_the_snapshot_finds_what_a_fresh_search_finds() -> None:
    snapshot = Snapshot(importlib.metadata.distributions)
    snapshot.warm()
    fresh = list(importlib.metadata.distributions())
    assert _described(snapshot()) == _described(fresh)
    # the standard library's distributions are kept; another finder's (the importlib_metadata
    # backport installs one: importing distributed does) are handed out as found
    for found, kept in zip(fresh, snapshot.distributions, strict=True):
        if type(found) is importlib.metadata.PathDistribution:
            assert isinstance(kept, KeptDistribution)
        else:
            assert type(kept) is type(found)


def test_another_finders_distributions_are_handed_out_as_found() -> None:
    # in a fresh interpreter: importing the importlib_metadata backport (as distributed does)
    # puts its own finder first; the snapshot then keeps nothing but answers the same
    script = """
import importlib.metadata, json
import importlib_metadata  # noqa: F401 - installs its finder
from devformance_nb.run.distsnapshot import KeptDistribution, Snapshot
snapshot = Snapshot(importlib.metadata.distributions)
snapshot.warm()
fresh = [(type(d).__module__, d.metadata["Name"]) for d in importlib.metadata.distributions()]
kept = [(type(d).__module__, d.metadata["Name"]) for d in snapshot()]
held = sum(isinstance(d, KeptDistribution) for d in snapshot())
print(json.dumps({"same": fresh == kept, "kept": held}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(out.stdout)
    assert found["same"]
    assert found["kept"] == 0  # every one came from the backport's finder


def test_a_kept_distribution_reads_each_file_once_and_hands_out_copies(tmp_path: Path) -> None:
    _make_distribution(tmp_path, "kept_demo", plugin="kept_demo_plugin")
    dist = KeptDistribution(tmp_path / "kept_demo-1.0.dist-info")
    assert [p.name for p in dist.entry_points] == ["kept_demo_plugin"]
    assert dist.metadata["Name"] == "kept_demo"
    (tmp_path / "kept_demo-1.0.dist-info" / "entry_points.txt").unlink()
    (tmp_path / "kept_demo-1.0.dist-info" / "METADATA").unlink()
    # read once: the files gone since change nothing for this object
    assert [p.name for p in dist.entry_points] == ["kept_demo_plugin"]
    assert dist.metadata["Name"] == "kept_demo"
    assert dist.read_text("entry_points.txt") is not None


def test_files_are_a_copy_each_time(tmp_path: Path) -> None:
    _make_distribution(tmp_path, "copied_demo", plugin="copied_demo_plugin")
    dist = KeptDistribution(tmp_path / "copied_demo-1.0.dist-info")
    first = dist.files
    assert first is not None and [str(f) for f in first] == ["copied_demo_plugin.py"]
    first.clear()
    assert [str(f) for f in dist.files or []] == ["copied_demo_plugin.py"]


def test_a_distribution_installed_later_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = Snapshot(importlib.metadata.distributions)
    names = {d.metadata["Name"] for d in snapshot()}
    assert "late_demo" not in names
    monkeypatch.syspath_prepend(str(tmp_path))  # a folder of distributions joins the path
    _make_distribution(tmp_path, "late_demo")
    assert "late_demo" in {d.metadata["Name"] for d in snapshot()}
    _make_distribution(tmp_path, "later_demo")  # the folder changes again
    assert "later_demo" in {d.metadata["Name"] for d in snapshot()}


def test_a_folder_without_distributions_on_the_path_keeps_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a conftest puts the project root on sys.path: no distribution there, nothing to re-read
    snapshot = Snapshot(importlib.metadata.distributions)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "conftest.py").write_text("")
    found = list(snapshot())
    assert found and all(a is b for a, b in zip(found, snapshot.distributions, strict=True))


def test_a_narrowed_search_is_never_answered_from_the_snapshot(tmp_path: Path) -> None:
    _make_distribution(tmp_path, "narrow_demo")
    snapshot = Snapshot(importlib.metadata.distributions)
    found = list(snapshot(path=[str(tmp_path)]))
    assert [d.metadata["Name"] for d in found] == ["narrow_demo"]


def test_installed_snapshot_gives_pytest_the_same_plugins() -> None:
    # in a fresh interpreter (install() changes importlib.metadata for the whole process):
    # pytest's plugin discovery and the terminal header see what they see without it
    script = """
import json, importlib.metadata, sys
from devformance_nb.run import distsnapshot
GROUP = "pytest11"
def plugins():
    return sorted(
        (d.metadata["Name"], d.version, sorted(p.value for p in d.entry_points.select(group=GROUP)))
        for d in importlib.metadata.distributions()
        if d.entry_points.select(group=GROUP)
    )
before = plugins()
snapshot = distsnapshot.install()
print(json.dumps({"installed": snapshot is not None, "same": plugins() == before,
                  "patched": importlib.metadata.distributions is snapshot, "count": len(before)}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(out.stdout)
    assert found == {"installed": True, "same": True, "patched": True, "count": found["count"]}
    assert found["count"] >= 1  # the test extra's plugins: pytest-xdist, pytest-cov, ...


def test_install_twice_keeps_the_first() -> None:
    script = (
        "from devformance_nb.run import distsnapshot; "
        "print(distsnapshot.install() is not None, distsnapshot.install() is None)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["True", "True"]
    assert distsnapshot.current_key() == distsnapshot.current_key()
