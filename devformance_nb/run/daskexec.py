"""The Dask executor: each test file one task on a Dask cluster, streamed into the same loop.

``connect`` reaches the cluster before anything runs: the ``distributed.Client`` given, the
scheduler at ``scheduler`` (within ``CONNECT_TIMEOUT`` seconds, else a clear error), or a
``LocalCluster`` of ``workers`` single-threaded worker processes, closed with the executor.
``DaskExecutor.stage`` decides how the project reaches the workers (``daskship``) and sets
each file's Dask priority from the run's order (longest first, from stored durations). Each
``start`` submits one task (``daskwork.run_file``: the same pytest child as locally, a
subprocess of the worker) and returns a ``DaskChild`` (``daskstream``) that its reader reads
as a local child. Messages come back on one event topic per run.

A worker that leaves the cluster mid-file is seen within ``daskstream.WATCH_EVERY`` seconds:
the file is crashed (or run again, ``dask_retries``), its task cancelled so that Dask does
not quietly run it a second time. Stopping kills the children on their workers
(``daskwork.cancel`` through ``Client.run``) and cancels the tasks not started yet.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devformance_nb.core.config import Config, available_cpus
from devformance_nb.core.errors import ClusterUnreachableError, MissingExtraError
from devformance_nb.core.rundir import slug
from devformance_nb.logic.discovery import TestFile
from devformance_nb.run import daskwork
from devformance_nb.run.daskship import Shipping, choose_shipping
from devformance_nb.run.daskstream import WATCH_EVERY, DaskChild
from devformance_nb.run.executor import Job

#: seconds to reach a scheduler before the run is refused
CONNECT_TIMEOUT = 5.0


def connect(config: Config, root: Path, client: Any = None) -> DaskExecutor:
    """The Dask executor for ``config``: on ``client``, on ``config.scheduler``, or on a local
    cluster of ``config.workers`` processes (the CPUs available by default)."""
    try:
        import distributed
    except ImportError:
        raise MissingExtraError(
            "the dask executor needs Dask's distributed scheduler: "
            "pip install 'devformance_nb[dask]'"
        ) from None
    owned: list[Any] = []
    if client is None and config.scheduler:
        try:
            client = distributed.Client(  # type: ignore[no-untyped-call]
                config.scheduler, timeout=CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise ClusterUnreachableError(
                f"could not reach the Dask scheduler at {config.scheduler} within "
                f"{CONNECT_TIMEOUT:g} s ({exc}); nothing ran. Check the address "
                "(tcp://HOST:8786), that the scheduler runs (`dask scheduler`) and that this "
                "machine reaches its port, or leave the scheduler out to run on a local cluster"
            ) from None
        owned.append(client)
    elif client is None:
        cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=config.workers or available_cpus(),
            threads_per_worker=1,  # one file per worker process at a time, as one slot
            processes=True,
            dashboard_address=":0",  # no fixed port: another run may hold it
            silence_logs=logging.ERROR,  # a worker killed mid-file is told in its file's output
        )
        client = distributed.Client(cluster)  # type: ignore[no-untyped-call]
        owned += [client, cluster]
    return DaskExecutor(
        client,
        root,
        python=config.python,  # None: each worker's own interpreter
        retries=config.dask_retries,
        ship=config.dask_ship,
        warm=config.dask_warm,
        preload=tuple(config.preload),
        owned=owned,
    )


class DaskExecutor:
    """Starts each file as a task on a Dask cluster (the ``Executor`` protocol)."""

    name = "dask"

    def __init__(
        self,
        client: Any,
        root: Path,
        python: str | None = None,
        retries: int = 0,
        ship: str = "auto",
        warm: bool = True,
        preload: tuple[str, ...] = (),
        owned: Sequence[Any] = (),
    ):
        self.client = client
        self.root = root
        self.python = python
        self.retries = retries
        self.ship = ship
        #: children fork from a warm server on each worker (``daskwarm``), else spawn
        self.warm_start = warm
        self.preload = preload
        self._owned = list(owned)
        #: files the cluster runs at once: its worker threads
        self.slots = max(1, sum(client.nthreads().values()))
        self.topic = f"devformance-{secrets.token_hex(6)}"
        self.shipping: Shipping | None = None
        self._priority: dict[str, int] = {}
        # three locks, none held across a call into the client: the event loop thread takes
        # ``_routes`` for each message, and a sync client call waits for that thread
        self._staging = threading.Lock()
        self._routes = threading.Lock()
        self._members = threading.Lock()
        self._children: dict[str, DaskChild] = {}
        self._forgotten: set[str] = set()
        self._workers: set[str] = set()
        self._looked = -WATCH_EVERY
        client.subscribe_topic(self.topic, self._on_message)

    def stage(self, files: Sequence[TestFile]) -> dict[str, str]:
        """Ship the project for a run of ``files`` (in run order: the first runs first) and
        say how, for the run's metadata (the terminal shows ``executor_note``)."""
        with self._staging:
            self._priority = {f.key: len(files) - i for i, f in enumerate(files)}
            if self.shipping is None:
                self.shipping = choose_shipping(self.client, self.root, files, self.ship)
            note = self.shipping.note
        return {"executor_note": note, "dask_scheduler": str(self.client.scheduler.address)}

    def start(self, job: Job) -> DaskChild:
        if self.shipping is None:  # a launcher driven without ``stage``
            self.stage([job.test_file])
        child = DaskChild(job, self, self.retries)
        self.submit(child)
        return child

    def submit(self, child: DaskChild) -> None:
        """Submit a new attempt at ``child``'s file."""
        assert self.shipping is not None
        job = child.job
        attempt = secrets.token_hex(6)
        spec = daskwork.TaskSpec(
            run_id=job.run_id,
            key=job.test_file.key,
            attempt=attempt,
            topic=self.topic,
            root=os.fspath(job.root),
            argv=tuple(job.command()[1:]),
            env=job.own_environment(),
            python=self.python,
            coverage_path=os.fspath(job.coverage_path) if job.options.coverage else "",
            archive=self.shipping.digest,
            warm=self.warm_start,
            preload=self.preload,
        )
        with self._routes:
            child.attempt = attempt
            self._children[attempt] = child
        child.future = self.client.submit(
            daskwork.run_file,
            spec,
            self.shipping.argument,
            key=f"devformance-{slug(job.test_file.key)}-{attempt}",
            priority=self._priority.get(job.test_file.key, 0),
            pure=False,
        )
        child.future.add_done_callback(lambda future: child.deliver("done", attempt, future))

    def _on_message(self, event: tuple[float, Any]) -> None:
        """A task's message (on the client's event loop: hand it over, never block)."""
        _, message = event
        attempt = message.get("attempt", "") if isinstance(message, dict) else ""
        with self._routes:
            child = self._children.get(attempt)
            stray = attempt in self._forgotten and "started" in message
        if child is not None:
            child.deliver("msg", attempt, message)
        elif stray:  # Dask ran a forgotten attempt again elsewhere: it must not go on
            address = str(message["started"]["address"])
            threading.Thread(target=self._cancel, args=(attempt, [address]), daemon=True).start()

    def kill(self, child: DaskChild) -> None:
        """Kill ``child``'s current attempt where it runs; one not started never starts."""
        if child.address:
            self._cancel(child.attempt, [child.address])
        else:
            child.future.cancel()
            self._cancel(child.attempt, None)

    def forget(self, child: DaskChild) -> None:
        """Cancel ``child``'s current attempt, kill it wherever Dask may already run it again
        (its worker died: Dask reschedules), and ignore what it still sends."""
        attempt = child.attempt
        with self._routes:
            self._children.pop(attempt, None)
            self._forgotten.add(attempt)
        child.future.cancel()
        threading.Thread(target=self._cancel, args=(attempt, None), daemon=True).start()

    def _cancel(self, attempt: str, workers: list[str] | None) -> None:
        # the worker gone, or the client closing: nothing is left to kill
        with contextlib.suppress(Exception):
            self.client.run(daskwork.cancel, attempt, workers=workers)

    def alive(self, address: str) -> bool:
        """Whether ``address`` is still a worker of the cluster (looked up at most every
        ``WATCH_EVERY`` seconds, whichever file asks)."""
        with self._members:  # never taken by the event loop: the call below may wait here
            if time.monotonic() - self._looked >= WATCH_EVERY:
                # unreachable for a moment: judge by the last answer
                with contextlib.suppress(Exception):
                    self._workers = set(self.client.nthreads())
                self._looked = time.monotonic()
            return address in self._workers

    def close(self) -> None:
        """End the run's use of the cluster; close the cluster and client this executor made."""
        if self.shipping is not None:
            with contextlib.suppress(Exception):  # a closing client
                self.shipping.close()
            self.shipping = None
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self.topic)
        for owned in self._owned:
            owned.close()
        self._owned = []
