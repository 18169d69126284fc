"""Compact proposals against real nodes (in-process, real gRPC on loopback): a validator
lacking a proposal's records fetches them from its peers with Peer.GetRecords and hands the
replica the proposer's block byte for byte; one that cannot find them delivers nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from consensus.events import MessageReceived
from consensus.messages import Proposal, block_hash_of
from consensus.signing import Ed25519Signer, sign_proposal
from node import compact as compact_module
from node import proposals
from node.chain import EXTRA_DBS, ChainState
from node.compact import envelope_leaf_hash, to_compact
from node.errors import InputError
from node.node import STUCK_SYNC_S, Node
from node.proposals import Rebuilt
from node.store import Store
from proto import consensus_pb2, services_pb2, services_pb2_grpc, types_pb2
from tests.fixtures import genesis, key
from tests.node.livenode import (
    Live,
    config,
    exchange,
    live_node,
    rpc_error,
    run,
    signed,
    solo_genesis,
)

G = genesis()  # four validators; the live nodes never commit, so records stay pending


def _proposal(
    tmp_path: Path, live: Live, envs: list[types_pb2.Envelope]
) -> tuple[consensus_pb2.Proposal, types_pb2.Block]:
    """v1's compact proposal at height 1, round 0 (v1 proposes first) carrying ``envs``."""
    store = Store.open(tmp_path / "proposer", G.hash, extra_dbs=EXTRA_DBS)
    try:
        ch = ChainState(store, G)
        block, dropped = ch.build_block(1, 0, "v1", [(e, ch.verify(e)) for e in envs])
        assert not dropped
        signer = Ed25519Signer("v1", key("v1").signing_key)
        prop = sign_proposal(signer, live.node.ctx, 1, 0, -1, block_hash_of(block))
        pb = prop.to_proto(with_block=False)
        pb.compact.CopyFrom(to_compact(block, ch.leaf_hashes(block)))
        return pb, block
    finally:
        store.close()


async def _send(live: Live, proposal: consensus_pb2.Proposal) -> None:
    msg = consensus_pb2.ConsensusMessage(proposal=proposal)
    await exchange(live, G, "v1", [services_pb2.PeerEnvelope(consensus=[msg])])


async def _until(cond: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not cond():
        assert loop.time() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)  # poll the condition until the deadline


def _gave_up_and_synced(node: Node) -> bool:
    return node._sync_task is not None and not node.bodies.fetching


def test_missing_records_are_fetched_from_a_peer(tmp_path: Path) -> None:
    envs = [signed(G, f"urn:live:{i}") for i in range(3)]

    async def body() -> None:
        async with live_node(config(tmp_path, "v3"), G) as holder:
            for e in envs:  # pending at the holder only
                await holder.stub.Submit(services_pb2.SubmitRequest(envelope=e), timeout=10)
            cfg = config(tmp_path, "v2", peers=[holder.address])
            async with live_node(cfg, G) as validator:
                # one of the three is already in the validator's mempool, two are not
                await validator.stub.Submit(
                    services_pb2.SubmitRequest(envelope=envs[1]), timeout=10
                )
                pb, block = _proposal(tmp_path, validator, envs)
                bh = block_hash_of(block)
                await _send(validator, pb)
                await _until(lambda: bh in validator.node.bodies.rebuilt, "the block is rebuilt")
                rebuilt = validator.node.bodies.rebuilt[bh].block
                assert rebuilt.SerializeToString() == block.SerializeToString()
                known = validator.node.bodies.rebuilt[bh].known
                assert [k is not None for k in known] == [False, True, False]

    run(body)


