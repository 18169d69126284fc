"""Outgoing links to the other validators: one gRPC stream per peer, batched, reconnecting.

Each ``PeerLink`` owns an asyncio queue of items to send (consensus messages, gossiped
records, evidence) and one task that keeps a ``Peer.Exchange`` client stream open, sending
everything queued as one ``PeerEnvelope`` per wake-up. While the peer is unreachable items
are dropped (bounded queue): consensus re-broadcasts on a timer, and records reach a peer
through blocks anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from proto import consensus_pb2, services_pb2, services_pb2_grpc, types_pb2

log = logging.getLogger("suyuan.peers")

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.enable_retries", 0),
]
_QUEUE_LIMIT = 20_000
_MAX_BATCH_RECORDS = 2_000


@dataclass
class PeerInfo:
    address: str
    member: str = ""
    height: int = 0
    connected: bool = False
    sent: int = 0
    dropped: int = 0


@dataclass
class _Item:
    consensus: consensus_pb2.ConsensusMessage | None = None
    records: list[types_pb2.Envelope] = field(default_factory=list)
    evidence: consensus_pb2.Evidence | None = None


class PeerLink:
    def __init__(self, address: str, hello: services_pb2.Hello) -> None:
        self.address = address
        self.info = PeerInfo(address)
        self._hello = hello
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=_QUEUE_LIMIT)
        self._channel = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
        self.stub = services_pb2_grpc.PeerStub(self._channel)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def set_height(self, height: int) -> None:
        self._hello.height = height

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"peer {self.address}")

    async def close(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._channel.close(grace=0.2)

    def send_consensus(self, msg: consensus_pb2.ConsensusMessage) -> None:
        self._put(_Item(consensus=msg))

    def send_records(self, records: list[types_pb2.Envelope]) -> None:
        self._put(_Item(records=records))

    def send_evidence(self, ev: consensus_pb2.Evidence) -> None:
        self._put(_Item(evidence=ev))

    def _put(self, item: _Item) -> None:
        if not self.info.connected:
            self.info.dropped += 1
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.info.dropped += 1

    async def _envelopes(self) -> AsyncIterator[services_pb2.PeerEnvelope]:
        yield services_pb2.PeerEnvelope(hello=self._hello)
        while not self._stopping:
            first = await self._queue.get()
            env = services_pb2.PeerEnvelope()
            items = [first]
            while not self._queue.empty() and len(items) < 5_000:
                items.append(self._queue.get_nowait())
            nrec = 0
            for it in items:
                if it.consensus is not None:
                    env.consensus.append(it.consensus)
                if it.records:
                    env.records.extend(it.records)
                    nrec += len(it.records)
                if it.evidence is not None:
                    yield services_pb2.PeerEnvelope(evidence=it.evidence)
                if nrec >= _MAX_BATCH_RECORDS:
                    yield env
                    env = services_pb2.PeerEnvelope()
                    nrec = 0
            if env.consensus or env.records:
                self.info.sent += len(env.consensus) + len(env.records)
                yield env

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                reply = await self.stub.PeerStatus(self._hello, timeout=2.0)
                self.info.member = reply.member
                self.info.height = reply.height
                self.info.connected = True
                backoff = 0.05
                log.info(
                    "connected to %s (%s at height %d)", self.address, reply.member, reply.height
                )
                await self.stub.Exchange(self._envelopes())
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as e:
                if self.info.connected:
                    log.info("lost %s: %s", self.address, e.code().name)
            except Exception:
                log.exception("peer link %s failed", self.address)
            self.info.connected = False
            while not self._queue.empty():
                self._queue.get_nowait()
            await asyncio.sleep(backoff)  # reconnect backoff, not synchronisation
            backoff = min(backoff * 2, 1.0)
