"""``devformance watch [PATHS]``: on every save, run the test files the change affects.

The first round runs what changed since the last recorded run (every file on a new
project). Then each batch of saves (debounced by watchfiles) plans a selection: nothing
affected prints so and records no run; otherwise the affected files run, on the warm fork
server the executor keeps for the project across runs, and each says why it runs. Ctrl-C
ends the watch (and a run in progress: its finished files are kept).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TextIO

from watchfiles import Change, watch

from devformance_nb.api import facade as api
from devformance_nb.cli.changed import selection_lines
from devformance_nb.cli.terminal import TerminalView
from devformance_nb.core.config import Overrides, db_path, find_root, load_config
from devformance_nb.logic.discovery import TestFile, discover
from devformance_nb.logic.selection import is_global
from devformance_nb.logic.watchpaths import DEBOUNCE_MS, READY_MS, relevant, saved_paths
from devformance_nb.store.database import Store
from devformance_nb.store.selection import plan


class Watch:
    """The watch's rounds: the files found once (again when files come or go), a plan per
    batch of saves, a run of the affected files."""

    def __init__(self, root: Path, paths: list[str], settings: Overrides, out: TextIO):
        self.root, self.paths, self.settings, self.out = root, paths, settings, out
        self.config = load_config(root, **settings)
        self.store = Store(db_path(root, self.config), self.config.lock_timeout)
        self.files: list[TestFile] = []

    def discover(self) -> None:
        """Find the test files (a pytest child: once, not per save)."""
        self.files = discover(self.root, self.paths, self.config.pytest_args, self.config.python)

    def round(self, saved: list[str], first: bool = False) -> None:
        """Plan and run one round for the ``saved`` paths."""
        started = time.monotonic()
        keys = [f.key for f in self.files]
        if not first:
            selection = plan(self.store, self.root, keys, None, self.config.python)
            if not selection.selected:
                self.say(f"devformance: {', '.join(saved)}: no test file affected")
                return
        view = TerminalView(out=self.out, live=False)
        try:
            # the files as found, named one by one: the run skips pytest's own listing
            run = api.run_tests(
                [os.fspath(f.path) for f in self.files],
                root=self.root,
                observers=[view],
                changed=True,
                **self.settings,
            )
        finally:
            view.stop()
        if run.selection is not None:
            self.say("\n".join(selection_lines(run.selection)))
        took = time.monotonic() - started
        self.say(f"devformance: {', '.join(saved)}: run {run.id} {run.status} ({took:.1f} s)")

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def saves(
    root: Path, stop: threading.Event | None, ready: Callable[[], None] | None = None
) -> Iterator[tuple[list[str], bool]]:
    """Each batch of saves under ``root`` that can matter (debounced), as root-relative paths,
    and whether the test files must be found again (files came or went, or pytest's
    configuration changed); until ``stop`` is set (or Ctrl-C). ``ready`` is called once the
    watcher listens: a save made before then is not seen."""
    changes: Iterable[set[tuple[Change, str]]] = watch(
        root,
        watch_filter=lambda _change, path: relevant(root, path),
        debounce=DEBOUNCE_MS,
        step=10,
        stop_event=stop,
        raise_interrupt=False,
        # watchfiles makes its watcher on the first step of the generator and says nothing
        # when it is made: an empty batch after a short quiet spell is the first sign it is
        rust_timeout=READY_MS,
        yield_on_timeout=True,
    )
    for batch in changes:
        if ready is not None:
            ready()
            ready = None
        if not batch:
            continue
        saved = saved_paths(root, [p for _, p in batch])
        yield saved, any(c != Change.modified for c, _ in batch) or any(map(is_global, saved))


def watch_tests(
    root: Path,
    paths: list[str],
    settings: Overrides,
    *,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the affected files now and on every change under ``root`` until Ctrl-C or ``stop``."""
    w = Watch(root, paths, settings, out or sys.stdout)
    w.discover()
    w.round(["first round"], first=True)
    listening = partial(w.say, f"devformance: watching {root} (Ctrl-C ends)")
    for saved, rediscover in saves(root, stop, listening):
        if rediscover:
            w.discover()
        w.round(saved)
    w.say("devformance: watch ended")
    return 0


def watch_command(args: argparse.Namespace, settings: Overrides) -> int:
    """The ``watch`` subcommand."""
    root = Path(args.root).resolve() if args.root else find_root()
    return watch_tests(root, list(args.paths), settings)
