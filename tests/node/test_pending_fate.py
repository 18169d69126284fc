"""What becomes of a pending record that can never commit, and of its waiters (review): a
record whose nonce a committed record used fails its waiters at once; a follower drops a
record a committed block made invalid; a waiter given up is forgotten. In-process node
behind a real gRPC server; blocks are committed through ``Node._commit`` as consensus
would."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from node.convert import envelope_to_proto
from node.node import Node
from node.records import cosign, make_record, sign_record
from proto import services_pb2, types_pb2
from tests.fixtures import genesis, key, object_event
from tests.node.livenode import config, live_node, rpc_error, run

G = genesis()


def _env(code: str, nonce: str, step: str = "commissioning", action: str = "ADD", **kw):
    ev = object_event([code], step, action)
    rec = make_record(G, "farm", ev, nonce=nonce, **kw)
    return envelope_to_proto(sign_record(rec, key("farm")))


async def _commit(node: Node, envs: list[types_pb2.Envelope]) -> None:
    h = node.store.head().height + 1
    block, dropped = node.chain.build_block(h, 0, "v0", [(e, node.chain.verify(e)) for e in envs])
    assert not dropped, [str(d.reason) for d in dropped]
    node.chain._prepared.clear()
    await node._commit(block, types_pb2.CommitCertificate(height=h))


async def _until(cond, deadline_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not cond():
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.01)  # poll the condition until the deadline


def test_a_waiter_is_told_when_its_records_nonce_is_used_by_a_committed_one(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), G) as live:  # 1 of 4: commits nothing
            node = live.node
            waiting = _env("urn:x:b", "nonce-0001")
            winner = _env("urn:x:a", "nonce-0001")  # same author and nonce: e.g. a withdrawal
            call = live.stub.Submit(
                services_pb2.SubmitRequest(envelope=waiting, wait=True), timeout=30
            )
            await _until(lambda: len(node.mempool) == 1 and node._waiters)
            await _commit(node, [winner])
            err = await rpc_error(call)
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS
            assert "nonce was used by a record committed at height 1" in (err.details() or "")
            assert len(node.mempool) == 0
            assert node._waiters == {}

    run(body)


def test_a_waiter_that_gave_up_is_forgotten(tmp_path: Path) -> None:
    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), G) as live:
            node = live.node
            resp = await live.stub.Submit(
                services_pb2.SubmitRequest(envelope=_env("urn:x:c", "nonce-0002"), wait=True),
                timeout=0.5,
            )
            assert not resp.committed  # its deadline passed: "may still commit"
            await _until(lambda: not node._waiters)
            assert len(node.mempool) == 1

    run(body)


def test_a_follower_drops_a_pending_record_a_committed_block_made_invalid(
    tmp_path: Path,
) -> None:
    x, z = "urn:x:X", "urn:x:Z"

    async def body() -> None:
        async with live_node(config(tmp_path, "auditor"), G) as live:  # not a validator
            node = live.node
            await _commit(node, [_env(x, "nonce-c1"), _env(z, "nonce-c2")])
            ship = make_record(
                G, "farm", object_event([x, z], "shipping", "OBSERVE"), handoff_to="slaughterhouse"
            )
            handoff = envelope_to_proto(
                cosign(sign_record(ship, key("farm")), key("slaughterhouse"))
            )
            call = live.stub.Submit(
                services_pb2.SubmitRequest(envelope=handoff, wait=True), timeout=30
            )
            await _until(lambda: len(node.mempool) == 1 and node._waiters)
            # committed elsewhere first: the farm destroys X, so the handoff can never commit
            await _commit(node, [_env(x, "nonce-d1", "destroying", "DELETE")])
            err = await rpc_error(call)
            assert err.code() in (
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.PERMISSION_DENIED,
            )
            assert len(node.mempool) == 0
            # the farm still holds Z: its next record on Z is admitted here
            store_z = _env(z, "nonce-s1", "storing", "OBSERVE")
            resp = await live.stub.Submit(services_pb2.SubmitRequest(envelope=store_z), timeout=10)
            assert resp.record_id in node.mempool

    run(body)
