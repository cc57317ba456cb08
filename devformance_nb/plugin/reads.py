"""What project files a child read: data files it opened, Python modules it imported.

Change-based selection re-runs a test file when a file it read changed. Coverage sees the
Python lines a file executed; this sees the rest: ``open()`` (``io.open``, which pathlib
and ``codecs.open`` call) and ``os.open`` are wrapped, and files under the project root
opened for reading are recorded; at the end the modules in ``sys.modules`` under the root
are added (a module the fork server imported before the fork is not opened again here, and
a module coverage does not measure still counts at file level).

Not an audit hook, though ``open`` raises an audit event: CPython calls every hook on every
event, and reading a frame's ``f_code`` is one (``sys._getframe`` another). The SQL capture
reads ``f_code`` for each frame of each statement's stack, so a Python hook cost every
statement about 0.1 us a frame (an ORM statement's stack has dozens). A module that took
its own reference to ``open`` before the child started is not seen.

One line per path, ``open<TAB>path`` or ``import<TAB>path`` (relative to the root), written
as it is first seen with one ``os.write`` on a descriptor opened once, so a child that dies
keeps what it read so far.
"""

from __future__ import annotations

import builtins
import io
import os
import sys
from typing import Any

from devformance_nb.core.config import STATE_DIR

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class ReadsRecorder:
    """Records the project files this process reads into ``path``."""

    def __init__(self, path: str, root: str):
        self.path = path
        # both spellings: paths arrive as given, the root may sit behind a symlink
        self.roots = tuple({os.path.abspath(root) + os.sep, os.path.realpath(root) + os.sep})
        self.seen: set[str] = set()
        self.fd = -1
        self.busy = False
        self.active = True

    def install(self) -> None:
        """Start recording: wrap ``open`` and ``os.open`` for this process's lifetime."""
        opened = builtins.open

        def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            handle = opened(file, mode, *args, **kwargs)  # a failed open read nothing
            if isinstance(mode, str) and not any(c in mode for c in "wax+"):
                self._opened(file)
            return handle

        os_opened = os.open

        def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            fd = os_opened(path, flags, *args, **kwargs)
            # relative to a dir_fd (shutil.rmtree of pytest's old folders) is not our path
            if not flags & _WRITE_FLAGS and kwargs.get("dir_fd") is None:
                self._opened(path)
            return fd

        builtins.open = io.open = open_  # type: ignore[assignment]
        os.open = os_open

    def _opened(self, file: Any) -> None:
        if self.busy or not self.active:
            return
        if isinstance(file, os.PathLike):
            file = os.fspath(file)
        if not isinstance(file, str):  # a descriptor or bytes: not a project path we name
            return
        self.busy = True  # our own open below goes through the wrapper again
        try:
            self._seen(file, "import" if file.endswith(".py") else "open")
        finally:
            self.busy = False

    def _seen(self, path: str, kind: str) -> None:
        full = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
        full = os.path.normpath(full)
        root = next((r for r in self.roots if full.startswith(r)), None)
        if root is None or full.startswith(root + STATE_DIR + os.sep):
            return
        if full.endswith((".pyc", ".pyo")) or os.sep + "__pycache__" + os.sep in full:
            return
        rel = full[len(root) :].replace(os.sep, "/")
        if kind == "open" and rel.endswith(".py"):
            kind = "import"
        line = f"{kind}\t{rel}"
        if line in self.seen:
            return
        self.seen.add(line)
        # not a file: a folder, or a name relative to a dir_fd the event does not carry
        # (shutil.rmtree of pytest's old temporary folders), which we joined to the cwd
        if kind == "open" and not os.path.isfile(full):
            return
        try:
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.write(self.fd, (line + "\n").encode("utf-8", "surrogateescape"))
        except OSError:
            self.active = False  # a full disk must not fail the tests

    def finish(self) -> None:
        """Add the imported modules under the root and close the file."""
        self.busy = True
        try:
            for module in list(sys.modules.values()):
                name = getattr(module, "__file__", None)
                if isinstance(name, str) and name.endswith(".py"):
                    self._seen(name, "import")
            if self.fd < 0:  # nothing read: an empty file says so (not a lost record)
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            pass
        finally:
            self.active = False
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


def read_reads(path: str) -> tuple[set[str], set[str]] | None:
    """The (opened, imported) paths recorded in ``path`` (None: no record was written)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError:
        return None
    opened: set[str] = set()
    imported: set[str] = set()
    for line in text.splitlines():
        kind, _, rel = line.partition("\t")
        if rel:
            (imported if kind == "import" else opened).add(rel)
    return opened, imported
