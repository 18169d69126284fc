"""The sync helper process: its decoded records equal the node's own parse, a bad block is
parsed (and refused) by the node itself, and a sync through a real helper process applies
the same blocks, refuses a forged one and leaves no process behind."""

from __future__ import annotations

import asyncio
import logging
import marshal
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from node.chain import parse_trusted
from node.convert import envelope_to_proto
from node.envelope import Envelope
from node.errors import InputError, LedgerError, RuleError
from node.node import Node
from node.records import VerifiedRecord, make_record, sign_record
from node.sync import _certified_records
from node.sync_helper import PIPE_BYTES, SyncHelper, decode, rebuild
from proto import services_pb2, types_pb2
from tests.fixtures import epcis_events, key, object_event
from tests.node.test_sync import FakePeer, Stub, new_node
from tests.proofs.chainbuilder import ChainBuilder


def _records(b: ChainBuilder) -> list[Envelope]:
    """Records of many shapes: commissions, a countersigned handoff, every shared EPCIS
    example event that makes a record, one with attributes, and one whose code is malformed
    (it parses; its codes by role raise)."""
    g = b.genesis
    out = [b.commission(f"urn:epc:id:sgtin:0614141.107346.{i}") for i in range(3)]
    out.append(b.handoff("urn:epc:id:sgtin:0614141.107346.0"))
    for i, (_name, ev) in enumerate(epcis_events()):
        try:
            rec = make_record(g, "processor", ev, category="meat", nonce=f"epcis{i:08d}")
        except LedgerError:
            continue
        out.append(sign_record(rec, key("processor")))
    rec = make_record(
        g, "farm", object_event(["urn:x:attr"]), attributes={"breed": "Duroc", "kg": 112.5}
    )
    out.append(sign_record(rec, key("farm")))
    bad = make_record(g, "farm", object_event(["urn:x:ok", "urn:x:\x07bell"]), nonce="bad00001")
    out.append(sign_record(bad, key("farm")))
    return out


def _block(envs: list[Envelope]) -> types_pb2.Block:
    return types_pb2.Block(header=b"h", envelopes=[envelope_to_proto(e) for e in envs])


def _same(a: VerifiedRecord, b: VerifiedRecord) -> int:
    """Assert ``a`` is ``b``; returns 1 if their codes by role raise (0 otherwise)."""
    assert a == b  # record id, record (event included) and envelope
    assert a.leaf == b.leaf
    assert a.leaf_hash == b.leaf_hash
    try:
        want: Any = b.record.roles
    except RuleError as e:
        message = str(e)
    else:
        message = ""
    if message:
        with pytest.raises(RuleError) as got:
            _ = a.record.roles  # not decoded: the node derives them, and raises, itself
        assert str(got.value) == message
        return 1
    assert a.record.roles == want
    assert a.record.roles.all == want.all
    return 0


def test_rebuilt_records_equal_the_nodes_own_parse(tmp_path: Path) -> None:
    b = ChainBuilder(tmp_path / "c")
    try:
        envs = _records(b)
        assert len(envs) > 10
        block = _block(envs)
        # an unknown protobuf field on one envelope: dropped by both, as every node drops it
        block.envelopes[1].MergeFromString(b"\xa2\x06\x03abc")  # field 100, bytes
        blob = decode(block.SerializeToString())
        assert blob is not None
        expect_block = types_pb2.Block()
        expect_block.CopyFrom(block)
        expected = [parse_trusted(pb) for pb in expect_block.envelopes]
        got = rebuild(blob, block)
        assert len(got) == len(expected)
        raising = 0
        for g, e in zip(got, expected, strict=True):
            assert g is not None
            raising += _same(g, e)
        assert raising == 1  # the malformed code
        assert block.SerializeToString() == expect_block.SerializeToString()
        assert (
            block.envelopes[1].SerializeToString() == envelope_to_proto(envs[1]).SerializeToString()
        )
    finally:
        b.close()


