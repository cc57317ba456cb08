"""Replay a run directory as the event stream the launcher saw (for ``devformance ingest``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from devformance_nb.core import events as ev
from devformance_nb.core.errors import PathNotFoundError
from devformance_nb.core.eventlog import read_events
from devformance_nb.core.rundir import RunDir
from devformance_nb.run.reader import LineSplitter
from devformance_nb.run.runcoverage import read_file


def _log_lines(path: Path, run_id: str, key: str) -> Iterator[ev.Output]:
    splitter = LineSplitter()
    number = 0
    if not path.exists():
        return
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            for text in splitter.feed(chunk):
                number += 1
                yield ev.Output(run_id=run_id, file=key, line=number, text=text)
    for text in splitter.finish():
        number += 1
        yield ev.Output(run_id=run_id, file=key, line=number, text=text)


def _file_events(
    run_dir: RunDir, started: ev.RunStarted, key: str, queries: bool
) -> Iterator[ev.Event]:
    path = run_dir.events_path(key)
    # samples come from the journal, which holds every one the loop saw: a remote child's,
    # streamed with its events, would otherwise count twice
    skipped = ("resources",) if queries else ("query", "stack", "resources")
    if path.exists():
        for item in read_events(path, skipped):
            if isinstance(item, ev.Event):
                yield item
                if isinstance(item, ev.CoverageWritten) and item.data_file:
                    yield _read_coverage(item, started)
    yield from _log_lines(run_dir.log_path(key), started.run_id, key)


def _read_coverage(written: ev.CoverageWritten, started: ev.RunStarted) -> ev.CoverageRead:
    """The data file's coverage, as the file's reader thread would have read it live."""
    contexts = bool(started.config.get("coverage_contexts"))
    try:
        return read_file(written, Path(started.root), contexts)
    except Exception:  # unreadable data: the file has no coverage, the rest still loads
        return ev.CoverageRead(run_id=written.run_id, file=written.file, data_file="")


def _unjournaled_start(folder: RunDir, started: ev.RunStarted, key: str) -> list[ev.Event]:
    """A start for a file whose child left events or output but whose start the journal lacks.

    The launcher's loop writes ``file_started`` after the child began; a launcher killed on a
    busy machine can die in between, and the file's statements would then be stored with no
    file row. Its pid is unknown (0).
    """
    events, log = folder.events_path(key), folder.log_path(key)
    if not (events.exists() or log.exists()):
        return []
    lines = read_events(events) if events.exists() else iter(())
    first = next((e for e in lines if isinstance(e, ev.Event)), None)
    # an empty events file: the log's last write, or the run's start
    fallback = log.stat().st_mtime if log.exists() else started.t
    t = first.t if first is not None else fallback
    path = os.fspath(Path(started.root) / key)
    return [ev.FileStarted(run_id=started.run_id, file=key, path=path, pid=0, command=[], t=t)]


def replay(run_dir: str | os.PathLike[str], queries: bool = True) -> Iterator[ev.Event]:
    """Events of a run directory in launcher order: run start, each file in turn, run end.

    ``queries=False`` leaves out the ``query`` and ``stack`` events (without decoding them),
    for a caller that loads them in bulk (``devformance_nb.store.ingest``).

    A run whose launcher died has no ``run_done``: one is made up with status
    ``interrupted``, so the replayed run never looks like it is still going.
    """
    folder = RunDir.at(run_dir)
    journal = folder.journal
    if not journal.exists():
        raise PathNotFoundError(
            f"{folder.path} is not a devformance run directory (no {journal.name}); "
            "run directories live under .devformance/runs/"
        )
    parent = [e for e in read_events(journal) if isinstance(e, ev.Event)]
    by_file: dict[str, list[ev.Event]] = {}
    for event in parent:
        by_file.setdefault(event.file, []).append(event)
    started = next((e for e in parent if isinstance(e, ev.RunStarted)), None)
    if started is None:
        raise PathNotFoundError(f"{journal} has no run_started event; nothing to ingest")
    yield started
    # a --changed run's skipped files, as the launcher told them (older journals have none)
    yield from (e for e in parent if isinstance(e, ev.FileCarried))
    for key in started.files:
        own = by_file.get(key, []) or _unjournaled_start(folder, started, key)
        yield from (e for e in own if e.kind == "file_started")
        if own:
            yield from _file_events(folder, started, key, queries)
        # after the child's own events, as live: its own CPU count (file_done) wins
        yield from (e for e in own if e.kind == "resources")
        yield from (e for e in own if e.kind in ("file_crashed", "file_finished"))
    done = [e for e in parent if isinstance(e, ev.RunDone)]
    last_t = max((e.t for e in parent), default=started.t)
    yield (
        done[-1]
        if done
        else ev.RunDone(
            run_id=started.run_id, status="interrupted", duration=last_t - started.t, t=last_t
        )
    )