def test_records_no_peer_holds_deliver_nothing(tmp_path: Path) -> None:
    envs = [signed(G, "urn:live:nowhere")]

    async def body() -> None:
        async with live_node(config(tmp_path, "v3"), G) as holder:  # holds nothing
            cfg = config(tmp_path, "v2", peers=[holder.address])
            async with live_node(cfg, G) as validator:
                pb, block = _proposal(tmp_path, validator, envs)
                bh = block_hash_of(block)
                assert validator.node._sync_task is None
                await _send(validator, pb)
                # the fetch found nothing at the one peer, so the node turned to sync
                await _until(lambda: _gave_up_and_synced(validator.node), "the fetch ends")
                assert bh not in validator.node.bodies.rebuilt

    run(body)


def test_compact_blocks_that_are_not_the_signed_one_are_ignored(tmp_path: Path) -> None:
    envs = [signed(G, "urn:live:x"), signed(G, "urn:live:y")]

    async def body() -> None:
        async with live_node(config(tmp_path, "v2"), G) as validator:
            for e in envs:
                await validator.stub.Submit(services_pb2.SubmitRequest(envelope=e), timeout=10)
            good, block = _proposal(tmp_path, validator, envs[:1])
            bh = block_hash_of(block)
            bodies = validator.node.bodies
            # a header that does not hash to the signed block hash
            bad = consensus_pb2.Proposal()
            bad.CopyFrom(good)
            bad.compact.header = bad.compact.header + b"\x00"
            # the signed proposal re-wrapped with another pending record's hash
            other = consensus_pb2.Proposal()
            other.CopyFrom(good)
            other.compact.leaf_hashes[0] = validator.node.mempool.items()[1].verified.leaf_hash
            # signed by a validator that is not this round's proposer
            forged = consensus_pb2.Proposal()
            forged.CopyFrom(good)
            forged.proposer = "v2"
            for wrong in (bad, other, forged):
                await _send(validator, wrong)
                # the Exchange call returned: its messages were handled
                assert not bodies.rebuilt
                assert not bodies.fetching
            await _send(validator, good)  # and the real one still gets through
            assert bodies.rebuilt[bh].block.SerializeToString() == block.SerializeToString()

    run(body)


def test_get_records_answers_pending_envelopes_by_leaf_hash(tmp_path: Path) -> None:
    env = signed(G, "urn:live:get")

    async def body() -> None:
        async with live_node(config(tmp_path, "v2"), G) as live:
            await live.stub.Submit(services_pb2.SubmitRequest(envelope=env), timeout=10)
            lh = live.node.mempool.items()[0].verified.leaf_hash
            peer = services_pb2_grpc.PeerStub(live.channel)
            got = await peer.GetRecords(
                services_pb2.GetRecordsRequest(leaf_hashes=[lh, b"\x07" * 32]), timeout=10
            )
            assert [e.SerializeToString() for e in got.envelopes] == [env.SerializeToString()]
            twice = await peer.GetRecords(
                services_pb2.GetRecordsRequest(leaf_hashes=[lh] * 50), timeout=10
            )
            assert len(twice.envelopes) == 1  # each hash answered once
            too_many = [b"\x01" * 32] * (G.consensus.max_block_records + 1)
            err = await rpc_error(
                peer.GetRecords(services_pb2.GetRecordsRequest(leaf_hashes=too_many), timeout=10)
            )
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "at most" in (err.details() or "")

    run(body)


def test_get_records_still_serves_a_just_committed_block(tmp_path: Path) -> None:
    # a slower validator may resolve a proposal after the others committed it
    g = solo_genesis()
    env = signed(g, "urn:live:committed")

    async def body() -> None:
        async with live_node(config(tmp_path, "v0"), g) as live:
            resp = await live.stub.Submit(
                services_pb2.SubmitRequest(envelope=env, wait=True), timeout=30
            )
            assert resp.committed
            assert not live.node.mempool.items()
            peer = services_pb2_grpc.PeerStub(live.channel)
            got = await peer.GetRecords(
                services_pb2.GetRecordsRequest(leaf_hashes=[envelope_leaf_hash(env)]), timeout=10
            )
            assert [e.SerializeToString() for e in got.envelopes] == [env.SerializeToString()]

    run(body)


