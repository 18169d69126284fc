"""Block sync against in-process fake peers: forged blocks and wrong heights are refused,
the next peer is tried, and the consensus loop survives (issue #5, "Block sync")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from node.chain import EXTRA_DBS
from node.config import NodeConfig
from node.convert import envelope_to_proto
from node.node import Node, data_path
from node.peers import PeerInfo
from node.store import Store
from proto import services_pb2, types_pb2
from tests.fixtures import key
from tests.proofs.chainbuilder import ChainBuilder


class Stub:
    def __init__(self, blocks: list[types_pb2.CommittedBlock], height: int) -> None:
        self.blocks = blocks
        self.height = height
        self.pulls = 0

    def GetBlocks(
        self, request: services_pb2.GetBlocksRequest, timeout: float = 0
    ) -> AsyncIterator[types_pb2.CommittedBlock]:
        self.pulls += 1

        async def gen() -> AsyncIterator[types_pb2.CommittedBlock]:
            for cb in self.blocks:
                yield cb

        return gen()

    async def PeerStatus(
        self, request: services_pb2.Hello, timeout: float = 0
    ) -> services_pb2.Hello:
        return services_pb2.Hello(height=self.height)


class FakePeer:
    """Stands in for a ``PeerLink``: serves fixed blocks, ignores everything sent to it."""

    def __init__(self, address: str, blocks: list[types_pb2.CommittedBlock], height: int) -> None:
        self.address = address
        self.info = PeerInfo(address, member=address, height=height, connected=True)
        self.stub = Stub(blocks, height)

    def send(self, item: bytes) -> None:
        pass

    def send_evidence(self, ev: object) -> None:
        pass

    def set_height(self, height: int) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[ChainBuilder, list[types_pb2.CommittedBlock]]]:
    b = ChainBuilder(tmp_path / "src")
    b.commit([b.commission("urn:x:1")])
    b.commit([b.commission("urn:x:2")])
    blocks = b.committed_blocks()
    yield b, blocks
    b.close()


def _forged(b: ChainBuilder, cb: types_pb2.CommittedBlock, code: str) -> types_pb2.CommittedBlock:
    """The genuine header and certificate with another (validly signed) envelope."""
    forged = types_pb2.CommittedBlock()
    forged.CopyFrom(cb)
    del forged.block.envelopes[:]
    forged.block.envelopes.append(envelope_to_proto(b.commission(code)))
    return forged


def new_node(tmp_path: Path, b: ChainBuilder, helper_min_blocks: int = 32) -> Node:
    """A node of ``b``'s chain with an empty store, not started (its peers set by the test)."""
    cfg = NodeConfig.from_dict(
        {
            "member": "v1",
            "key_file": "k",
            "genesis": "g",
            "data_dir": str(tmp_path / "n"),
            "listen": "127.0.0.1:1",
            "sync": {"helper_min_blocks": helper_min_blocks},
        },
        base=tmp_path,
    )
    cfg.data_dir.mkdir()
    store = Store.open(data_path(cfg), b.genesis.hash, extra_dbs=EXTRA_DBS)
    return Node(cfg, b.genesis, key("v1"), store)


async def _sync_with(tmp_path: Path, b: ChainBuilder, peers: list[FakePeer]) -> Node:
    node = new_node(tmp_path, b)
    await node.start()
    node.peers = peers  # type: ignore[assignment]
    node.trigger_sync()
    assert node._sync_task is not None
    await asyncio.wait_for(node._sync_task, timeout=30)
    return node


async def _stop(node: Node) -> None:
    await node.stop()
    node.store.close()


def test_forged_block_is_refused_and_next_peer_used(
    tmp_path: Path, source: tuple[ChainBuilder, list[types_pb2.CommittedBlock]]
) -> None:
    b, blocks = source

    async def run() -> None:
        forger = FakePeer("forger", [_forged(b, blocks[0], "urn:x:9"), blocks[1]], 2)
        honest = FakePeer("honest", blocks, 2)
        forger.info.height = 3  # sorted first: the furthest ahead is asked first
        node = await _sync_with(tmp_path, b, [forger, honest])
        try:
            assert forger.stub.pulls == 1
            assert honest.stub.pulls == 1
            assert node.store.head().height == 2
            assert node.store.head().block_hash == b.store.head().block_hash
            consensus = node._tasks[0]
            assert not consensus.done(), consensus.exception()
        finally:
            await _stop(node)

    asyncio.run(run())


def test_wrong_height_is_refused_and_next_peer_used(
    tmp_path: Path, source: tuple[ChainBuilder, list[types_pb2.CommittedBlock]]
) -> None:
    b, blocks = source

    async def run() -> None:
        skipper = FakePeer("skipper", [blocks[1]], 3)  # serves height 2 when 1 is asked
        honest = FakePeer("honest", blocks, 2)
        node = await _sync_with(tmp_path, b, [skipper, honest])
        try:
            assert skipper.stub.pulls >= 1
            assert node.store.head().height == 2
            assert not node._tasks[0].done()
            assert skipper.info.height == 0
        finally:
            await _stop(node)

    asyncio.run(run())


def test_empty_pull_resets_the_claimed_height(
    tmp_path: Path, source: tuple[ChainBuilder, list[types_pb2.CommittedBlock]]
) -> None:
    b, _ = source

    async def run() -> None:
        boaster = FakePeer("boaster", [], 5)  # claims height 5, serves nothing
        boaster.stub.height = 0
        node = await _sync_with(tmp_path, b, [boaster])
        try:
            assert boaster.stub.pulls == 1
            assert boaster.info.height == 0  # housekeeping no longer sees a peer ahead
            assert node.store.head().height == 0
        finally:
            await _stop(node)

    asyncio.run(run())


def test_a_certified_block_failing_on_a_damaged_store_stops_the_node_naming_its_store(
    tmp_path: Path, source: tuple[ChainBuilder, list[types_pb2.CommittedBlock]]
) -> None:
    """QA-T: one damaged code state made a certified block fail here; the node blamed each
    peer in turn, for ever ("served block 1056 that fails"), and answered trace queries
    from the damaged state. The envelopes' leaves make the certified root, so the block is
    the validators' own: the node stops, exit 4, naming its store and the way out."""
    from node import custody
    from node.errors import StorageError

    b, blocks = source

    async def run() -> None:
        node = new_node(tmp_path, b)
        damaged = custody.CodeState(code="urn:x:2", commissioned_by="farm", custodian="farm")
        node.store.put_extra([(custody.DB_CUSTODY, b"urn:x:2", custody.encode_state(damaged))])
        await node.start()
        honest = FakePeer("honest", blocks, 2)
        node.peers = [honest]  # type: ignore[list-item]
        try:
            node.trigger_sync()
            assert node._sync_task is not None
            await asyncio.wait_for(node._sync_task, timeout=30)
            assert node.store.head().height == 1
            assert node.failure is not None
            assert node.failure.done()
            err = node.failure.result()
            assert isinstance(err, StorageError)
            assert "block 2, certified by the validators" in str(err)
            assert "suyuan node check" in str(err)
        finally:
            await _stop(node)

    asyncio.run(run())
