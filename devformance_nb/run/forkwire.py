"""The fork server's wire format: JSON lines on a Unix socket, file descriptors attached.

Both sides use it: the launcher (``forkserver``) and the server process (``forkserve``).
A message may be of any size (a request carries the child's whole environment): the sender
loops until every byte is sent, and each receiver keeps what it read until a newline ends the
line (``LineBuffer``).
"""

from __future__ import annotations

import array
import json
import socket
from typing import Any


def send_message(sock: socket.socket, payload: dict[str, Any], fd: int | None = None) -> None:
    """One JSON line, with an optional file descriptor attached (SCM_RIGHTS) to its first byte.

    ``sendmsg`` may send only part of a large message (a signal, a full socket buffer); the
    rest follows without the descriptor, which the kernel has already passed with the first part.
    """
    data = memoryview((json.dumps(payload) + "\n").encode())
    if fd is not None:
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        sent = sock.sendmsg([data], rights)
        data = data[sent:]
    if data:
        sock.sendall(data)


class LineBuffer:
    """Bytes received in pieces of any size in, complete lines out (however long a line is)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines ``chunk`` completes, without their newlines; the rest is kept."""
        if b"\n" not in chunk:
            # keep pieces in a list: joining once, when the line ends, keeps a line of many
            # megabytes received in small pieces linear, not quadratic
            self._parts.append(chunk)
            return []
        *lines, rest = chunk.split(b"\n")
        if self._parts:
            lines[0] = b"".join([*self._parts, lines[0]])
            self._parts.clear()
        if rest:
            self._parts.append(rest)
        return lines