def test_a_blocks_repeated_strings_are_rebuilt_once(tmp_path: Path) -> None:
    """The helper shares equal strings within a block, so the node allocates (and frees) a
    chain id, an event key or a bizStep once per block, not once per record; the codes'
    ``all`` comes filled in."""
    b = ChainBuilder(tmp_path / "c")
    try:
        envs = [b.commission(f"urn:epc:id:sgtin:0614141.107346.{i}") for i in range(3)]
        block = _block(envs)
        blob = decode(block.SerializeToString())
        assert blob is not None
        got = [v for v in rebuild(blob, block) if v is not None]
        assert len(got) == 3
        first, second = got[0].record, got[1].record
        assert first.chain_id is second.chain_id
        assert first.author is second.author
        assert got[0].envelope.payload_type is got[1].envelope.payload_type
        keys = {k: k for k in first.event}
        assert all(keys[k] is k for k in second.event)  # the very same key objects
        assert first.event["bizStep"] is second.event["bizStep"]
        assert "all" in first.roles.__dict__  # not derived again by the node
        assert first.roles.all == parse_trusted(block.envelopes[0]).record.roles.all
    finally:
        b.close()


def test_a_block_with_a_record_that_does_not_parse_is_left_to_the_node(tmp_path: Path) -> None:
    b = ChainBuilder(tmp_path / "c")
    try:
        block = _block(_records(b)[:3])
        block.envelopes[2].payload = b'{"format": "suyuan-record/1"'  # not JSON
        assert decode(block.SerializeToString()) is None
        assert decode(b"\xff\xff not a block") is None
    finally:
        b.close()


def test_a_blob_for_another_block_is_refused(tmp_path: Path) -> None:
    b = ChainBuilder(tmp_path / "c")
    try:
        envs = _records(b)
        blob = decode(_block(envs[:3]).SerializeToString())
        assert blob is not None
        with pytest.raises(ValueError, match="do not match"):
            rebuild(blob, _block(envs[:2]))
        with pytest.raises(ValueError, match="wrong shape"):
            rebuild(marshal.dumps([(b"id", b"payload")] * 3), _block(envs[:3]))
    finally:
        b.close()


