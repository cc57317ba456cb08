"""Query rows go from an events file to the store through DuckDB, each with its fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devformance_nb.logic.fingerprint import fingerprint, fingerprint_hash
from devformance_nb.run.queryfacts import read_facts
from devformance_nb.store.database import Store
from devformance_nb.store.queryload import (
    bulk_settings,
    insert_files,
    insert_queries,
    insert_stacks,
)

pytestmark = pytest.mark.quick


def events_file(folder: Path, texts: list[str]) -> Path:
    path = folder / "events.jsonl"
    lines = [
        json.dumps(
            {
                "v": 1,
                "kind": "query",
                "file": "tests/test_a.py",
                "nodeid": "tests/test_a.py::t",
                "phase": "call",
                "qseq": i,
                "start": 1.5,
                "duration": 0.002,
                "sql": text,
                "stack_hash": "s",
                "caller": "app/a.py:1 f",
            }
        )
        for i, text in enumerate(texts)
    ]
    # other kinds and a newer format's statement are not rows
    lines.append(json.dumps({"v": 1, "kind": "test", "file": "tests/test_a.py"}))
    lines.append(json.dumps({"v": 99, "kind": "query", "file": "tests/test_a.py", "sql": "X"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_each_statement_becomes_a_row_with_its_fingerprint(tmp_path: Path) -> None:
    texts = ["SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 2", "DELETE FROM t"]
    path = events_file(tmp_path, texts)
    facts = read_facts([path], slow_query_ms=100.0, min_count=2, threads=1)
    with Store(tmp_path / "s.duckdb").writing() as con:
        insert_queries(con, "run1", [path], facts)
        rows = con.execute(
            "SELECT run_id, qseq, sql, fingerprint_hash FROM queries ORDER BY qseq"
        ).fetchall()
        stored = dict(
            con.execute("SELECT fingerprint_hash, fingerprint FROM fingerprints").fetchall()
        )
    assert rows == [
        ("run1", i, text, fingerprint_hash(fingerprint(text))) for i, text in enumerate(texts)
    ]
    assert stored == {fingerprint_hash(fingerprint(t)): fingerprint(t) for t in texts}


def test_bulk_settings_are_put_back_after_the_insert(tmp_path: Path) -> None:
    setting = "SELECT current_setting('preserve_insertion_order')"
    with Store(tmp_path / "s.duckdb").writing() as con:
        con.execute("SET preserve_insertion_order = true")
        with bulk_settings(con):
            during = con.execute(setting).fetchone()
        after = con.execute(setting).fetchone()
    assert during == (False,) and after == (True,)


def test_stacks_become_rows_of_their_frames_once(tmp_path: Path) -> None:
    stack = {"v": 1, "kind": "stack", "stack_hash": "h1"}
    frames = [["tests/test_a.py", 7, "test_a"], ["app/db.py", 40, "Repo.run.<locals>.go"]]
    path = tmp_path / "events.jsonl"
    path.write_text(
        json.dumps({**stack, "frames": frames}) + "\n" + json.dumps({**stack, "frames": frames}),
        encoding="utf-8",
    )
    with Store(tmp_path / "s.duckdb").writing() as con:
        insert_stacks(con, "run1", [path])
        insert_stacks(con, "run2", [path])  # known: kept as first stored
        rows = con.execute("SELECT stack_hash, frames, first_run FROM stacks").fetchall()
    assert rows == [
        ("h1", ["tests/test_a.py:7 test_a", "app/db.py:40 Repo.run.<locals>.go"], "run1")
    ]


def test_several_files_load_in_one_pass_as_they_would_one_by_one(tmp_path: Path) -> None:
    """The writer loads every file a write takes at once (DuckDB's cost is per pass): the
    same rows, fingerprints and stacks as file by file, a text shared by two files once."""
    shared = "SELECT * FROM t WHERE id = 7"
    texts = [[shared, "DELETE FROM t"], [shared, "SELECT name FROM u WHERE id = 3"]]
    paths = []
    for i, found in enumerate(texts):
        folder = tmp_path / f"f{i}"
        folder.mkdir()
        paths.append(events_file(folder, found))
    facts = [read_facts([p], slow_query_ms=100.0, min_count=2, threads=1) for p in paths]
    pairs = list(zip(paths, facts, strict=True))
    tables = ("queries", "fingerprints", "stacks")
    found: list[dict[str, list[tuple[object, ...]]]] = []
    for name, load in (
        ("each", lambda con: [insert_queries(con, "r", [p], f) for p, f in pairs]),
        ("together", lambda con: insert_files(con, "r", pairs)),
    ):
        with Store(tmp_path / f"{name}.duckdb").writing() as con:
            load(con)
            found.append(
                {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
            )
    assert found[0] == found[1]
    assert len(found[1]["queries"]) == 4 and len(found[1]["fingerprints"]) == 3