def test_a_body_other_than_the_rebuilt_one_is_verified_in_full(tmp_path: Path) -> None:
    # a Byzantine proposer could send the same header with other envelope bytes as a full
    # block: the records this node verified must not stand in for them
    envs = [signed(G, "urn:live:byz")]
    cfg = config(tmp_path, "v2")
    cfg.data_dir.mkdir(parents=True)
    store = Store.open(cfg.data_dir / "store", G.hash, extra_dbs=EXTRA_DBS)
    try:
        node = Node(cfg, G, key("v2"), store)
        prop = ChainState(Store.open(tmp_path / "p", G.hash, extra_dbs=EXTRA_DBS), G)
        block, _ = prop.build_block(1, 0, "v1", [(e, prop.verify(e)) for e in envs])
        bh = block_hash_of(block)
        c = to_compact(block, prop.leaf_hashes(block))
        node.bodies.rebuilt[bh] = Rebuilt(block, [node.chain.verify(block.envelopes[0])], c, {})
        forged = types_pb2.Block()
        forged.CopyFrom(block)
        forged.envelopes[0].signatures[0].sig = bytes(64)
        assert block_hash_of(forged) == bh
        assert node._validate(forged) is False
        assert node._validate(block) is True
    finally:
        prop.store.close()
        store.close()


def test_a_full_block_that_cannot_be_named_compactly_is_relayed_as_it_came(
    tmp_path: Path,
) -> None:
    # a peer's full-block proposal with a malformed envelope: relaying it must not raise in
    # the consensus loop (the replica relays before it validates)
    cfg = config(tmp_path, "v2")
    cfg.data_dir.mkdir(parents=True)
    store = Store.open(cfg.data_dir / "store", G.hash, extra_dbs=EXTRA_DBS)
    try:
        node = Node(cfg, G, key("v2"), store)
        block = types_pb2.Block(header=b"h", envelopes=[types_pb2.Envelope(payload=b"x")])
        signer = Ed25519Signer("v1", key("v1").signing_key)
        prop = sign_proposal(signer, node.ctx, 1, 0, -1, block_hash_of(block), block)
        out = proposals.wire(node, prop)
        assert out.proposal.HasField("block")
        assert not out.proposal.HasField("compact")
    finally:
        store.close()


@pytest.fixture
def offline(tmp_path: Path) -> Iterator[tuple[Node, ChainState]]:
    """A validator node that is not started (its replica is None), and a proposer's chain."""
    cfg = config(tmp_path, "v2")
    cfg.data_dir.mkdir(parents=True)
    node = Node(cfg, G, key("v2"), Store.open(cfg.data_dir / "store", G.hash, extra_dbs=EXTRA_DBS))
    prop = ChainState(Store.open(tmp_path / "p", G.hash, extra_dbs=EXTRA_DBS), G)
    try:
        yield node, prop
    finally:
        prop.store.close()
        node.store.close()


def _first_block(prop: ChainState, code: str) -> types_pb2.Block:
    """v1's block at height 1 with one record commissioning ``code``."""
    env = signed(G, code)
    block, _ = prop.build_block(1, 0, "v1", [(env, prop.verify(env))])
    return block


def _signed_full(node: Node, height: int, block: types_pb2.Block):
    proposer = node.chain.validators.proposer(height, 0)
    signer = Ed25519Signer(proposer, key(proposer).signing_key)
    return sign_proposal(signer, node.ctx, height, 0, -1, block_hash_of(block), block)


def _delivered(node: Node) -> list[types_pb2.Block]:
    out = []
    while not node.events.empty():
        ev = node.events.get_nowait()
        assert isinstance(ev, MessageReceived)
        assert isinstance(ev.message, Proposal)
        assert ev.message.block is not None
        out.append(ev.message.block)
    return out


