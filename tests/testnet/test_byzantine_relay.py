"""A Byzantine relayer against a real 4-node testnet (separate processes, real gRPC).

Each node is given one more peer: a relay run by this test as a consortium member (the
inspector, whose key it holds: an outsider's streams are refused, node.peerauth). The
relay receives every
consensus message the nodes broadcast and answers each proposal, at once and to every
node, with the same signed proposal carrying another body: the honest header (so the
block hash and the proposer's signature still match) and no records. Small mempools make
validators fetch records for most proposals, which gives the relay's body time to arrive
first. Before bodies were bound to their headers, a body that arrived first was the one
consensus kept: it refused the block for good (a few times per run here) and the round
was lost. The test asserts that every record commits on every node, that the relay sent
its bodies while proposals were being fetched, and that no node refused a block.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from node.convert import envelope_to_proto
from node.genesis import Genesis
from node.keys import KeyPair, load_key_file
from node.peerauth import HELLO_NONCE_BYTES, LinkKeys, hello_proof_bytes, link_hello
from proto import consensus_pb2, services_pb2, services_pb2_grpc, types_pb2
from testnet import net
from tests.testnet.harness import RunningTestnet, free_base_port, wait_for
from tests.testnet.invariants import check_all

RECORDS = 2000
RELAY = "inspector"  # the member the relay runs as


class Relay(services_pb2_grpc.PeerServicer):
    """Takes the nodes' peer streams; queues a re-wrapped copy of each proposal."""

    def __init__(self, genesis: Genesis, key: KeyPair) -> None:
        self.genesis_hash = genesis.hash
        self.key = key
        self.keys = LinkKeys(genesis.hash, key.name, key.public_key, key.sign, genesis.public_key)
        self.out: queue.Queue[consensus_pb2.Proposal | None] = queue.Queue(maxsize=10_000)
        self.proposals_seen = 0

    def Exchange(self, request_iterator, context):
        for env in request_iterator:
            for m in env.consensus:
                if m.HasField("proposal") and m.proposal.HasField("compact"):
                    self.proposals_seen += 1
                    junk = consensus_pb2.Proposal()
                    junk.CopyFrom(m.proposal)
                    junk.ClearField("compact")
                    junk.block.CopyFrom(types_pb2.Block(header=m.proposal.compact.header))
                    with contextlib.suppress(queue.Full):  # bounded: drop when behind
                        self.out.put_nowait(junk)
        return services_pb2.PeerAck(height=0)

    def PeerStatus(self, request, context):
        proof = self.key.sign(hello_proof_bytes(self.genesis_hash, RELAY, bytes(8), request.nonce))
        return services_pb2.Hello(
            genesis_hash=self.genesis_hash,
            member=RELAY,
            proof=proof,
            instance=bytes(8),
            challenge=bytes(24),  # (it reads no stream: any challenge will do)
        )

    def GetRecords(self, request, context):
        return services_pb2.GetRecordsResponse()


def _forward(relay: Relay, addresses: list[str], sent: list[int]) -> None:
    """Send every queued body to every node (until a None arrives)."""
    channels = [grpc.insecure_channel(a) for a in addresses]
    stubs = [services_pb2_grpc.PeerStub(c) for c in channels]
    base = services_pb2.Hello(genesis_hash=relay.genesis_hash, member=RELAY)
    ask = services_pb2.Hello(genesis_hash=relay.genesis_hash, member=RELAY)
    ask.nonce = bytes(HELLO_NONCE_BYTES)

    hellos: dict[int, tuple[float, services_pb2.Hello]] = {}

    def hello(i: int) -> services_pb2.Hello:
        """A link hello for node ``i``, answering a challenge of its own (asked again every
        30 s: one is good for 60; an extra call per body would let the honest ones win)."""
        at, h = hellos.get(i, (0.0, None))
        if h is None or time.monotonic() - at > 30:
            reply = stubs[i].PeerStatus(ask, timeout=5)
            h = link_hello(base, relay.keys, reply.member, bytes(reply.challenge))
            hellos[i] = (time.monotonic(), h)
        return h

    try:
        while True:
            junk = relay.out.get(timeout=120)
            if junk is None:
                return
            msg = consensus_pb2.ConsensusMessage(proposal=junk)
            for i, stub in enumerate(stubs):
                try:
                    envs = [services_pb2.PeerEnvelope(hello=hello(i))]
                    envs.append(services_pb2.PeerEnvelope(consensus=[msg]))
                    stub.Exchange(iter(envs), timeout=5)
                    sent[0] += 1
                except grpc.RpcError:
                    continue
    finally:
        for c in channels:
            c.close()


