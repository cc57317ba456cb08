"""Bulk ingest of a run directory: query events go from the events files to DuckDB in bulk.

1. Facts (``run.queryfacts``): one pass of DuckDB's JSON reader over the children's events
   files groups the statements; Python fingerprints one text per literal key.
2. The other events are replayed (query and stack lines skipped undecoded) through the run
   state and the store writer, each file's query facts folded into the state as the file
   finishes, so every row the store writer makes is the one a live run makes.
3. The query rows and stacks go into the store: DuckDB reads the events files again and joins
   each text to its fingerprint (``insert_queries``, which the live store writer uses
   for each finished file too).

Memory holds the groups and the distinct texts, never a list of statements.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb

from devformance_nb.core import events as ev
from devformance_nb.core.errors import DevformanceError
from devformance_nb.core.rundir import RunDir
from devformance_nb.run.dispatch import Dispatcher
from devformance_nb.run.launcher import run_coverage_event
from devformance_nb.run.queryfacts import QueryFacts, read_facts
from devformance_nb.run.replay import replay
from devformance_nb.run.state import Observer, RunState
from devformance_nb.store.database import Store
from devformance_nb.store.queryload import insert_queries
from devformance_nb.store.recarry import carry_again
from devformance_nb.store.writer import StoreWriter


def load_queries(
    con: duckdb.DuckDBPyConnection, run_id: str, paths: Sequence[Path], facts: QueryFacts
) -> None:
    """Replace the run's query rows with those of ``paths``; add fingerprints not stored yet.

    Runs in the caller's transaction; DuckDB reads the events files itself.
    """
    con.execute("DELETE FROM queries WHERE run_id = ?", [run_id])
    insert_queries(con, run_id, paths, facts)


def ingest_run(
    run_dir: str | os.PathLike[str], store: Store, observers: Sequence[Observer] = ()
) -> RunState:
    """Load a run directory into ``store`` in bulk (replacing that run if it is there).

    ``observers`` see every event but the ``query`` ones, which never become objects: the
    state they are given already counts each file's statements when the file finishes.
    """
    folder = RunDir.at(run_dir)
    events = replay(folder, queries=False)
    first = next(events)
    state = RunState(run_id=first.run_id)
    state.apply(first)
    paths = [p for p in (folder.events_path(key) for key in state.files) if p.exists()]
    facts = read_facts(
        paths,
        state.slow_query_ms,
        state.detector.min_count,
        list(state.config.get("allow_n_plus_one", [])),
    )
    logs = {key: os.fspath(folder.log_path(key)) for key in state.files}
    # one transaction for the whole run: a failed ingest leaves the store as it was, and
    # ingesting again replaces the run (its rows are deleted first), never doubles it
    writer = StoreWriter(store, logs, defer=True)
    writer.also_write(lambda con: load_queries(con, state.run_id, paths, facts))
    carry_again(writer, state)  # a --changed run: its carried files' rows, from their runs
    dispatcher = Dispatcher(state, [writer, *observers])
    dispatcher.notify(first)  # folded above already: its settings chose how to read the facts
    for event in events:
        if isinstance(event, ev.FileFinished):
            facts.apply(state.file(event.file))
        elif isinstance(event, ev.RunDone):  # files that never finished still had statements
            for fs in state.files.values():
                facts.apply(fs)
            if (total := run_coverage_event(state)) is not None:
                dispatcher.deliver(total)
        dispatcher.deliver(event)
    if dispatcher.errors:  # an observer failed: load nothing rather than part of the run
        dispatcher.observers.remove(writer)
    dispatcher.close()  # the writer writes the whole run here, in one transaction
    if dispatcher.errors:
        raise DevformanceError(
            f"ingest of {folder.path} stopped: an observer failed:\n{dispatcher.errors[0]}"
        )
    if writer.error is not None:
        raise writer.error
    return state
