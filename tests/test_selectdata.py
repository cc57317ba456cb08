"""A source's digest: its content's hash and its blocks, reused from an earlier run when the
content did not change (a run's end parses every source it read otherwise)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.api.facade import run_tests
from devformance_nb.run.selectdata import digest_of
from devformance_nb.store.database import Store
from devformance_nb.store.selection import last_digests

SOURCE = "def one():\n    return 1\n\n\ndef two():\n    return 2\n"


@pytest.mark.quick
def test_an_unchanged_source_takes_its_blocks_from_the_known_digest(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SOURCE, encoding="utf-8")
    fresh = digest_of(tmp_path, "app.py")
    assert fresh is not None and fresh.blocks is not None
    assert sorted(b.name for b in fresh.blocks) == ["<module>", "one", "two"]
    # blocks that parsing would never give: seen back only if they were reused
    stored = json.dumps([["planted", 1, 9, "d"]])
    known = {"app.py": (fresh.digest, stored)}
    reused = digest_of(tmp_path, "app.py", known)
    assert reused is not None and [b.name for b in reused.blocks or []] == ["planted"]
    assert reused.digest == fresh.digest == hashlib.sha1(SOURCE.encode()).hexdigest()
    # the content changed: parsed again
    (tmp_path / "app.py").write_text(SOURCE + "\n\ndef three():\n    return 3\n")
    changed = digest_of(tmp_path, "app.py", known)
    assert changed is not None and "three" in [b.name for b in changed.blocks or []]
    assert digest_of(tmp_path, "gone.py", known) is None


def test_a_run_reuses_the_last_runs_digests_and_stores_the_same(
    make_project: MakeProject, tmp_path: Path
) -> None:
    root = make_project(
        {"app.py": SOURCE, "tests/test_app.py": "from app import one\n\ndef test_one():\n"
         "    assert one() == 1\n"}
    )  # fmt: skip
    db = tmp_path / "s.duckdb"
    assert last_digests(Store(db), root) == {}  # no store yet
    run_tests(root=root, db=db, executor="spawn")
    first = last_digests(Store(db), root)
    assert {"app.py", "tests/test_app.py"} <= set(first)
    run_tests(root=root, db=db, executor="spawn")
    assert last_digests(Store(db), root) == first