def _add_peer(config: Path, address: str) -> None:
    text = config.read_text()
    new, n = re.subn(r"^peers = \[", f'peers = ["{address}", ', text, count=1, flags=re.M)
    assert n == 1, text
    config.write_text(new)


def _set_mempool(config: Path, max_records: int) -> None:
    text = config.read_text()
    new, n = re.subn(
        r"^max_records = \d+", f"max_records = {max_records}", text, count=1, flags=re.M
    )
    assert n == 1, text
    config.write_text(new)


def _load(address: str, envs: list[types_pb2.Envelope], acked: list[bytes]) -> None:
    """Submit ``envs`` in batches of 100 until each is accepted: small mempools refuse with
    RESOURCE_EXHAUSTED, and a pass that got nothing in waits for the node's next commit
    (bounded: 90 s)."""
    todo = list(envs)
    deadline = time.monotonic() + 90
    with grpc.insecure_channel(address) as ch:
        stub = services_pb2_grpc.LedgerStub(ch)
        while todo and time.monotonic() < deadline:
            batches = [
                services_pb2.SubmitBatch(envelopes=todo[i : i + 100], batch_id=i)
                for i in range(0, len(todo), 100)
            ]
            refused: list[types_pb2.Envelope] = []
            for b, res in zip(batches, stub.SubmitStream(iter(batches), timeout=120), strict=True):
                for env, r in zip(b.envelopes, res.results, strict=True):
                    if r.code == 0:
                        acked.append(r.record_id)
                    else:
                        refused.append(env)
            if len(refused) == len(todo):  # the mempool is full: room comes with a commit
                height = stub.Status(services_pb2.StatusRequest(), timeout=10).height
                wait_for(
                    lambda: stub.Status(services_pb2.StatusRequest(), timeout=10).height > height,
                    max(0.1, deadline - time.monotonic()),
                    0.02,
                    f"{address} to commit",
                )
            todo = refused
    assert not todo, f"{len(todo)} records still refused by {address}"


@pytest.mark.slow
def test_a_relay_rewrapping_every_proposal_does_not_stop_the_consortium(
    testnet4: RunningTestnet,
) -> None:
    relay = Relay(testnet4.genesis, load_key_file(testnet4.dir / "keys" / f"{RELAY}.key"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    services_pb2_grpc.add_PeerServicer_to_server(relay, server)
    port = free_base_port(1)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    server.start()
    sent = [0]
    forwarder = threading.Thread(
        target=_forward, args=(relay, testnet4.addresses, sent), daemon=True
    )
    forwarder.start()
    try:
        net.down(testnet4.dir, timeout=10)
        for n in testnet4.manifest.nodes:
            _add_peer(n.config, f"127.0.0.1:{port}")
            # small mempools drop gossip they have no room for, so validators must fetch
            # records for most proposals: the race the relay's bodies used to win
            _set_mempool(n.config, 150)
        net.up(testnet4.dir, timeout=60)
        _ = testnet4.manifest  # record the new PIDs for the teardown check
        envs = [
            envelope_to_proto(testnet4.signed_record(f"urn:epc:id:sgtin:6901234.000005.r{k}"))
            for k in range(RECORDS)
        ]
        acked: list[bytes] = []
        loaders = [
            threading.Thread(target=_load, args=(a, envs[i::4], acked), daemon=True)
            for i, a in enumerate(testnet4.addresses)
        ]
        for t in loaders:
            t.start()
        for t in loaders:
            t.join(timeout=120)
        assert len(acked) == RECORDS, f"{RECORDS - len(acked)} records never accepted"
        wait_for(
            lambda: check_all(testnet4.addresses, acked) >= 1,
            90,
            0.5,
            f"all {RECORDS} records committed on every node under the relay",
        )
        assert relay.proposals_seen > 0
        assert sent[0] > 0, "the relay sent no re-wrapped proposal"
        fetched = 0
        for n in testnet4.manifest.nodes:  # no honest block was refused for a relayed body
            log = (testnet4.dir / f"node{n.index}" / "node.log").read_text()
            assert "refusing proposed block" not in log, f"node {n.index} refused a block"
            fetched += log.count("records from peers")
        assert fetched > 0, "no proposal needed a fetch: the race was never run"
    finally:
        relay.out.put(None)
        forwarder.join(timeout=10)
        server.stop(grace=None)
