"""The fork server's wire: messages of any size, sent and received whole."""

from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any

import pytest

from devformance_nb.run.forkwire import LineBuffer, send_message

pytestmark = pytest.mark.quick


class ShortSends:
    """A socket whose ``sendmsg`` and ``send`` take at most ``most`` bytes a call."""

    def __init__(self, most: int):
        self.most = most
        self.received = bytearray()
        self.ancillary: list[Any] = []

    def sendmsg(self, buffers: list[memoryview], ancillary: list[Any]) -> int:
        self.ancillary.append(ancillary)
        data = bytes(buffers[0])[: self.most]
        self.received += data
        return len(data)

    def send(self, data: bytes) -> int:
        part = bytes(data)[: self.most]
        self.received += part
        return len(part)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.send(view) :]


def test_a_partly_sent_message_is_finished_with_the_descriptor_sent_once() -> None:
    sock = ShortSends(most=1000)
    payload = {"env": {"BIG": "x" * 100_000}}
    send_message(sock, payload, fd=7)  # type: ignore[arg-type]
    assert json.loads(sock.received) == payload
    assert sock.received.endswith(b"\n")
    assert len(sock.ancillary) == 1  # the descriptor goes with the first part only


def test_line_buffer_joins_pieces_of_any_size() -> None:
    lines = LineBuffer()
    assert lines.feed(b'{"a":') == []
    assert lines.feed(b"1") == []
    assert lines.feed(b'}\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert lines.feed(b":3}\n") == [b'{"c":3}']
    assert lines.feed(b"\n") == [b""]


def test_a_message_of_several_megabytes_crosses_a_real_socket_with_its_descriptor() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    read_fd, write_fd = os.pipe()
    payload = {"env": {"BIG": "y" * (4 << 20)}}
    sender = threading.Thread(target=send_message, args=(left, payload, write_fd))
    sender.start()
    try:
        lines = LineBuffer()
        got: list[bytes] = []
        fds: list[int] = []
        while not got:
            data, new_fds, _, _ = socket.recv_fds(right, 1 << 16, 4)
            assert data, "the sender closed before the line ended"
            fds += new_fds
            got = lines.feed(data)
        sender.join()
        assert [json.loads(line) for line in got] == [payload]
        assert len(fds) == 1
        os.write(fds[0], b"through the passed descriptor")
        assert os.read(read_fd, 100) == b"through the passed descriptor"
        os.close(fds[0])
    finally:
        sender.join()
        for fd in (read_fd, write_fd):
            os.close(fd)
        left.close()
        right.close()
