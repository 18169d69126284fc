"""Named requirements against a real node (in-process, real gRPC on loopback): a full
mempool answers RESOURCE_EXHAUSTED, a replay after a restart ALREADY_EXISTS, and
equivocation evidence a peer sends is kept, listed and verifies offline (issues #5, #7)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import grpc
from google.protobuf import json_format

from consensus.messages import VoteType, encode_message
from consensus.signing import Ed25519Signer, sign_vote
from node.convert import envelope_to_proto
from proto import services_pb2
from tests.cli.helpers import suyuan
from tests.fixtures import genesis, key
from tests.node.livenode import config, exchange, live_node, rpc_error, run, signed, solo_genesis


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
            await exchange(
                live,
                g,
                "v0",
                [services_pb2.PeerEnvelope(consensus=[encode_message(v) for v in votes])],
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


def test_a_record_waits_for_a_commit_the_other_validators_decided(tmp_path: Path) -> None:
    """The client race: a client saw its commissioning committed at another node and sends
    the next record of that product here, where the block has not landed yet. The node
    waits for the block the other validators decided (``Node.settle``) instead of
    refusing; with nothing decided elsewhere the refusal is immediate."""
    from consensus.certificate import make_certificate
    from consensus.messages import block_hash_of
    from node.records import make_record, sign_record
    from tests.fixtures import object_event

    g = genesis()  # four validators; v1 runs here alone, so only a certified block commits
    first = signed(g, "urn:x:race")  # commissioning
    rec = make_record(g, "farm", object_event(["urn:x:race"], "shipping", "OBSERVE"))
    then = envelope_to_proto(sign_record(rec, key("farm")))
    others = [Ed25519Signer(v, key(v).signing_key) for v in ("v0", "v2", "v3")]

    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), g) as live:
            node = live.node
            block, dropped = node.chain.build_block(1, 0, "v0", [(first, node.chain.verify(first))])
            assert not dropped
            node.chain._prepared.clear()  # validated as any other node's block would be
            bh = block_hash_of(block)
            votes = [sign_vote(s, node.ctx, VoteType.PRECOMMIT, 1, 0, bh) for s in others]
            cert = make_certificate(node.chain.validators, 1, 0, bh, votes)

            err = await rpc_error(
                live.stub.Submit(services_pb2.SubmitRequest(envelope=then), timeout=10)
            )
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "never commissioned" in (err.details() or "")

            node.on_peer_messages([encode_message(votes[0])])  # v0 precommitted block 1
            await _until(lambda: node.replica is not None and node.replica.decided_elsewhere())
            call = asyncio.ensure_future(
                live.stub.Submit(services_pb2.SubmitRequest(envelope=then), timeout=10)
            )
            await _until(lambda: node.settling == 1)  # refused once, now waiting
            await node.feed_synced(block, cert)
            resp = await call
            assert node.store.head().height == 1
            assert resp.record_id in node.mempool

            # the same in a batch (SubmitStream), at the next height
            first2 = signed(g, "urn:x:race2")
            rec2 = make_record(g, "farm", object_event(["urn:x:race2"], "shipping", "OBSERVE"))
            then2 = envelope_to_proto(sign_record(rec2, key("farm")))
            block2, _ = node.chain.build_block(2, 0, "v0", [(first2, node.chain.verify(first2))])
            node.chain._prepared.clear()
            bh2 = block_hash_of(block2)
            votes2 = [sign_vote(s, node.ctx, VoteType.PRECOMMIT, 2, 0, bh2) for s in others]
            node.on_peer_messages([encode_message(votes2[0])])
            await _until(lambda: node.replica is not None and node.replica.decided_elsewhere() == 2)
            stream = live.stub.SubmitStream(
                iter([services_pb2.SubmitBatch(envelopes=[then2], batch_id=9)]), timeout=10
            )
            reading = asyncio.ensure_future(stream.read())
            await _until(lambda: node.settling == 1)
            await node.feed_synced(
                block2, make_certificate(node.chain.validators, 2, 0, bh2, votes2)
            )
            result = await reading
            stream.cancel()
            assert result.results[0].code == 0, result.results[0].message
            assert result.results[0].record_id in node.mempool

    run(body)


async def _until(cond: Callable[[], object], deadline_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not cond():
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.01)  # poll the condition until the deadline


def test_a_proposal_whose_height_passed_is_dropped_not_raised(tmp_path: Path) -> None:
    """A sync can move the head while this node builds its proposal: ``build_block`` then
    refuses ("cannot build block N on head N"), which escaped the proposing task as "Task
    exception was never retrieved". Now the slot is let go, and nothing is proposed."""
    from consensus.events import ProposalValue
    from node.errors import InputError

    g = genesis()  # four validators: v1 alone never commits

    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), g) as live:
            node = live.node
            # v1 proposes height 1 round 0 itself: keep the replica's own proposals out, so
            # that only the calls below can put a ProposalValue (a race otherwise)
            node._start_proposal = lambda height, round_: None  # type: ignore[method-assign]
            if node._proposing is not None:
                node._proposing.cancel()
            proposed: list[object] = []
            put = node.events.put_nowait

            def spy(ev: object) -> None:
                if isinstance(ev, ProposalValue):
                    proposed.append(ev)
                put(ev)  # type: ignore[arg-type]

            node.events.put_nowait = spy  # type: ignore[method-assign,assignment]
            await node._propose(5, 0)  # the head is at 0: height 5 is not the next one

            def moved(*args: object, **kw: object) -> object:
                raise InputError("cannot build block 1 on head 1")

            node.chain.build_block = moved  # type: ignore[method-assign,assignment]
            await node._propose(1, 0)  # raised out of the task before
            assert proposed == []

    run(body)