def test_a_body_whose_leaves_do_not_give_the_log_root_never_reaches_the_replica(
    offline: tuple[Node, ChainState],
) -> None:
    # a relayer re-wraps the signed proposal with another signature on the same payload:
    # same record ids (records_hash agrees), other leaves; delivered first, the replica
    # would refuse the block for good and drop the real body as a duplicate
    node, prop = offline
    block = _first_block(prop, "urn:live:swap")
    junk = types_pb2.Block()
    junk.CopyFrom(block)
    junk.envelopes[0].signatures[0].sig = bytes(64)
    assert block_hash_of(junk) == block_hash_of(block)
    with pytest.raises(InputError, match="log root"):
        proposals.on_full(node, _signed_full(node, 1, junk))
    assert _delivered(node) == []
    proposals.on_full(node, _signed_full(node, 1, block))
    [got] = _delivered(node)
    assert got.SerializeToString() == block.SerializeToString()
    # records that came with a body (or were fetched) are served to peers in turn
    assert proposals.serve(node, [envelope_leaf_hash(block.envelopes[0])]) == [block.envelopes[0]]


def test_a_proposal_for_a_later_height_is_held_until_the_head_gets_there(
    offline: tuple[Node, ChainState],
) -> None:
    node, prop = offline
    e1, e2 = signed(G, "urn:live:h1"), signed(G, "urn:live:h2")
    b1, _ = prop.build_block(1, 0, "v1", [(e1, prop.verify(e1))])
    cert1 = types_pb2.CommitCertificate(height=1, block_hash=block_hash_of(b1))
    prop.commit(prop.validate_block(b1), cert1)
    proposer2 = node.chain.validators.proposer(2, 0)
    b2, _ = prop.build_block(2, 0, proposer2, [(e2, prop.verify(e2))])
    proposals.on_full(node, _signed_full(node, 2, b2))
    assert _delivered(node) == []  # its parent's log is not known here yet
    assert len(node.bodies.held) == 1
    node.chain.commit(node.chain.validate_block(b1), cert1)
    proposals.release(node)  # what Node._commit does after each commit
    [got] = _delivered(node)
    assert got.SerializeToString() == b2.SerializeToString()
    assert not node.bodies.held


