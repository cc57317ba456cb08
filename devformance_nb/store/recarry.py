"""A ``--changed`` run loaded again from its directory (``devformance ingest``).

The run's journal names the files it carried (``file_carried``), the run each result comes
from and why the file did not run; its ``run_started`` meta holds how the changes were found
(``selection``) and why each other file ran (``selected_because``). Loading the directory
writes the files that ran; this copies each carried file's rows from its source run, as the
live run's ``SelectionRecorder`` did, when that run is in the store, and restores the
reasons. A file whose source run is not there has no rows: ``missing_sources`` names those
runs, and the run's totals count only the files stored.
"""

from __future__ import annotations

import duckdb

from devformance_nb.logic.selection import Decision
from devformance_nb.run.state import RunState
from devformance_nb.store.carry import carry, retotal
from devformance_nb.store.writer import StoreWriter


def carry_again(writer: StoreWriter, state: RunState) -> None:
    """Have ``writer``'s final transaction carry the state's carried files into the run.

    Call before the writer closes; the state must hold the run's ``file_carried`` events by
    then (the write reads it at close).
    """

    def write(con: duckdb.DuckDBPyConnection) -> None:
        run_id = state.run_id
        carried = [fs for fs in state.files.values() if fs.carried_from is not None]
        for fs in carried:
            # its earlier copies (what it read): kept when the run is loaded again, so the
            # copy below must not double them
            con.execute(
                "DELETE FROM selection_reads WHERE run_id = ? AND test_file = ?", [run_id, fs.key]
            )
            if _has(con, fs.carried_from or "", fs.key):
                carry(con, run_id, Decision(fs.key, False, fs.reason, fs.carried_from))
        basis = state.meta.get("selection")
        if basis:
            con.execute("UPDATE runs SET selection = ? WHERE run_id = ?", [basis, run_id])
        reasons = state.meta.get("selected_because") or {}
        if reasons:
            con.executemany(
                "UPDATE test_files SET selected_because = ? WHERE run_id = ? AND file = ?",
                [(why, run_id, key) for key, why in reasons.items()],
            )
        if carried:  # the run's counts: over the files stored, not the replayed state's
            retotal(con, run_id)

    writer.also_write(write)


def _has(con: duckdb.DuckDBPyConnection, run_id: str, file: str) -> bool:
    found = con.execute(
        "SELECT 1 FROM test_files WHERE run_id = ? AND file = ? LIMIT 1", [run_id, file]
    ).fetchone()
    return found is not None


def missing_sources(con: duckdb.DuckDBPyConnection, state: RunState) -> dict[str, list[str]]:
    """The runs a carried file of ``state`` comes from that the store lacks, each with its
    files (empty: every carried file is stored)."""
    out: dict[str, list[str]] = {}
    for fs in state.files.values():
        source = fs.carried_from
        if source is not None and not _has(con, source, fs.key):
            out.setdefault(source, []).append(fs.key)
    return out
