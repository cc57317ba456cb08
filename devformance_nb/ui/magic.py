"""The ``%devformance`` line magic (``%load_ext devformance_nb`` registers it)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any, NoReturn, TypedDict, cast

from devformance_nb.cli.terminal import TerminalView
from devformance_nb.core.errors import DevformanceError
from devformance_nb.run.state import Observer
from devformance_nb.ui import notebook

#: where the magic leaves the run in the user's namespace (``devformance_run.wait()``)
RUN_NAME = "devformance_run"
USAGE = (
    "%devformance [PATHS...] [--workers N] [--db FILE] [--timeout S] [--root DIR] [-- PYTEST ARGS]"
)


class MagicOptions(TypedDict, total=False):
    """The keywords the magic's line gives ``notebook.run_tests`` (only those given)."""

    workers: int
    db: str
    timeout: float
    root: str
    live: bool
    pytest_args: list[str]


class MagicUsageError(ValueError):
    """The magic's arguments are wrong (shown to the user as a one-line message)."""


class _Parser(argparse.ArgumentParser):
    # argparse exits the process on a bad argument: in a kernel, raise instead
    def error(self, message: str) -> NoReturn:
        raise MagicUsageError(f"{message}\nusage: {USAGE}")


def _parser() -> _Parser:
    parser = _Parser(prog="%devformance", add_help=False, usage=USAGE)
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--workers", "-n", type=int)
    parser.add_argument("--db")
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--root")
    parser.add_argument("--no-live", dest="live", action="store_false", default=None)
    return parser


def parse_line(line: str) -> tuple[list[str], MagicOptions]:
    """The magic's line as (paths, keyword arguments of ``notebook.run_tests``).

    Everything after ``--`` goes to every pytest child, like the CLI.
    """
    argv = shlex.split(line)
    pytest_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, pytest_args = argv[:at], argv[at + 1 :]
    args = _parser().parse_args(argv)
    options = {
        "workers": args.workers,
        "db": args.db,
        "timeout": args.timeout,
        "root": args.root,
        "live": args.live,
        "pytest_args": pytest_args or None,
    }
    # argparse's values are untyped: the parser's own types make them what MagicOptions says
    return args.paths, cast(MagicOptions, {k: v for k, v in options.items() if v is not None})


def devformance(line: str, shell: Any = None) -> Any:
    """Run the tests of ``line``: live in a notebook, with a progress bar in a terminal.

    The Run is left in the namespace as ``devformance_run`` (``devformance_run.wait()``).
    """
    if line.strip() in ("-h", "--help"):
        print(f"usage: {USAGE}")
        return None
    try:
        paths, options = parse_line(line)
    except MagicUsageError as exc:
        print(f"%devformance: error: {exc}")
        return None
    live = options.get("live")
    live = notebook.in_notebook() if live is None else live
    observers: list[Observer] = [] if live else [TerminalView()]
    options["live"] = live
    try:
        run = notebook.run_tests(paths or None, observers=observers, **options)
    except DevformanceError as exc:  # a bad path or setting: its message says what to fix
        print(f"%devformance: error: {exc}")
        return None
    if shell is not None:
        shell.user_ns[RUN_NAME] = run
    return None


def register(ipython: Any) -> None:
    """Register ``%devformance`` with an IPython shell."""

    def magic(line: str) -> Any:
        return devformance(line, ipython)

    magic.__doc__ = devformance.__doc__
    ipython.register_magic_function(magic, magic_kind="line", magic_name="devformance")
