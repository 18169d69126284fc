"""Outgoing links to the other validators: one gRPC stream per peer, batched, reconnecting.

Each ``PeerLink`` owns an asyncio queue of items to send (consensus messages, gossiped
records, evidence) and one task that keeps a ``Peer.Exchange`` client stream open, sending
everything queued as one ``PeerEnvelope`` per wake-up. While the peer is unreachable items
are dropped (bounded queue): consensus re-broadcasts on a timer, and records reach a peer
through blocks anyway.

Before linking, a peer's ``PeerStatus`` reply is checked: another chain is refused; so is a
peer that does not sign the fresh nonce this node sent under the key the genesis gives the
member it names (``node.peerauth``: an outsider, or an impostor). A peer proving it holds
this node's own member's key means a second process runs this member (a standby left
running, a copied data folder), and one of the two would sign a vote twice, so
``on_duplicate`` stops this node. The ``Exchange`` stream then opens with a hello that
signs the challenge the reply carried (``peerauth.link_hello``): the peer reads the stream
only so. A peer of an earlier version proves nothing this way, and is not linked to.

Items are serialized ``PeerEnvelope`` bytes, built once by the caller for all peers (a
block of 2,000 records is about 1 MB: copying and serializing it per peer cost more CPU
than anything else in the send path). Protobuf's wire format merges concatenated
messages, appending repeated fields in order, so the queued items of one wake-up are sent
as their concatenation; only evidence (a singular field) is sent on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from node.errors import ReplicationError
from node.peerauth import (
    CHALLENGE_BYTES,
    HELLO_NONCE_BYTES,
    LinkKeys,
    link_hello,
    reply_proves,
)
from node.tls import aio_channel, tls_hint
from proto import consensus_pb2, services_pb2, services_pb2_grpc, types_pb2

log = logging.getLogger("suyuan.peers")

KEEPALIVE_MS = 10_000  # a link's keepalive ping period (``node.main.server_options`` too)
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.enable_retries", 0),
    # a restarted peer is redialled within a second: gRPC's default reconnect backoff grows
    # to 120 s, and an RPC on a channel in backoff fails at once without trying (seen: a
    # node reconnected 2.5 minutes after its peer came back, while the others took 1 s)
    # (not grpc.min_reconnect_backoff_ms: gRPC reads it as the shortest connect timeout)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]
_QUEUE_LIMIT = 20_000
REFUSED_RETRY_S = 30.0  # a peer refused for its chain or member is asked again this often
UNREACHABLE_WARN_S = 30  # a peer that has not answered this long is named once, as a warning
POLL_S = 5.0  # a validator asks each linked peer's status this often (a follower: every 1 s)
SILENT_S = 3 * POLL_S  # a linked peer that has not answered this long is not "connected"
_MAX_BATCH_RECORDS = 2_000


@dataclass
class PeerInfo:
    address: str
    member: str = ""
    height: int = 0
    connected: bool = False
    sent: int = 0
    dropped: int = 0
    answered: float = 0.0  # monotonic time of its last PeerStatus answer (``responsive``)
    problem: str = ""  # why this node does not link to it (another chain...; "": none)

    def responsive(self, now: float) -> bool:
        """Linked, and answered a PeerStatus lately: a paused (hung) peer keeps its stream
        open for a while, but stops answering (QA: one showed as connected for 100 s)."""
        return self.connected and now - self.answered < SILENT_S


_MAX_SEND_BYTES = 8 * 1024 * 1024  # one PeerEnvelope at most (items are not split)


def consensus_item(msg: consensus_pb2.ConsensusMessage) -> bytes:
    """A queued item carrying one consensus message (serialize once, send to every peer)."""
    return services_pb2.PeerEnvelope(consensus=[msg]).SerializeToString()


def records_item(records: list[types_pb2.Envelope]) -> bytes:
    return services_pb2.PeerEnvelope(records=records).SerializeToString()


def evidence_item(ev: consensus_pb2.Evidence) -> bytes:
    return services_pb2.PeerEnvelope(evidence=ev).SerializeToString()


@dataclass(frozen=True, slots=True)
class _Item:
    raw: bytes
    mergeable: bool = True


class PeerLink:
    def __init__(
        self,
        address: str,
        hello: services_pb2.Hello,
        keys: LinkKeys,
        on_connect: Callable[[PeerInfo], None] | None = None,
        *,
        on_duplicate: Callable[[str], None] | None = None,
        expected: str = "",
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """``keys`` prove this node's member and check the peer's; ``on_connect(info)`` runs
        each time the peer answers its status (height known); ``on_duplicate(reason)`` when a
        peer proves it holds this node's member's key, i.e. another process runs it."""
        self.address = address
        self.info = PeerInfo(address)
        self._hello = hello
        self._keys = keys
        self._expected = expected  # the member the config names at this address ("": any)
        self._on_connect = on_connect
        self._on_duplicate = on_duplicate
        self._problem = ""  # the last reason this peer was refused (logged once)
        self._stream_refusal = ""  # the last reason the peer refused this node's stream
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=_QUEUE_LIMIT)
        self._channel = aio_channel(address, credentials, GRPC_OPTIONS)  # (TLS: node.tls)
        self._tls = credentials is not None
        self.stub = services_pb2_grpc.PeerStub(self._channel)
        # Exchange with pre-serialized requests (the items are PeerEnvelope bytes)
        self._exchange = self._channel.stream_unary(
            "/suyuan.v1.Peer/Exchange",
            request_serializer=None,
            response_deserializer=services_pb2.PeerAck.FromString,
        )
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.info.answered = time.monotonic()  # (a peer silent this long is named: ``_silent``)
        self._warned = False

    async def get_records(
        self, leaf_hashes: list[bytes], max_bytes: int, timeout: float
    ) -> list[types_pb2.Envelope]:
        """``Peer.GetRecords``; an answer over ``max_bytes`` (the channel admits 256 MiB
        for sync) is refused unparsed, and one with more envelopes than hashes asked is
        cut there. Raises ``grpc.aio.AioRpcError``, or ``ReplicationError`` for an
        oversize or unparsable answer."""
        refused: list[str] = []

        def parse(raw: bytes) -> services_pb2.GetRecordsResponse | None:
            if len(raw) > max_bytes:
                refused.append(f"an answer of {len(raw)} bytes (at most {max_bytes})")
                return None
            try:
                return services_pb2.GetRecordsResponse.FromString(raw)
            except DecodeError:
                refused.append("an answer that does not parse")
                return None

        call = self._channel.unary_unary(
            "/suyuan.v1.Peer/GetRecords",
            request_serializer=services_pb2.GetRecordsRequest.SerializeToString,
            response_deserializer=parse,
        )
        req = services_pb2.GetRecordsRequest(leaf_hashes=leaf_hashes)
        resp = await call(req, timeout=timeout)
        if resp is None:
            raise ReplicationError(f"GetRecords from {self.info.address}: {refused[0]}")
        return list(resp.envelopes[: len(leaf_hashes)])

    def set_height(self, height: int) -> None:
        self._hello.height = height

    async def poll_height(self) -> None:
        """Ask the peer its height (``PeerStatus``, 2 s) while linked. A node that no
        validator dials (a non-validator following the chain) hears of new blocks no other
        way; a validator learns that the peer still answers (``PeerInfo.responsive``) and
        its height on an idle chain. Failures are left to the link's own loop."""
        if not self.info.connected:
            return
        request, nonce = self._ask()
        try:
            reply = await self.stub.PeerStatus(request, timeout=2.0)
        except grpc.aio.AioRpcError:
            if self.info.connected:  # (QA: a paused peer, its link still open, went unnamed)
                self._silent("though its link is open: paused or hung?")
            return
        if not self._refusal(reply, nonce)[1]:
            self.info.height = max(self.info.height, reply.height)
            self.info.answered = time.monotonic()
            if self._warned:
                self._warned = False
                self.info.problem = ""  # (review: "has not answered" outlived the pause)
                log.info("peer %s answers again", self.address)

    def _silent(self, why: str) -> None:
        """Name the peer once, as a warning, when it has not answered for
        ``UNREACHABLE_WARN_S`` (since its last answer, or since this link began)."""
        silent = time.monotonic() - self.info.answered
        if not self._warned and silent >= UNREACHABLE_WARN_S:
            self._warned = True
            log.warning("peer %s has not answered for %d s %s", self.address, int(silent), why)
            # (``node status`` shows it, as it shows a refused peer; QA-T: it said nothing)
            self.info.problem = f"peer {self.address} has not answered for {int(silent)} s {why}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"peer {self.address}")

    async def close(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._channel.close(grace=0.2)

    def send(self, item: bytes) -> None:
        """Queue a ``consensus_item`` or ``records_item`` (sent merged with others)."""
        self._put(_Item(item))

    def send_evidence(self, item: bytes) -> None:
        """Queue an ``evidence_item`` (sent as a message of its own)."""
        self._put(_Item(item, mergeable=False))

    def _put(self, item: _Item) -> None:
        if not self.info.connected:
            self.info.dropped += 1
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.info.dropped += 1

    async def _envelopes(self, hello: services_pb2.Hello) -> AsyncIterator[bytes]:
        yield services_pb2.PeerEnvelope(hello=hello).SerializeToString()
        while not self._stopping:
            first = await self._queue.get()
            items = [first]
            while not self._queue.empty() and len(items) < 5_000:
                items.append(self._queue.get_nowait())
            parts: list[bytes] = []
            size = 0
            for it in items:
                if not it.mergeable:  # sent alone, after what was queued before it
                    if parts:
                        self.info.sent += len(parts)
                        yield b"".join(parts)
                        parts, size = [], 0
                    yield it.raw
                    continue
                if parts and size + len(it.raw) > _MAX_SEND_BYTES:
                    yield b"".join(parts)
                    parts, size = [], 0
                parts.append(it.raw)
                size += len(it.raw)
            if parts:
                self.info.sent += len(parts)
                yield b"".join(parts)

    def _ask(self) -> tuple[services_pb2.Hello, bytes]:
        """A ``PeerStatus`` request: this node's hello with a fresh nonce for the reply to sign."""
        nonce = os.urandom(HELLO_NONCE_BYTES)
        request = services_pb2.Hello()
        request.CopyFrom(self._hello)
        request.nonce = nonce
        return request, nonce

    def _refusal(self, reply: services_pb2.Hello, nonce: bytes) -> tuple[int, str]:
        """Why this node must not link to a peer that answered ``reply`` to a request that
        carried ``nonce``, or "", with the logging level to say it at: a node dialling
        itself goes on, so that is a warning (QA: an ERROR misled), the rest errors."""
        keys = self._keys
        who = reply.member
        if reply.genesis_hash != keys.genesis_hash:
            return logging.ERROR, (
                f"peer {self.address} is on another chain (genesis "
                f"{bytes(reply.genesis_hash).hex()}, this node's {keys.genesis_hash.hex()}):"
                " not linking to it"
            )
        if reply.instance and reply.instance == self._hello.instance:
            return logging.WARNING, (
                f"peer {self.address} is this very node (its own address, spelled another "
                "way, among its peers): not linking to it"
            )
        if who and who == keys.member:
            if reply_proves(reply, nonce, keys.public_key):
                reason = (
                    f"peer {self.address} proved it holds {who!r}'s key, this node's "
                    "own: two processes run one member's key and one would sign a vote twice; "
                    "this one stops (run only one of them)"
                )
                if self._on_duplicate is not None:
                    self._problem = reason  # (said once, by the node as it stops; QA)
                    self._on_duplicate(reason)
                return logging.ERROR, reason
            return logging.ERROR, (
                f"peer {self.address} answers as {who!r}, this node's own member, "
                "without proving it holds the key: not linking to it"
            )
        public_key = keys.key_of(who) if who else None
        if public_key is None:
            return logging.ERROR, (
                f"peer {self.address} answers as {who!r}, no member of this consortium: "
                "not linking to it"
            )
        if not reply_proves(reply, nonce, public_key):
            return logging.ERROR, (
                f"peer {self.address} answers as {who!r} without proving it holds {who!r}'s "
                "key (an impostor, or a node of an earlier version: every node of a "
                "consortium runs one version): not linking to it"
            )
        if self._expected and who != self._expected:
            return logging.ERROR, (
                f"peer {self.address} answers as {who!r}, where `peers` names "
                f"{self._expected!r}: not linking to it (is the address right?)"
            )
        if len(reply.challenge) != CHALLENGE_BYTES:
            return logging.ERROR, (
                f"peer {self.address} ({who!r}) issued no link challenge (a node of an "
                "earlier version? every node of a consortium runs one version): not linking "
                "to it"
            )
        return logging.NOTSET, ""

    def _refuse(self, level: int, problem: str) -> None:
        """Say ``problem`` once (then it is retried slowly: the operator must act)."""
        if problem != self._problem:
            log.log(level, "%s", problem)
            self._problem = problem
        self.info.connected = False
        self.info.problem = problem

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                request, nonce = self._ask()
                reply = await self.stub.PeerStatus(request, timeout=2.0)
                level, problem = self._refusal(reply, nonce)
                if problem:
                    self._refuse(level, problem)
                    await asyncio.sleep(REFUSED_RETRY_S)
                    continue
                who = reply.member
                self._problem = ""
                self.info.problem = ""
                self.info.member = who
                self.info.height = reply.height
                self.info.connected = True
                self.info.answered = time.monotonic()
                self._warned = False
                backoff = 0.05
                if self._on_connect is not None:
                    self._on_connect(self.info)
                log.info(
                    "connected to %s (%s at height %d)", self.address, reply.member, reply.height
                )
                hello = link_hello(self._hello, self._keys, who, bytes(reply.challenge))
                await self._exchange(self._envelopes(hello))
                self._stream_refusal = ""
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                    problem = (
                        f"peer {self.address} does not take this node's link: "
                        f"{(e.details() or '').strip()[:300]}"
                    )
                    # once at once (the peer may have restarted between the two calls, and
                    # its new process did not issue the challenge), then slowly
                    again = problem == self._stream_refusal
                    self._stream_refusal = problem
                    if not again:
                        log.error("%s", problem)
                    self.info.connected = False
                    self.info.problem = problem
                    backoff = REFUSED_RETRY_S if again else 1.0
                elif self.info.connected:
                    self._stream_refusal = ""  # (a stream that ran, then ended: review)
                    log.info("lost %s: %s", self.address, e.code().name)
                else:  # (QA: a typo in `peers` was never logged)
                    detail = (e.details() or "").splitlines()[0][:160] if e.details() else ""
                    tls = tls_hint(e.details() or "", self._tls, "the [tls] ca_file")
                    if tls and self._tls:  # (a setting to mend, not a peer down: at once)
                        self._refuse(logging.ERROR, f"peer {self.address}: {tls}")
                    else:  # (a plain node's "Socket closed" may be a restart: as usual)
                        self._silent(
                            f"({e.code().name}{f': {detail}' if detail else ''}): "
                            + (tls or "is it running, and is its address in `peers` right?")
                        )
            except Exception:
                log.exception("peer link %s failed", self.address)
            self.info.connected = False
            while not self._queue.empty():
                self._queue.get_nowait()
            await asyncio.sleep(backoff)  # reconnect backoff, not synchronisation
            backoff = min(backoff * 2, 1.0)
