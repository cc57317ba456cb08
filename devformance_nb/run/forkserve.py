"""The fork server's own process: warm up once, then fork a pytest child per request.

Single-threaded on purpose: forking a process with threads can leave locks
held in the child. See ``devformance_nb.run.forkserver`` for the launcher's side.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.metadata
import importlib.util
import io
import json
import os
import select
import signal
import socket
import stat
import sys
import traceback
from typing import Any

from devformance_nb.core.contract import ENV_FORKSERVER_WARM, ENV_PARENT
from devformance_nb.logic.importscan import server_imports
from devformance_nb.run import distsnapshot, preconfig
from devformance_nb.run.forkwire import LineBuffer, send_message

#: modules the plugin imports in each child (coverage's only when coverage is on)
_RECORDING_MODULES = ("devformance_nb.plugin.capture", "devformance_nb.plugin.coverage", "coverage")


def warm_up(warm: dict[str, Any]) -> None:
    """Import pytest, this package's plugin, ``preload`` modules and the libraries the project
    imports; run no pytest session and no project code.

    A child must start exactly as a fresh ``pytest FILE`` would: a session run here (even
    collect-only) leaves plugin state behind (options parsed twice, follower settings, classes
    generated at collection) and imports conftest files and plugins out of their order. So
    the server only imports modules: pytest's own, and installed libraries the project uses
    that are not test infrastructure (``importscan.server_imports``). Plugins and conftest
    files load in each child, through pytest's assertion-rewriting importer, as usual.
    """
    measured = bool(warm.get("coverage"))
    # coverage on: measure from here, before anything is imported, so children inherit the
    # import-time lines of what the server imports and coverage's decision for each file
    warm_coverage = measured and start_coverage(warm) == ""
    import pytest  # noqa: F401 - every child imports it first
    from _pytest.config import default_plugins

    import devformance_nb.plugin  # noqa: F401 - every child loads it

    for name in default_plugins:  # pytest's built-in plugins: its own modules, no hook runs
        with contextlib.suppress(ImportError):
            importlib.import_module(f"_pytest.{name}")
    import_installed_plugins(frozenset(warm.get("skip", [])))
    # what every child imports when it starts recording: SQL capture, and coverage.py
    for name in _RECORDING_MODULES[: None if measured else 1]:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    for name in warm.get("preload", []):
        if measured and not warm_coverage and is_project_module(name, warm.get("root", "")):
            continue  # imported in each child instead, where coverage sees its import-time lines
        importlib.import_module(name)
    skip = frozenset(warm.get("skip", []))
    if warm.get("root"):
        for name in server_imports(warm["root"])[0]:
            try_import(name, skip)
    # what every child's pytest does first, the same for all: done once here
    distsnapshot.install()  # read every installed distribution's metadata
    preconfig.install()  # register pytest's built-in plugins


def start_coverage(warm: dict[str, Any]) -> str:
    """Start the measurement every child takes over (see ``plugin.coverage.start_warm``);
    '' if it started, else why not."""
    from pathlib import Path

    from devformance_nb.core.contract import ChildOptions
    from devformance_nb.plugin.coverage import start_warm

    source = warm.get("coverage_source")
    options = ChildOptions(
        coverage=True,
        coverage_source=tuple(source) if source is not None else None,
        coverage_contexts=bool(warm.get("coverage_contexts")),
        root=warm.get("root", ""),
    )
    return start_warm(options, Path(warm.get("root") or os.getcwd()))


#: modules whose import failed in this server process (see ``serve``)
FAILED_IMPORTS: list[str] = []
#: fresh starts of the server to leave failing imports out, before it gives up (unsafe)
MAX_RESTARTS = 3


def try_import(name: str, skip: frozenset[str] = frozenset()) -> None:
    """Import ``name`` unless it is in ``skip``; note a failure in ``FAILED_IMPORTS``.

    A failed import leaves the modules it imported on the way in ``sys.modules`` (and a
    library's own bookkeeping half done): a second attempt, in a child, can then behave
    differently from a fresh interpreter's first (SQLAlchemy's asyncio package without
    greenlet imports "fine" the second time). Forgetting those modules is not enough (modules
    imported since hold on to them), so ``serve`` starts a fresh server that leaves the
    failing imports to the children.
    """
    if name in skip:
        return
    try:
        importlib.import_module(name)
    except (Exception, SystemExit):
        FAILED_IMPORTS.append(name)


#: top-level names of plugin distributions that are never the plugin's code
_NOT_PLUGIN_CODE = frozenset({"tests", "test", "testing", "conftest", "docs", "setup", "examples"})


def import_installed_plugins(skip: frozenset[str] = frozenset()) -> None:
    """Import the installed pytest plugins (``pytest11`` entry points) and the packages of
    their distributions, as a child's pytest would: through pytest's assertion-rewriting
    importer, which pytest asks to rewrite exactly those packages. A child then finds them
    imported and rewritten (no "already imported" warning) and registers and configures them
    itself; nothing here registers a plugin or calls a hook. A plugin's heavy dependency
    (hypothesis: a second a child) is then paid once, in the server.
    """
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return
    try:
        import _pytest.assertion
        from _pytest.config import get_config

        config = get_config([])
        hook = _pytest.assertion.install_importhook(config)
    except Exception:  # another pytest's internals: leave plugins to the children
        return
    try:
        config._mark_plugins_for_rewrite(hook, False)
        names = set(getattr(hook, "_must_rewrite", set())) - _NOT_PLUGIN_CODE
        names |= {point.module for point in importlib.metadata.entry_points(group="pytest11")}
        for name in sorted(names):
            try_import(name, skip)
    except Exception:
        pass  # what was imported stays; the children import the rest
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(hook)  # each child's pytest installs its own


def is_project_module(name: str, root: str) -> bool:
    """Whether module ``name`` (its top-level package) is the project's own code under ``root``.

    Only the top-level package is located, without importing it: finding a
    submodule would run its package's ``__init__``.
    """
    if not root:
        return False
    try:
        spec = importlib.util.find_spec(name.partition(".")[0])
    except (ImportError, ValueError):
        return False
    origin = (spec.origin or "") if spec is not None else ""
    if spec is not None and not origin and spec.submodule_search_locations:
        origin = next(iter(spec.submodule_search_locations), "")  # a namespace package
    if not origin or "site-packages" in origin or "dist-packages" in origin:
        return False
    base = os.path.realpath(root) + os.sep
    return os.path.realpath(origin).startswith(base)


def _text_stream(fd: int) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", write_through=True)


def run_child(request: dict[str, Any], out_fd: int) -> int:
    """In the forked child: become a session leader with the pipe as stdout/stderr; run pytest."""
    import pytest

    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    os.close(devnull)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update({**request["env"], ENV_PARENT: str(os.getppid())})
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115
    sys.stdout, sys.stderr = _text_stream(1), _text_stream(2)
    sys.argv = ["pytest", *request["argv"]]
    return int(pytest.main(list(request["argv"])))


class Server:
    """The request loop: fork on request, reap children, report their exit codes."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.children: set[int] = set()
        self.parent = os.getppid()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._terminate)
        self._lines = LineBuffer()
        self._fds: list[int] = []

    def _terminate(self, *_: Any) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        os._exit(0)

    def loop(self, about: dict[str, Any] | None = None) -> None:
        """Say ready (with ``about`` the server), then serve requests until told to end."""
        send_message(self.sock, {"ready": True, **(about or {})})
        while True:
            waiting: list[Any] = [self.sock, self.wake_r]
            ready, _, _ = select.select(waiting, [], [], 0.5)
            if os.getppid() != self.parent:
                self._terminate()
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
            self._reap()
            if self.sock in ready and not self._receive():
                self._terminate()

    def _receive(self) -> bool:
        data, fds, _, _ = socket.recv_fds(self.sock, 1 << 20, 16)
        if not data:
            return False
        # a request's descriptor arrives with its first byte, its line maybe many reads later:
        # descriptors and completed lines pair up in order
        self._fds += fds
        for line in self._lines.feed(data):
            request = json.loads(line)
            pid = self._fork(request, self._fds.pop(0))
            send_message(self.sock, {"req": request["req"], "started": pid})
        return True

    def _fork(self, request: dict[str, Any], out_fd: int) -> int:
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                self.sock.close()
                os.close(self.wake_r)
                os.close(self.wake_w)
                code = run_child(request, out_fd)
            except BaseException:  # the child must never return into the server loop
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        os.close(out_fd)
        self.children.add(pid)
        return pid

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            send_message(self.sock, {"exited": pid, "code": code})


