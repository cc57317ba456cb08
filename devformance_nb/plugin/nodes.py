"""A stand-in for pytest-xdist's controller: it gives each worker slot its ``workerinput``.

Suites and plugins written for pytest-xdist isolate what workers share by the worker's
identity: ``config.workerinput["workerid"]`` (the ``worker_id`` fixture, pytest-django's
per-worker test database), or by what their controller-side ``pytest_configure_node`` hook
put in ``workerinput`` (SQLAlchemy's follower database and ident). devformance runs one
process per test file instead of one per worker, so for each run the launcher starts one
pytest process with this plugin (``-p devformance_nb.plugin.nodes``): a session set up as
an xdist controller's would be (plugins, conftest files, ``pytest_configure``,
``pytest_sessionstart``), which calls ``pytest_configure_node`` for every slot, writes the
inputs as JSON, collects nothing, and waits. When the run ends the launcher closes its
stdin; it then calls ``pytest_testnodedown`` for every slot (SQLAlchemy drops the follower
databases there) and exits. Each child of slot N gets slot N's input.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from devformance_nb.core.contract import (
    ENV_NODES,
    ENV_NODES_OUT,
    ENV_RUN_ID,
    base_worker_input,
    worker_name,
)


@dataclass
class Gateway:
    """The part of an execnet gateway that controller hooks read: its id."""

    id: str


@dataclass
class Node:
    """The part of xdist's ``WorkerController`` that controller hooks use."""

    config: pytest.Config
    gateway: Gateway
    workerinput: dict[str, Any]
    workeroutput: dict[str, Any] = field(default_factory=dict)


def make_nodes(config: pytest.Config, count: int, run_id: str) -> list[Node]:
    """One node per worker slot, with the ``workerinput`` xdist's controller starts from."""
    uid = run_id or uuid.uuid4().hex
    return [
        Node(config, Gateway(worker_name(slot)), base_worker_input(slot, count, uid, sys.argv))
        for slot in range(count)
    ]


def _call_each(config: pytest.Config, name: str, **kwargs: Any) -> list[str]:
    """Call every implementation of hook ``name`` (one failing does not stop the others)."""
    hook = getattr(config.hook, name, None)
    problems = []
    for impl in hook.get_hookimpls() if hook is not None else ():
        try:
            impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:
            problems.append(f"{impl.plugin_name}.{name}: {type(exc).__name__}: {exc}")
    return problems


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool:
    """Configure the nodes, write their inputs, wait for the run to end, take them down."""
    config = session.config
    out = os.environ.get(ENV_NODES_OUT, "")
    if not config.pluginmanager.hasplugin("xdist"):  # no xdist, no workerinput: env only
        _write(out, json.dumps({"inputs": None, "problems": []}))
        session.items = []
        return True
    nodes = make_nodes(config, int(os.environ.get(ENV_NODES) or 1), os.environ.get(ENV_RUN_ID, ""))
    problems: list[str] = []
    for node in nodes:
        problems += _call_each(config, "pytest_configure_node", node=node)
    try:
        text = json.dumps({"inputs": [n.workerinput for n in nodes], "problems": problems})
    except (TypeError, ValueError) as exc:  # a plugin put something JSON cannot carry
        text = json.dumps({"inputs": None, "problems": [*problems, f"workerinput: {exc}"]})
    _write(out, text)
    with contextlib.suppress(OSError, ValueError):
        sys.stdin.read()  # until the launcher closes it: the run has ended
    for node in nodes:
        _call_each(config, "pytest_testnodedown", node=node, error=None)
    session.items = []
    return True


def _write(out: str, text: str) -> None:
    if out:
        with open(out + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(out + ".tmp", out)  # the launcher never reads half a file
