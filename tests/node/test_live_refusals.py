"""Named requirements against a real node (in-process, real gRPC on loopback): a full
mempool answers RESOURCE_EXHAUSTED, a replay after a restart ALREADY_EXISTS, and
equivocation evidence a peer sends is kept, listed and verifies offline (issues #5, #7)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
from google.protobuf import json_format

from consensus.messages import VoteType, encode_message
from consensus.signing import Ed25519Signer, sign_vote
from proto import services_pb2, services_pb2_grpc
from tests.cli.helpers import suyuan
from tests.fixtures import genesis, key
from tests.node.livenode import config, live_node, rpc_error, run, signed, solo_genesis


def test_full_mempool_is_resource_exhausted(tmp_path: Path) -> None:
    g = genesis()  # four validators, one running: nothing commits, the mempool fills

    async def body() -> None:
        cfg = config(tmp_path, "v1", mempool={"max_records": 2})
        async with live_node(cfg, g) as live:
            for i in range(2):
                env = signed(g, f"urn:x:{i}")
                await live.stub.Submit(services_pb2.SubmitRequest(envelope=env), timeout=10)
            third = signed(g, "urn:x:3")
            err = await rpc_error(
                live.stub.Submit(services_pb2.SubmitRequest(envelope=third), timeout=10)
            )
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "mempool full" in (err.details() or "")
            assert third.payload not in {p.envelope.payload for p in live.node.mempool.items()}

    run(body)


def test_replay_after_restart_is_already_exists(tmp_path: Path) -> None:
    g = solo_genesis()  # v0 is the only validator: it commits alone
    env = signed(g, "urn:x:replayed")
    cfg = config(tmp_path, "v0")

    async def first() -> None:
        async with live_node(cfg, g) as live:
            resp = await live.stub.Submit(
                services_pb2.SubmitRequest(envelope=env, wait=True), timeout=30
            )
            assert resp.committed

    async def after_restart() -> None:
        async with live_node(cfg, g) as live:
            assert live.node.store.head().height >= 1
            err = await rpc_error(
                live.stub.Submit(services_pb2.SubmitRequest(envelope=env), timeout=10)
            )
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS
            assert "already committed" in (err.details() or "")
            # the same nonce under another record is a replay too
            other = signed(g, "urn:x:other", nonce=_nonce(env.payload))
            err = await rpc_error(
                live.stub.Submit(services_pb2.SubmitRequest(envelope=other), timeout=10)
            )
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS

    run(first)
    run(after_restart)


def _nonce(payload: bytes) -> str:
    nonce: str = json.loads(payload)["nonce"]
    return nonce


def test_equivocation_evidence_end_to_end(tmp_path: Path) -> None:
    g = genesis()
    (tmp_path / "genesis.json").write_text(g.to_json())
    byzantine = Ed25519Signer("v0", key("v0").signing_key)

    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), g) as live:
            vctx = live.node.ctx
            votes = [
                sign_vote(byzantine, vctx, VoteType.PREVOTE, 1, 0, bytes([b]) * 32) for b in (1, 2)
            ]
            peer = services_pb2_grpc.PeerStub(live.channel)
            hello = services_pb2.Hello(genesis_hash=g.hash, member="v0", height=0)
            await peer.Exchange(
                iter(
                    [
                        services_pb2.PeerEnvelope(hello=hello),
                        services_pb2.PeerEnvelope(consensus=[encode_message(v) for v in votes]),
                    ]
                ),
                timeout=10,
            )
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10  # the replica handles the votes on its own task
            while True:
                listed = await live.stub.ListEvidence(
                    services_pb2.ListEvidenceRequest(), timeout=10
                )
                if listed.evidence or loop.time() > deadline:
                    break
                await asyncio.sleep(0.05)  # poll the condition until the deadline
            assert len(listed.evidence) == 1
            doc = json_format.MessageToDict(listed, preserving_proto_field_name=True)
            (tmp_path / "ev.json").write_text(json.dumps(doc))

    run(body)
    # offline, with nothing but the genesis file
    r = suyuan("evidence", "verify", "ev.json", "--genesis", "genesis.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "v0" in r.stdout