def serve(fd: int, warm: dict[str, Any]) -> None:
    """Entry point of the server process.

    When an import failed during warm-up, the process starts over (same command, same
    socket) with the failing modules left to the children, at most ``MAX_RESTARTS`` times;
    past that the server reports itself unsafe and the run uses spawn.
    """
    warm_up(warm)
    if FAILED_IMPORTS and warm.get("restarts", 0) < MAX_RESTARTS:
        restart(fd, warm)
    sock = socket.socket(fileno=fd)
    # Everything imported so far is shared with every child: frozen, the garbage
    # collector never walks it there (pytest collects at exit, ~20 ms a time on a
    # warm heap) and never writes to those pages (so they stay shared, not copied).
    gc.freeze()
    unsafe = unsafe_state(fd)
    if FAILED_IMPORTS and not unsafe:
        unsafe = f"imports that keep failing in the server: {', '.join(FAILED_IMPORTS)}"
    ready = {
        "imported": project_files(warm.get("root", "")),
        "unsafe": unsafe,
        "skip": sorted({*warm.get("skip", []), *FAILED_IMPORTS}),
        "restarts": warm.get("restarts", 0),
    }
    Server(sock).loop(ready)


def restart(fd: int, warm: dict[str, Any]) -> None:
    """Replace this process by a fresh server that skips the imports that failed here."""
    again = {
        **warm,
        "skip": sorted({*warm.get("skip", []), *FAILED_IMPORTS}),
        "restarts": warm.get("restarts", 0) + 1,
    }
    env = {**os.environ, ENV_FORKSERVER_WARM: json.dumps(again)}
    os.set_inheritable(fd, True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def project_files(root: str) -> list[str]:
    """The project's own source files imported so far: an edit to one means a new server."""
    if not root:
        return []
    base = os.path.realpath(root) + os.sep
    found = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        real = os.path.realpath(path)
        if real.startswith(base) and not any(m in real for m in ("site-packages", "dist-packages")):
            found.add(real)
    return sorted(found)


def unsafe_state(own_fd: int) -> str:
    """Why forking this process now would be unsafe ('' if it is not): a thread or a socket
    left by a preloaded module would be half-copied into every child."""
    import threading

    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        return f"threads left running by preloaded modules: {', '.join(sorted(others))}"
    sockets = []
    with contextlib.suppress(OSError):  # Linux names every open descriptor here
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            with contextlib.suppress(OSError):
                if fd != own_fd and stat.S_ISSOCK(os.fstat(fd).st_mode):
                    sockets.append(fd)
    if sockets:
        return f"sockets left open by preloaded modules (descriptors {sockets})"
    return ""


if __name__ == "__main__":  # pragma: no cover - runs as the server process
    serve(int(sys.argv[1]), json.loads(os.environ.get(ENV_FORKSERVER_WARM, "{}")))