def test_certified_records_fall_back_to_the_nodes_parse_for_an_unusable_blob(
    tmp_path: Path,
) -> None:
    b = ChainBuilder(tmp_path / "c")
    try:
        b.commit([b.commission("urn:x:1"), b.commission("urn:x:2")])
        cb = b.committed_blocks()[0]
        node: Any = type("N", (), {"chain": b.chain, "genesis": b.genesis})()
        want = _certified_records(node, cb.block, cb.certificate)
        got = _certified_records(node, cb.block, cb.certificate, b"\x00not marshal")
        assert got == want
        other = decode(_block([b.commission("urn:x:3")]).SerializeToString())
        assert _certified_records(node, cb.block, cb.certificate, other) == want
        own = decode(cb.block.SerializeToString())
        assert own is not None
        with pytest.raises(ValueError, match="does not load"):
            rebuild(own[: len(own) // 2], cb.block)  # truncated: EOFError inside
        assert _certified_records(node, cb.block, cb.certificate, own[: len(own) // 2]) == want
        block = types_pb2.Block()
        block.CopyFrom(cb.block)
        block.envelopes[1].payload = b"[]"
        with pytest.raises(InputError, match="record 1"):
            _certified_records(node, block, cb.certificate, decode(block.SerializeToString()))
    finally:
        b.close()


# ------------------------------------------------------------------ a sync through it


class _Stub(Stub):
    """GetBlocks from fixed blocks, every one after the first only once the node's helper
    is up (the helper starts on a pull's first block; the rest go through it)."""

    def __init__(self, blocks: list[types_pb2.CommittedBlock], height: int) -> None:
        super().__init__(blocks, height)
        self.node: Node | None = None
        self.helpers: list[SyncHelper] = []

    def GetBlocks(
        self, request: services_pb2.GetBlocksRequest, timeout: float = 0
    ) -> AsyncIterator[types_pb2.CommittedBlock]:
        self.pulls += 1

        async def gen() -> AsyncIterator[types_pb2.CommittedBlock]:
            loop = asyncio.get_running_loop()
            wanted = [cb for cb in self.blocks if cb.certificate.height >= request.from_height]
            if not wanted:
                return
            yield wanted[0]
            deadline = loop.time() + 60
            while True:  # bounded: the helper is up or the deadline has passed
                h = self.node.sync_helper if self.node is not None else None
                if h is not None and h.ready:
                    self.helpers.append(h)
                    break
                assert loop.time() < deadline, "the sync helper never came up"
                await asyncio.sleep(0.02)
            for cb in wanted[1:]:
                yield cb

        return gen()


def _peer(address: str, blocks: list[types_pb2.CommittedBlock]) -> FakePeer:
    """``test_sync.FakePeer`` serving through the gated stub."""
    height = blocks[-1].certificate.height
    p = FakePeer(address, blocks, height)
    p.stub = _Stub(blocks, height)
    return p


def _forged(b: ChainBuilder, cb: types_pb2.CommittedBlock) -> types_pb2.CommittedBlock:
    """The genuine header and certificate over another (validly signed) envelope."""
    forged = types_pb2.CommittedBlock()
    forged.CopyFrom(cb)
    forged.block.envelopes[0].CopyFrom(envelope_to_proto(b.commission("urn:x:forged")))
    return forged


def test_sync_through_a_helper_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    b = ChainBuilder(tmp_path / "src")
    for i in range(4):
        codes = [f"urn:epc:id:sgtin:0614141.107346.{i}{j}" for j in range(5)]
        b.commit([b.commission(c) for c in codes])
    b.commit([b.handoff("urn:epc:id:sgtin:0614141.107346.00")])
    blocks = b.committed_blocks()

    async def run() -> None:
        node = new_node(tmp_path, b, helper_min_blocks=1)
        forger = _peer("forger", [blocks[0], blocks[1], _forged(b, blocks[2]), *blocks[3:]])
        forger.info.height += 1  # asked first
        honest = _peer("honest", blocks)
        stubs = [forger.stub, honest.stub]
        for stub in stubs:
            assert isinstance(stub, _Stub)
            stub.node = node
        await node.start()
        try:
            node.peers = [forger, honest]  # type: ignore[list-item]
            node.trigger_sync()
            assert node._sync_task is not None
            await asyncio.wait_for(node._sync_task, timeout=60)
            assert node.store.head().height == len(blocks)
            assert node.store.head().block_hash == b.store.head().block_hash
            assert node.store.head().log_root == b.store.head().log_root
            assert not node._tasks[0].done()
            assert node.sync_helper is None  # the pull is over
            helpers = [h for stub in stubs if isinstance(stub, _Stub) for h in stub.helpers]
            assert len(helpers) == 2  # one per pull, each up before its second block
            pids = [h.pid for h in helpers]
            assert all(pids)
            assert os.getpid() not in pids
            for pid in pids:
                assert pid is not None
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)  # stopped and reaped
            assert any("served block 3 that fails" in r.getMessage() for r in caplog.records)
            # stopping a helper that did its work is no failure
            assert not [r for r in caplog.records if "sync helper failed" in r.getMessage()]
        finally:
            await node.stop()
            node.store.close()

    with caplog.at_level(logging.INFO, logger="suyuan.sync"):
        asyncio.run(run())
    b.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are Linux's")
def test_the_helpers_pipes_are_widened_to_a_block() -> None:
    import fcntl

    async def run() -> list[int]:
        helper = SyncHelper()
        await helper.start()
        try:
            proc = helper._proc
            assert proc is not None
            sizes = []
            for stream in (proc.stdin, proc.stdout):
                transport = getattr(stream, "transport", None) or getattr(stream, "_transport")
                pipe = transport.get_extra_info("pipe")
                sizes.append(fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ))
            return sizes
        finally:
            await helper.close()

    assert asyncio.run(run()) == [PIPE_BYTES, PIPE_BYTES]


def test_a_claim_without_blocks_starts_no_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer's claimed height is unverified: a helper process starts on a pull's first
    block, so a peer that claims far ahead and serves nothing costs no process (review: one
    a second)."""
    b = ChainBuilder(tmp_path / "src")
    b.commit([b.commission("urn:epc:id:sgtin:0614141.107346.1")])
    blocks = b.committed_blocks()
    started: list[SyncHelper] = []
    real_start = SyncHelper.start

    async def counting_start(self: SyncHelper) -> None:
        started.append(self)
        await real_start(self)

    monkeypatch.setattr(SyncHelper, "start", counting_start)

    async def run() -> None:
        node = new_node(tmp_path, b, helper_min_blocks=1)
        liar = FakePeer("liar", [], 500)  # claims 500 blocks, serves none
        await node.start()
        try:
            node.peers = [liar]  # type: ignore[list-item]
            for _ in range(3):
                node.trigger_sync()
                assert node._sync_task is not None
                await asyncio.wait_for(node._sync_task, timeout=60)
                liar.info.height = 500  # claimed again (a status answer)
            assert liar.stub.pulls >= 1
            assert started == []
            assert node.store.head().height == 0
        finally:
            await node.stop()

    asyncio.run(run())
    assert blocks  # (the builder's chain is the one the node could have had)
