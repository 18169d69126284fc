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
import re
import ssl
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
#: OpenSSL's reason in gRPC's details of a failed verification
_VERIFY_FAILED = re.compile(r"CERTIFICATE_VERIFY_FAILED: ([^:]{1,80})")


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

    def check(self) -> None:
        """``ConfigError`` naming what TLS would refuse, before the node serves (QA-Z: a
        CA file that did not parse, an expired certificate or an encrypted key let the node
        start, and it sat out of the consortium with no word of why): the key is the
        certificate's own and not encrypted, ``ca_file`` holds certificates TLS reads, and
        this node's own certificate verifies under them now (dates, chain), as its peers,
        trusting the same CAs, will verify it. The host names are not checked here: which
        name a peer dials is its own config's."""
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)

        def encrypted() -> str:
            raise ConfigError(
                f"tls.key_file: {self.key_file} is encrypted: a node's TLS key is read "
                "without a passphrase (keep it unencrypted, readable by the node alone)"
            )

        try:
            server.load_cert_chain(self.cert_file, self.key_file, password=encrypted)
        except ssl.SSLError as e:
            raise ConfigError(
                f"tls: TLS does not take tls.key_file with tls.cert_file ({_why(e)}): is the "
                "key the certificate's own, and the certificate first in cert_file?"
            ) from e
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        try:
            client.load_verify_locations(cafile=self.ca_file)
        except ssl.SSLError as e:
            raise ConfigError(
                f"tls.ca_file: {self.ca_file} holds no certificate TLS can read ({_why(e)})"
            ) from e
        try:
            _handshake(server, client)
        except ssl.SSLCertVerificationError as e:
            raise ConfigError(
                f"tls: this node's certificate ({self.cert_file}) does not verify under "
                f"tls.ca_file: {e.verify_message}; its peers, trusting those CAs, would "
                "refuse it"
            ) from e
        except ssl.SSLError as e:
            raise ConfigError(f"tls: a TLS handshake with this node's own files failed "
                              f"({_why(e)})") from e  # fmt: skip


@dataclass(frozen=True)
class TlsMaterial:
    cert: bytes
    key: bytes
    ca: bytes

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.key, self.cert)])

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca)

    def check_pair(self) -> None:
        """``ConfigError`` unless gRPC's TLS takes the key and certificate (on a throwaway
        loopback port: a mismatched pair failing at the node's real bind read as a taken
        port). ``TlsFiles.check`` says first what is wrong, in words."""
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


def _why(e: ssl.SSLError) -> str:
    """OpenSSL's reason, in words ("KEY_VALUES_MISMATCH": "key values mismatch")."""
    return str(e.reason).replace("_", " ").lower() if e.reason else "it does not parse"


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    """A TLS handshake between ``client`` and ``server`` in memory (no socket); raises
    what the client's verification of the server's certificate raises."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out)
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(16):  # (a handshake takes a few flights)
        done = 0
        for end in (c, srv):
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        if c_out.pending:
            s_in.write(c_out.read())
        if s_out.pending:
            c_in.write(s_out.read())
        if done == 2:
            return
    raise ssl.SSLError("the handshake did not finish")


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
    path = os.environ.get(ENV_CA)
    if path is None:
        return None
    if not path.strip():  # (review: `SUYUAN_TLS_CA=$UNSET` meant plaintext, silently)
        raise ConfigError(
            f"{ENV_CA} is set but empty: name the CA certificate file, or unset it to reach "
            "nodes without TLS"
        )
    ca = _pem(Path(path).expanduser(), ENV_CA, "CERTIFICATE")
    try:  # (QA-Z: a file that did not parse read as a node that could not be reached)
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
            cadata=ca.decode("utf-8", "replace")
        )
    except ssl.SSLError as e:
        raise ConfigError(f"{ENV_CA}: {path} holds no certificate TLS can read ({_why(e)})") from e
    return grpc.ssl_channel_credentials(root_certificates=ca)


def tls_hint(details: str, tls: bool, trust: str) -> str:
    """What TLS has to do with a failed connection whose gRPC details are ``details``
    ("" when nothing points at it); ``tls``: the caller dialled over TLS, trusting the CAs
    of ``trust`` (the node's ``tls.ca_file``, the CLI's ``SUYUAN_TLS_CA``)."""
    if tls and "handshake failed" in details.lower():
        if "WRONG_VERSION_NUMBER" in details:
            return "it does not serve TLS (a node without a [tls] section)"
        if "Hostname Verification" in details or "hostname" in details.lower():
            return "its TLS certificate does not name the host dialled (subjectAltName)"
        m = _VERIFY_FAILED.search(details)  # (QA-Z: an expired one read as untrusted)
        why = f" ({m.group(1).strip()})" if m else ""
        return (
            f"its TLS certificate is not trusted{why}: it must chain to a CA of {trust}, be "
            "valid now and name the host dialled (subjectAltName)"
        )
    if not tls and "Socket closed" in details:
        return f"if it serves TLS, name the consortium's CA certificate file in {trust}"
    return ""