def test_a_repeated_eventid_and_a_future_event_are_refused_at_submit(tmp_path: Path) -> None:
    # QA: the single Submit the CLI uses skipped the event-id and event-time checks (they
    # ran only for SubmitStream): a repeat was "accepted" and dropped later, a 2099 event
    # committed
    from node.convert import envelope_to_proto
    from node.records import make_record, sign_record
    from tests.fixtures import object_event

    g = solo_genesis()

    def with_eid(code: str, eid: str, when: str = "2026-03-01T08:00:00+08:00"):
        ev = {**object_event([code]), "eventID": eid, "eventTime": when}
        return envelope_to_proto(sign_record(make_record(g, "farm", ev), key("farm")))

    async def body() -> None:
        async with live_node(config(tmp_path, "v0"), g) as live:
            first = with_eid("urn:x:e:1", "urn:uuid:1")
            resp = await live.stub.Submit(
                services_pb2.SubmitRequest(envelope=first, wait=True), timeout=30
            )
            assert resp.committed
            for env, why in (
                (with_eid("urn:x:e:2", "urn:uuid:1"), "is already on the chain"),
                (with_eid("urn:x:e:3", "urn:x:t", "2099-01-01T00:00:00Z"), "node's time"),
            ):
                err = await rpc_error(
                    live.stub.Submit(services_pb2.SubmitRequest(envelope=env), timeout=10)
                )
                assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
                assert why in (err.details() or "")
            # two new records naming one eventID: the second is refused while the first waits
            a, b = with_eid("urn:x:e:4", "urn:uuid:2"), with_eid("urn:x:e:5", "urn:uuid:2")
            await live.stub.Submit(services_pb2.SubmitRequest(envelope=a), timeout=10)
            err = await rpc_error(
                live.stub.Submit(services_pb2.SubmitRequest(envelope=b), timeout=10)
            )
            details = err.details() or ""
            assert "is on a pending record" in details or "already on the chain" in details
            # a retry of a commissioning (signed anew) names the record with the eventID, not
            # "already commissioned by a record not yet committed" (QA re-check)
            c1, c2 = with_eid("urn:x:e:6", "urn:uuid:3"), with_eid("urn:x:e:6", "urn:uuid:3")
            await live.stub.Submit(services_pb2.SubmitRequest(envelope=c1), timeout=10)
            err = await rpc_error(
                live.stub.Submit(services_pb2.SubmitRequest(envelope=c2), timeout=10)
            )
            details = err.details() or ""
            assert details.startswith("rule event-id:"), details
            assert "(record " in details

    run(body)


