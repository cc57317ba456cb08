"""The fork server's wire format: JSON lines on a Unix socket, file descriptors attached.

Both sides use it: the launcher (``forkserver``) and the server process (``forkserve``).
"""

from __future__ import annotations

import array
import json
import socket
from typing import Any


def send_message(sock: socket.socket, payload: dict[str, Any], fd: int | None = None) -> None:
    """One JSON line, with an optional file descriptor attached (SCM_RIGHTS)."""
    data = (json.dumps(payload) + "\n").encode()
    if fd is None:
        sock.sendall(data)
    else:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
