"""Change-based selection in the store: the last run's records in, this run's records out.

``plan`` reads the last recorded run of a project root (what each test file executed and
opened, each file's digest, each test file's status) and decides with
``logic.selection.decide`` which files run. ``SelectionRecorder`` is the observer that,
when a run ends, records what this run's files read and the digests of every file they
depend on, and carries each skipped file's last result into the run: its ``test_files``
and ``tests`` rows copied with ``carried_from`` set to the run that really ran it, so the
run's history stays complete and says which results are old.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from devformance_nb.core import events as ev
from devformance_nb.core.errors import ConfigError, StoreError
from devformance_nb.core.rundir import RunDir
from devformance_nb.logic.discovery import TestFile
from devformance_nb.logic.selection import Baseline, Decision, FileChange, decide
from devformance_nb.run.selectdata import (
    Digest,
    FileReads,
    KnownDigests,
    changes_from_digests,
    changes_from_git,
    digest_of,
    environment,
    global_files,
    recorded_reads,
)
from devformance_nb.run.state import RunState
from devformance_nb.store.carry import carry, retotal
from devformance_nb.store.database import Store, registered
from devformance_nb.store.writer import StoreWriter, insert_frame


@dataclass
class Selection:
    """Which test files run and why; ``decisions`` in the order of the files given."""

    decisions: list[Decision]
    #: how the changes were found, e.g. ``changed since run R`` (stored in runs.selection)
    basis: str
    changes: dict[str, FileChange] = field(default_factory=dict)

    @property
    def selected(self) -> list[str]:
        """The files to run."""
        return [d.file for d in self.decisions if d.run]

    @property
    def carried(self) -> list[Decision]:
        """The files not run, each with the run its result comes from."""
        return [d for d in self.decisions if not d.run]


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def last_run(con: duckdb.DuckDBPyConnection, root: Path) -> str | None:
    """The newest finished run of ``root`` that recorded what its files read."""
    rows = _rows(
        con,
        "SELECT run_id FROM runs WHERE root = ? AND status NOT IN ('running', 'pending')"
        " AND run_id IN (SELECT DISTINCT run_id FROM selection_digests)"
        " ORDER BY started DESC, run_id DESC LIMIT 1",
        [os.fspath(root)],
    )
    return rows[0]["run_id"] if rows else None


def last_digests(store: Store | None, root: Path) -> dict[str, tuple[str, str | None]]:
    """The digests the last recorded run of ``root`` stored (empty: none, or the store could
    not be read): a run's recorder reuses a source's blocks when its content is unchanged."""
    if store is None or not store.path.exists():
        return {}
    try:
        with store.reading() as con:
            run_id = last_run(con, root)
            if run_id is None:
                return {}
            rows = con.execute(
                "SELECT path, digest, blocks FROM selection_digests WHERE run_id = ?", [run_id]
            ).fetchall()
    except StoreError:  # busy or unreadable: every source is parsed, as on a first run
        return {}
    return {path: (digest, blocks) for path, digest, blocks in rows}


def baselines(
    con: duckdb.DuckDBPyConnection, run_id: str
) -> tuple[dict[str, Baseline], dict[str, tuple[str, str | None]]]:
    """Each test file's baseline in run ``run_id``, and the digests that run stored."""
    out: dict[str, Baseline] = {}
    for row in _rows(
        con,
        "SELECT file, status, coalesce(carried_from, run_id) AS ran FROM test_files"
        " WHERE run_id = ?",
        [run_id],
    ):
        out[row["file"]] = Baseline(run_id=row["ran"], status=row["status"])
    recorded: set[str] = set()
    for row in _rows(
        con, "SELECT test_file, path, kind, blocks FROM selection_reads WHERE run_id = ?", [run_id]
    ):
        base = out.get(row["test_file"])
        if base is None:
            continue
        recorded.add(row["test_file"])
        if row["kind"] == "opened":
            base.opened.add(row["path"])
        else:
            blocks = row["blocks"]
            base.executed[row["path"]] = list(blocks) if blocks is not None else None
    for key, base in out.items():
        if key not in recorded and base.status in ("passed", "empty"):
            base.status = "unrecorded (no record of what it read)"
    for row in _rows(
        con,
        # flaky: a test of the file both passed and failed on one commit of this root
        "SELECT DISTINCT t.file FROM tests t JOIN runs r USING (run_id)"
        " WHERE r.root = (SELECT root FROM runs WHERE run_id = ?) AND r.git_commit IS NOT NULL"
        " AND t.carried_from IS NULL AND t.outcome IN ('passed', 'failed')"
        " GROUP BY t.file, t.nodeid, r.git_commit HAVING count(DISTINCT t.outcome) > 1",
        [run_id],
    ):
        if row["file"] in out:
            out[row["file"]].flaky = True
    digests = {
        row["path"]: (row["digest"], row["blocks"])
        for row in _rows(
            con, "SELECT path, digest, blocks FROM selection_digests WHERE run_id = ?", [run_id]
        )
    }
    return out, digests


