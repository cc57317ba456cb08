"""The worker side of a Dask task: paths moved to the worker's copy, archives unpacked once,
cancels that reach a child or keep it from starting (the task itself runs in test_daskexec)."""

from __future__ import annotations

import os
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from devformance_nb.run import daskwork
from devformance_nb.run.executor import spawn

pytestmark = pytest.mark.quick


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/src/proj/tests/test_a.py", "/w/copy/proj/tests/test_a.py"),
        ("/src/proj", "/w/copy/proj"),
        ('{"root": "/src/proj", "x": 1}', '{"root": "/w/copy/proj", "x": 1}'),
        ("/src/project2/x.py", "/src/project2/x.py"),  # another folder that starts alike
        ("-q", "-q"),
    ],
)
def test_the_launcher_s_root_is_moved_to_the_worker_s_copy(value: str, expected: str) -> None:
    assert daskwork._moved(value, "/src/proj", "/w/copy/proj") == expected


def test_an_archive_is_unpacked_once_per_digest(tmp_path: Path) -> None:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("tests/test_a.py", "def test_a():\n    pass\n")
    data = buffer.getvalue()
    root = daskwork.unpack(data, "abc123", "proj", os.fspath(tmp_path))
    assert root == os.fspath(tmp_path / "devformance-projects" / "abc123" / "proj")
    marker = Path(root) / "tests" / "kept.txt"
    marker.write_text("x")
    assert daskwork.unpack(data, "abc123", "proj", os.fspath(tmp_path)) == root
    assert marker.exists(), "the second task found it unpacked"


def test_a_probe_reads_the_launcher_s_token(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.write_text("token-1")
    assert daskwork.probe(os.fspath(probe), "token-1")
    assert not daskwork.probe(os.fspath(probe), "token-2"), "a folder of the same name elsewhere"
    assert not daskwork.probe(os.fspath(tmp_path / "absent"), "token-1")


def test_cancel_kills_a_running_child_and_keeps_a_later_one_from_starting() -> None:
    child = spawn([sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), ".")
    daskwork._RUNNING["attempt-1"] = child
    try:
        assert daskwork.cancel("attempt-1") is True
        assert child.wait(30) == -9
    finally:
        daskwork._RUNNING.pop("attempt-1", None)
        child.close()
    assert daskwork.cancel("attempt-2") is False
    assert "attempt-2" in daskwork._CANCELLED
