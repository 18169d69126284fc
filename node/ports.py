"""Whether a listen address is taken, asked of the kernel before gRPC binds it.

gRPC's C core logs its own multi-line error to stderr when a bind fails; asking first lets
a node (and ``testnet up``) refuse a taken port in one line of its own.
"""

from __future__ import annotations

import errno
import socket

IN_USE = "is in use by another process"


def bind_problem(address: str) -> str:
    """Why a server could not bind ``address`` now ("" if it could, or if the name does
    not resolve: the server's own bind then reports it): "is in use by another process",
    or the kernel's reason, e.g. an address no interface of this host has (QA-S: gRPC's C
    core logged its own error line before the node's)."""
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        infos = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, ValueError, UnicodeError):
        return ""
    problems: list[str] = []
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(sockaddr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return IN_USE
            if e.errno == errno.EADDRNOTAVAIL:
                problems.append("no network interface of this host has that address")
            else:
                problems.append(e.strerror or str(e))
    # gRPC serves if one of the names' addresses binds (review: "localhost" with an IPv6
    # ::1 that the host cannot bind, as in many containers)
    if problems and len(problems) == len(infos):
        return f"cannot be bound: {problems[0]}"
    return ""


def in_use(address: str) -> bool:
    """True iff something listens on ``address`` (``host:port``, ``[v6]:port``) now: a
    bind with ``SO_REUSEADDR``, as gRPC's own, fails with ``EADDRINUSE`` on an address the
    host resolves to (a port in TIME_WAIT is free). A name that does not resolve, or any
    other failure, is False: the server's own bind then reports it."""
    return bind_problem(address) == IN_USE


__all__ = ["bind_problem", "in_use"]