def plan(
    store: Store, root: Path, files: Sequence[str], since: str | None, python: str | None
) -> Selection:
    """Which of ``files`` (test file keys) to run, given what changed.

    ``since``: a git revision to compare the working tree with; None: the digests the
    last recorded run stored. Without any recorded run every file runs (as new).
    Raises ValueError when ``since`` is given and git cannot answer.
    """
    base_id = None
    if store.path.exists():
        try:
            with store.reading() as con:
                base_id = last_run(con, root)
                if base_id is not None:
                    found, digests = baselines(con, base_id)
        except StoreError:  # unreadable or busy: every file runs, as on a new project
            base_id = None
    if base_id is None:
        decisions = [Decision(f, True, "new: no recorded run of this project") for f in files]
        return Selection(decisions, "changed: no recorded run yet, every file runs")
    env = environment(python)
    if since is not None:
        changes = changes_from_git(root, since)
        for path, value in env.items():  # git does not see the interpreter or packages
            if digests.get(path, (value, None))[0] != value:
                changes[path] = FileChange(path)
        basis = f"changed since git revision {since}"
    else:
        changes = changes_from_digests(root, digests, global_files(root, files), env)
        basis = f"changed since run {base_id}"
    return Selection(decide(files, found, changes), basis, changes)


class SelectionRecorder:
    """Observer: at the end of a run, records what its files read and carries the rest.

    Goes after the store writer in the observer list: it hands its rows to the writer's
    final transaction (``also_write``), after the run's own rows.
    """

    def __init__(
        self,
        writer: StoreWriter,
        root: Path,
        run_dir: RunDir,
        python: str | None,
        selection: Selection | None = None,
        known: KnownDigests | None = None,
    ):
        self.writer = writer
        self.root = root
        self.run_dir = run_dir
        self.python = python
        self.selection = selection
        #: the last recorded run's digests (its blocks are reused for unchanged sources)
        self.known = known
        #: each source's digest now, shared by the run's files
        self._digests: dict[str, Digest | None] = {}
        #: what each finished file read, gathered as it finishes: at the run's end, with the
        #: children done, it would add to the run's wall time (a real suite: 1.5 s)
        self._reads: dict[str, FileReads] = {}

    def on_event(self, event: ev.Event, state: RunState) -> None:
        if isinstance(event, ev.FileFinished):
            fs = state.file(event.file)
            self._reads[fs.key] = self._read(fs.key)
        elif isinstance(event, ev.RunDone):
            self._record(state)

    def _read(self, key: str) -> FileReads:
        coverage = self.run_dir.coverage_path(key)
        return recorded_reads(
            self.root,
            os.fspath(coverage) if coverage.exists() else None,
            os.fspath(self.run_dir.reads_path(key)),
            self._digests,
            self.known,
        )

    def tick(self, state: RunState) -> None:
        pass

    def close(self, state: RunState) -> None:
        pass

    def _record(self, state: RunState) -> None:
        cache = self._digests
        reads: list[tuple[str, str, str, list[str] | None]] = []
        for fs in state.files.values():
            if fs.started is None:
                continue
            found = self._reads.pop(fs.key, None) or self._read(fs.key)
            if not found.complete:
                continue
            reads += [(fs.key, p, "executed", b) for p, b in found.executed.items()]
            reads += [(fs.key, p, "opened", None) for p in sorted(found.opened)]
        keys = [fs.key for fs in state.files.values()]
        carried = self.selection.carried if self.selection else []
        reasons = {d.file: d.reason for d in self.selection.decisions} if self.selection else {}
        basis = self.selection.basis if self.selection else None
        run_id, root, known = state.run_id, self.root, self.known
        env = environment(self.python)

        def write(con: duckdb.DuckDBPyConnection) -> None:
            for table in ("selection_reads", "selection_digests"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            # set-based inserts: executemany goes row by row in DuckDB (about 1 ms a row:
            # djangorestframework's 9,000 reads took 0.9 s at the end of every run)
            insert_frame(
                con,
                "selection_reads",
                [
                    {"run_id": run_id, "test_file": t, "path": p, "kind": k, "blocks": b}
                    for t, p, k, b in reads
                ],
            )
            for d in carried:
                carry(con, run_id, d)
            paths = {
                row[0]
                for row in con.execute(
                    "SELECT DISTINCT path FROM selection_reads WHERE run_id = ?", [run_id]
                ).fetchall()
            }
            paths.update(keys, (d.file for d in carried), global_files(root, keys))
            rows: list[dict[str, Any]] = [
                {"run_id": run_id, "path": path, "digest": value, "blocks": None}
                for path, value in env.items()
            ]
            for path in sorted(paths):
                digest = cache[path] if path in cache else digest_of(root, path, known)
                if digest is not None:
                    rows.append(
                        {
                            "run_id": run_id,
                            "path": path,
                            "digest": digest.digest,
                            "blocks": digest.blocks_json(),
                        }
                    )
            insert_frame(con, "selection_digests", rows)
            ran = [{"file": key, "why": why} for key, why in reasons.items() if key in keys]
            if ran:  # one statement, not one a file
                import pandas as pd

                with registered(con, "_devformance_why", pd.DataFrame(ran)):
                    con.execute(
                        "UPDATE test_files SET selected_because = w.why FROM _devformance_why w "
                        "WHERE test_files.run_id = ? AND test_files.file = w.file",
                        [run_id],
                    )
            if basis is not None:
                con.execute("UPDATE runs SET selection = ? WHERE run_id = ?", [basis, run_id])
            if carried:
                retotal(con, run_id)

        self.writer.also_write(write)


#: test_files count columns -> the pytest categories the run state counts
_COUNTS = {
    "passed": "passed",
    "failed": "failed",
    "errors": "error",
    "skipped": "skipped",
    "xfailed": "xfailed",
    "xpassed": "xpassed",
}


def carried_events(store: Store | None, selection: Selection | None) -> list[ev.FileCarried]:
    """One ``file_carried`` event per file ``selection`` does not run, with the status,
    counts and duration of the run it carries its result from (what the live views show).

    A file whose source run is not in the store (or an unreadable store) still gets its
    event, with the status the selection decided from and no counts.
    """
    if selection is None or not selection.carried:
        return []
    found: dict[tuple[str, str], dict[str, Any]] = {}
    if store is not None and store.path.exists():
        try:
            with store.reading() as con:
                for d in selection.carried:
                    rows = _rows(
                        con,
                        f"SELECT status, tests, duration, {', '.join(_COUNTS)} FROM test_files"
                        " WHERE run_id = ? AND file = ?",
                        [d.carried_from, d.file],
                    )
                    if rows:
                        found[(d.file, d.carried_from or "")] = rows[0]
        except StoreError:
            pass  # the events still name every carried file
    out = []
    for d in selection.carried:
        row = found.get((d.file, d.carried_from or ""), {})
        counts = {cat: int(row[col]) for col, cat in _COUNTS.items() if row.get(col)}
        out.append(
            ev.FileCarried(
                file=d.file,
                carried_from=d.carried_from or "",
                status=str(row.get("status") or "passed"),
                reason=d.reason,
                tests=int(row.get("tests") or 0),
                counts=counts,
                duration=row.get("duration"),
            )
        )
    return out


def narrow(
    store: Store | None,
    root: Path,
    files: list[TestFile],
    since: str | None,
    python: str | None,
) -> tuple[list[TestFile], Selection]:
    """Only the ``files`` a change since the last run (or git revision ``since``) affects.

    Raises ConfigError without a store (the last run's records are the baseline) or when
    git cannot answer about ``since``.
    """
    if store is None:
        raise ConfigError("selecting changed files needs the store (store=False was given)")
    try:
        selection = plan(store, root, [f.key for f in files], since, python)
    except ValueError as exc:
        raise ConfigError(f"cannot tell what changed since {since!r}: {exc}") from None
    keep = set(selection.selected)
    return [f for f in files if f.key in keep], selection