def test_a_node_seeing_f_plus_one_past_its_head_syncs_after_a_while(
    offline: tuple[Node, ChainState], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the block they decided may be one this node can never rebuild (its proposer crashed
    # holding records no one else kept): after STUCK_SYNC_S it is fetched certified
    node, _ = offline

    class Replica:
        ahead = True

        def seen_ahead(self) -> bool:
            return self.ahead

    replica = Replica()
    monkeypatch.setattr(node, "replica", replica)

    async def check() -> None:
        loop = asyncio.get_running_loop()
        now = [1000.0]
        monkeypatch.setattr(loop, "time", lambda: now[0])
        assert not node._stuck(5)  # the clock starts
        now[0] += STUCK_SYNC_S - 0.1
        assert not node._stuck(5)
        now[0] += 0.2
        assert node._stuck(5)
        assert not node._stuck(5)  # and starts again
        now[0] += 2 * STUCK_SYNC_S
        assert not node._stuck(6)  # the head moved: not stuck, the clock restarts
        replica.ahead = False
        now[0] += 2 * STUCK_SYNC_S
        assert not node._stuck(6)

    asyncio.run(check())


def _compact_of_full(node: Node, msg: Proposal) -> consensus_pb2.CompactBlock:
    assert msg.block is not None
    return to_compact(msg.block, [envelope_leaf_hash(pb) for pb in msg.block.envelopes])


def test_relayed_variants_cannot_push_out_a_held_proposal(offline: tuple[Node, ChainState]) -> None:
    node, prop = offline
    e1, e2 = signed(G, "urn:live:v1"), signed(G, "urn:live:v2")
    b1, _ = prop.build_block(1, 0, "v1", [(e1, prop.verify(e1))])
    cert1 = types_pb2.CommitCertificate(height=1, block_hash=block_hash_of(b1))
    prop.commit(prop.validate_block(b1), cert1)
    b2, _ = prop.build_block(2, 0, node.chain.validators.proposer(2, 0), [(e2, prop.verify(e2))])
    honest = _signed_full(node, 2, b2)
    proposals.on_full(node, honest)
    bare = replace(honest, block=None)
    for i in range(3 * proposals.KEPT):  # the signed header re-wrapped with junk leaves
        junk = _compact_of_full(node, honest)
        junk.leaf_hashes[0] = bytes([i % 256]) * 32
        proposals.on_compact(node, bare, junk)
    [(key, variants)] = node.bodies.held.items()
    assert key == (2, 0, block_hash_of(b2))
    assert len(variants) == proposals.HELD_VARIANTS
    assert variants[0][2] is not None  # the honest full body, which came first
    node.chain.commit(node.chain.validate_block(b1), cert1)
    proposals.release(node)
    [got] = _delivered(node)
    assert got.SerializeToString() == b2.SerializeToString()
    # a proposal for a height decided here is not held
    proposals.on_full(node, _signed_full(node, 1, b1))
    assert not node.bodies.held
    assert _delivered(node) == []


def test_a_rewrapped_compact_proposal_for_the_next_height_is_refused(
    offline: tuple[Node, ChainState],
) -> None:
    node, prop = offline
    block = _first_block(prop, "urn:live:rewrap")
    honest = _signed_full(node, 1, block)
    junk = _compact_of_full(node, honest)
    junk.leaf_hashes[0] = b"\x05" * 32
    with pytest.raises(InputError, match="log root"):
        proposals.on_compact(node, replace(honest, block=None), junk)
    assert _delivered(node) == []
    assert not node.bodies.fetching


def test_a_full_proposal_is_checked_cheaply_before_its_envelopes_are_hashed(
    offline: tuple[Node, ChainState], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, prop = offline
    block = _first_block(prop, "urn:live:cheap")

    def never(pb: types_pb2.Envelope) -> bytes:
        raise AssertionError("hashed before the cheap checks")

    monkeypatch.setattr(compact_module, "envelope_leaf_hash", never)
    forged = replace(_signed_full(node, 1, block), signature=bytes(64))
    with pytest.raises(InputError, match="bad signature"):
        proposals.on_full(node, forged)
    huge = types_pb2.Block()
    huge.CopyFrom(block)
    for _ in range(G.consensus.max_block_records):
        huge.envelopes.add().CopyFrom(block.envelopes[0])
    with pytest.raises(InputError, match="records"):
        proposals.on_full(node, _signed_full(node, 1, huge))


def test_release_never_raises_into_the_consensus_loop(
    offline: tuple[Node, ChainState], monkeypatch: pytest.MonkeyPatch
) -> None:
    node, prop = offline
    e1 = signed(G, "urn:live:r1")
    b1, _ = prop.build_block(1, 0, "v1", [(e1, prop.verify(e1))])
    node.bodies.held[(1, 0, block_hash_of(b1))] = [(_signed_full(node, 1, b1), None, None)]  # type: ignore[list-item]

    def boom(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(proposals, "on_compact", boom)
    proposals.release(node)  # logged, not raised
    assert not node.bodies.held


def test_an_oversize_field_is_an_input_error_not_a_struct_error() -> None:
    env = signed(G, "urn:live:wide")
    env.signatures[0].sig = b"\x01" * 70_000
    with pytest.raises(InputError, match="too large to be a log entry"):
        envelope_leaf_hash(env)


def test_fetches_nearest_the_replica_are_kept_first() -> None:
    now = (10, 2)
    order = sorted(
        [(9, 5, b""), (10, 1, b""), (10, 2, b""), (10, 3, b""), (11, 0, b""), (12, 0, b"")],
        key=lambda k: proposals._distance(k, now),
    )
    assert order[0] == (10, 2, b"")  # the replica's own slot
    assert order[-2:] == [(10, 1, b""), (9, 5, b"")]  # slots already passed go first