def test_a_batch_no_node_could_take_is_invalid_argument(tmp_path: Path) -> None:
    # QA-Y H1: 5 million empty envelopes in one batch held the event loop for minutes (a
    # refusal built for each); L1: a batch over the mempool's size was told "mempool full
    # (0 records); retry later", for ever
    from node.service import MAX_BATCH_ENVELOPES

    g = genesis()
    one = signed(g, "urn:x:batch")

    async def body() -> None:
        cfg = config(tmp_path, "v1", mempool={"max_records": 3})
        async with live_node(cfg, g) as live:
            for n, why in (
                (MAX_BATCH_ENVELOPES + 1, f"{MAX_BATCH_ENVELOPES + 1} envelopes, at most"),
                (4, "a batch of 4 records is more than this node takes at once "
                    "(mempool.max_records 3): send smaller batches"),
            ):  # fmt: skip
                batch = services_pb2.SubmitBatch(envelopes=[one] * n, batch_id=n)
                call = live.stub.SubmitStream(iter([batch]), timeout=10)
                err = await rpc_error(call.read())
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
                assert why in (err.details() or "")
            status = await live.stub.Status(services_pb2.StatusRequest(), timeout=10)
            assert status.member == "v1"  # (and it answers)

    run(body)


def test_a_request_over_the_nodes_size_limit_is_not_read(tmp_path: Path) -> None:
    # QA-Y H1: requests of up to 256 MiB were read and parsed before being refused
    from node.main import MIN_REQUEST_BYTES, server_options

    g = genesis()
    [most] = [v for k, v in server_options(g) if k == "grpc.max_receive_message_length"]
    assert most == max(MIN_REQUEST_BYTES, 2 * g.consensus.max_block_bytes + (1 << 20))

    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), g) as live:
            big = services_pb2.SubmitRequest(envelope={"payload": b"x" * most})
            opts = [("grpc.max_send_message_length", 2 * most)]
            async with grpc.aio.insecure_channel(live.address, options=opts) as ch:
                submit = ch.unary_unary("/suyuan.v1.Ledger/Submit", None, None)
                err = await rpc_error(submit(big.SerializeToString(), timeout=30))
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
            assert "larger than max" in (err.details() or "")

    run(body)


def test_a_refused_peer_stream_keeps_nothing_it_sent(tmp_path: Path) -> None:
    # QA-Y H2: an outsider's refused 10 MB peer message stayed held by gRPC's unfinished
    # request iterator for good (140 MB each); the stream is now closed with its iterator
    import gc

    from proto import services_pb2_grpc, types_pb2

    g = genesis()

    def held() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is services_pb2.PeerEnvelope)

    async def body() -> tuple[int, int]:
        async with live_node(config(tmp_path, "v1"), g) as live:
            before = held()
            stub = services_pb2_grpc.PeerStub(live.channel)
            for _ in range(3):
                m = services_pb2.PeerEnvelope(records=[types_pb2.Envelope(payload_type="x")] * 1000)
                m.hello.genesis_hash = g.hash
                m.hello.member = "mallory"
                err = await rpc_error(stub.Exchange(iter([m]), timeout=10))
                assert err.code() == grpc.StatusCode.UNAUTHENTICATED
                del m
            return before, held()

    before, after = run(body)
    assert after == before


def test_evidence_a_peer_sends_is_passed_on_once(tmp_path: Path) -> None:
    # QA-Y L5: evidence a node was sent was kept, not passed on: an auditor asking another
    # node saw none
    from consensus.evidence import vote_evidence

    g = genesis()
    byzantine = Ed25519Signer("v0", key("v0").signing_key)

    async def body() -> list[bytes]:
        cfg = config(tmp_path, "v1", peers=["127.0.0.1:9"])  # (a link that never connects)
        async with live_node(cfg, g) as live:
            sent: list[bytes] = []
            live.node.peers[0].send_evidence = sent.append  # type: ignore[method-assign, assignment]
            vctx = live.node.ctx
            a, b = (sign_vote(byzantine, vctx, VoteType.PREVOTE, 1, 0, bytes([x]) * 32)
                    for x in (1, 2))  # fmt: skip
            ev = vote_evidence(a, b, g.hash, g.chain_id)
            for _ in range(2):
                live.node.on_peer_evidence(ev)
            return sent

    sent = run(body)
    assert len(sent) == 1  # (once: the second copy is known)
