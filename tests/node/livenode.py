"""An in-process node behind a real gRPC server on loopback, for service-level tests.

``live_node`` starts ``node.node.Node`` with the real ``LedgerService`` and ``PeerService``
(the same wiring as ``node.main.serve``, without signals or health) and stops all of it on
exit. With ``solo_genesis`` the node is the only validator and commits on its own; with the
four-validator test genesis it never commits, so submitted records stay pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from node.chain import EXTRA_DBS
from node.config import NodeConfig
from node.genesis import ConsensusParams, Genesis, Member
from node.grpc_errors import MalformedRequests
from node.main import server_options
from node.node import Node, data_path
from node.peerauth import HELLO_NONCE_BYTES, LinkKeys, link_hello
from node.records import make_record, sign_record
from node.service import LedgerService, PeerService
from node.store import Store
from proto import services_pb2, services_pb2_grpc, types_pb2
from tests.fixtures import MEMBERS, key, object_event

T = TypeVar("T")


def solo_genesis() -> Genesis:
    """The test members with v0 as the only validator (n=1: it commits alone)."""
    members = [Member(n, roles, key(n).public_key) for n, roles in MEMBERS.items()]
    return Genesis.build("suyuan-solo", members, ["v0"], ConsensusParams(timeout_propose_ms=300))


@dataclass
class Live:
    node: Node
    address: str
    stub: services_pb2_grpc.LedgerStub
    channel: grpc.aio.Channel


def config(tmp_path: Path, member: str = "v0", **sections: Any) -> NodeConfig:
    doc: dict[str, Any] = {
        "member": member,
        "key_file": "k",
        "genesis": "g",
        "data_dir": str(tmp_path / f"node-{member}"),
        "listen": "127.0.0.1:1",
        **sections,
    }
    return NodeConfig.from_dict(doc, base=tmp_path)


@asynccontextmanager
async def live_node(cfg: NodeConfig, genesis: Genesis) -> AsyncIterator[Live]:
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(data_path(cfg), genesis.hash, extra_dbs=EXTRA_DBS)
    node = Node(cfg, genesis, key(cfg.member), store)
    server = grpc.aio.server(  # as node.main.serve
        options=server_options(genesis), interceptors=[MalformedRequests()]
    )
    ledger, peer = LedgerService(node), PeerService(node)
    services_pb2_grpc.add_LedgerServicer_to_server(ledger, server)
    services_pb2_grpc.add_PeerServicer_to_server(peer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await node.start()
        address = f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(address) as channel:
            yield Live(node, address, services_pb2_grpc.LedgerStub(channel), channel)
    finally:
        await server.stop(0)
        ledger.close()
        peer.close()
        await node.stop()
        store.close()


def signed(genesis: Genesis, code: str, author: str = "farm", **kw: Any) -> types_pb2.Envelope:
    from node.convert import envelope_to_proto

    rec = make_record(genesis, author, object_event([code]), category="meat", **kw)
    return envelope_to_proto(sign_record(rec, key(author)))


def spy_votes(node: Node) -> list[int]:
    """The heights of the votes that reach ``node``'s consensus loop from now on (a list
    that fills as they arrive; the node still handles them)."""
    seen: list[int] = []
    real = node.on_peer_messages

    def spy(msgs: Any) -> None:
        seen.extend(m.vote.height for m in msgs if m.HasField("vote"))
        real(msgs)

    node.on_peer_messages = spy  # type: ignore[method-assign]
    return seen


def link_keys(genesis: Genesis, member: str) -> LinkKeys:
    """``member``'s (its fixture key's) peer-link keys under ``genesis``."""

    k = key(member)
    return LinkKeys(genesis.hash, member, k.public_key, k.sign, genesis.public_key)


async def exchange(
    live: Live, genesis: Genesis, member: str, envs: list[services_pb2.PeerEnvelope]
) -> services_pb2.PeerAck:
    """Send ``envs`` on a ``Peer.Exchange`` stream opened as a node of ``member`` opens one:
    ``PeerStatus`` for a challenge, then a hello that signs it (node.peerauth)."""
    stub = services_pb2_grpc.PeerStub(live.channel)
    base = services_pb2.Hello(genesis_hash=genesis.hash, member=member)
    ask = services_pb2.Hello(genesis_hash=genesis.hash, member=member)
    ask.nonce = bytes(HELLO_NONCE_BYTES)
    reply = await stub.PeerStatus(ask, timeout=10)
    hello = link_hello(base, link_keys(genesis, member), reply.member, bytes(reply.challenge))
    ack: services_pb2.PeerAck = await stub.Exchange(
        iter([services_pb2.PeerEnvelope(hello=hello), *envs]), timeout=10
    )
    return ack


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error ``call`` fails with (the test fails if it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as e:
        return e
    raise AssertionError("the call succeeded")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(fn(), timeout=60))
