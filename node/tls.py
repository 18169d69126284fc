"""TLS on a node's port and on the links it dials (optional; the node config's ``[tls]``).

A node with a ``[tls]`` section serves its one port (Ledger, Peer and Health services)
over TLS with its certificate, and dials its peers over TLS, accepting only certificates
that chain to the section's CA file and name the host it dials (the host of a ``peers``
entry, as an IP address or DNS name in the certificate's subjectAltName). Every node of a
consortium serves TLS or none does: a TLS node cannot talk to a plain one.

TLS adds confidentiality and server authentication on the wire. Who a peer is stays
proven by ``node.peerauth`` (the member's genesis key), with or without TLS; clients are
not asked for certificates (members and auditors use the CLI without one).

The CLI speaks TLS to nodes when ``SUYUAN_TLS_CA`` names a PEM file of the CA(s) to trust.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from node.errors import ConfigError
from node.inputfile import read_input

#: the CLI's (``LedgerClient``'s) trust anchors for nodes that serve TLS: a PEM file
ENV_CA = "SUYUAN_TLS_CA"
PEM_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TlsFiles:
    """The ``[tls]`` section: this node's certificate chain and private key (PEM), and
    the CA certificates its peers' certificates must chain to (PEM)."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    def load(self) -> TlsMaterial:
        """The three files' bytes; ``ConfigError`` naming the file and what is wrong."""
        return TlsMaterial(
            _pem(self.cert_file, "tls.cert_file", "CERTIFICATE"),
            _pem(self.key_file, "tls.key_file", "PRIVATE KEY"),
            _pem(self.ca_file, "tls.ca_file", "CERTIFICATE"),
        )


@dataclass(frozen=True)
class TlsMaterial:
    cert: bytes
    key: bytes
    ca: bytes

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.key, self.cert)])

    def check_pair(self) -> None:
        """``ConfigError`` unless TLS takes the key and certificate (gRPC's own check, on a
        throwaway loopback port: a mismatched pair fails there, and a node's real bind
        would read as a taken port)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            probe = grpc.server(pool)
            try:
                probe.add_secure_port("127.0.0.1:0", self.server_credentials())
            except RuntimeError as e:
                raise ConfigError(
                    "tls: TLS does not take tls.key_file with tls.cert_file (is the key the "
                    "certificate's own, and the certificate first in cert_file?)"
                ) from e
            finally:
                probe.stop(None)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca)


def _pem(path: Path, field: str, kind: str) -> bytes:
    raw = read_input(path, field, limit=PEM_MAX_BYTES, error=ConfigError)
    # "-----BEGIN PRIVATE KEY", "... RSA PRIVATE KEY", "... EC PRIVATE KEY" alike
    if b"-----BEGIN " not in raw or f"{kind}-----".encode() not in raw:
        raise ConfigError(f"{field}: {path} holds no PEM {kind.lower()}")
    return raw


def aio_channel(
    address: str, credentials: grpc.ChannelCredentials | None, options: Sequence[Any]
) -> grpc.aio.Channel:
    """An asyncio channel to ``address``: over TLS with ``credentials``, else plain."""
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)


def client_credentials() -> grpc.ChannelCredentials | None:
    """TLS credentials for the CLI from ``SUYUAN_TLS_CA`` (None when it is not set);
    ``ConfigError`` when the file it names cannot be read or holds no certificate."""
    path = os.environ.get(ENV_CA, "")
    if not path:
        return None
    ca = _pem(Path(path).expanduser(), ENV_CA, "CERTIFICATE")
    return grpc.ssl_channel_credentials(root_certificates=ca)


def tls_hint(details: str, tls: bool, trust: str) -> str:
    """What TLS has to do with a failed connection whose gRPC details are ``details``
    ("" when nothing points at it); ``tls``: the caller dialled over TLS, trusting the CAs
    of ``trust`` (the node's ``tls.ca_file``, the CLI's ``SUYUAN_TLS_CA``)."""
    if tls and "handshake failed" in details.lower():
        if "WRONG_VERSION_NUMBER" in details:
            return "it does not serve TLS (a node without a [tls] section)"
        return (
            f"its TLS certificate is not trusted: it must chain to a CA of {trust} and name "
            "the host dialled (subjectAltName)"
        )
    if not tls and "Socket closed" in details:
        return f"if it serves TLS, name the consortium's CA certificate file in {trust}"
    return ""
