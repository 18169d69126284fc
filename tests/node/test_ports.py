"""``node.ports.in_use``: a taken listen address is told before gRPC binds it."""

from __future__ import annotations

import socket

from node.ports import in_use


def test_a_listening_port_is_in_use_and_free_once_closed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        addr = f"127.0.0.1:{s.getsockname()[1]}"
        assert in_use(addr)
        assert in_use(f"localhost:{s.getsockname()[1]}")
    assert not in_use(addr)


def test_an_address_that_cannot_be_asked_is_left_to_the_server() -> None:
    assert not in_use("127.0.0.1:port")
    assert not in_use("127.0.0.1:99999")
    assert not in_use("[::1:26650")
