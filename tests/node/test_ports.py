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


def test_a_name_is_bindable_if_one_of_its_addresses_is(monkeypatch) -> None:
    # review: "localhost" resolving to ::1 (which a host without IPv6 cannot bind) and
    # 127.0.0.1 was refused, where gRPC binds what it can
    import socket

    from node import ports

    real = socket.getaddrinfo

    def two(host, port, *a, **kw):
        v4 = real("127.0.0.1", port, *a, **kw)
        bogus = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port))
        return [bogus, *v4]

    monkeypatch.setattr(socket, "getaddrinfo", two)
    assert ports.bind_problem("localhost:0") == ""
    monkeypatch.setattr(socket, "getaddrinfo", lambda h, p, *a, **kw: two(h, p, *a, **kw)[:1])
    assert ports.bind_problem("localhost:0") == (
        "cannot be bound: no network interface of this host has that address"
    )
