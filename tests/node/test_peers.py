"""PeerLink's send path: items serialized once, queued items sent as one merged message."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from node.errors import ReplicationError
from node.peers import _MAX_SEND_BYTES, PeerLink, consensus_item, evidence_item, records_item
from proto import consensus_pb2, services_pb2, services_pb2_grpc, types_pb2
from tests.fixtures import genesis
from tests.node.livenode import link_keys

KEYS = link_keys(genesis(), "v0")


def _envelope(i: int) -> types_pb2.Envelope:
    return types_pb2.Envelope(payload=b"r%d" % i, payload_type="t")


def _vote(h: int) -> consensus_pb2.ConsensusMessage:
    return consensus_pb2.ConsensusMessage(
        vote=consensus_pb2.Vote(height=h, validator="v", signature=b"s%d" % h)
    )


def _drain(link: PeerLink, n: int) -> list[services_pb2.PeerEnvelope]:
    """The first ``n`` messages the link's stream would send, parsed."""

    async def run() -> list[bytes]:
        gen = link._envelopes(link._hello)
        return [await gen.__anext__() for _ in range(n)]

    return [services_pb2.PeerEnvelope.FromString(raw) for raw in asyncio.run(run())]


def _link() -> PeerLink:
    async def make() -> PeerLink:
        link = PeerLink("127.0.0.1:9", services_pb2.Hello(member="me", height=7), KEYS)
        link.info.connected = True  # as after a successful PeerStatus
        return link

    return asyncio.run(make())


def test_queued_items_are_sent_as_one_merged_message_in_order() -> None:
    link = _link()
    m1 = _vote(1)
    m2 = _vote(2)
    link.send(consensus_item(m1))
    link.send(records_item([_envelope(1), _envelope(2)]))
    link.send(consensus_item(m2))
    link.send(records_item([_envelope(3)]))
    hello, merged = _drain(link, 2)
    assert hello.hello.member == "me"
    assert hello.hello.height == 7
    assert list(merged.consensus) == [m1, m2]
    assert [e.payload for e in merged.records] == [b"r1", b"r2", b"r3"]


def test_evidence_goes_alone_after_what_was_queued_before_it() -> None:
    link = _link()
    m1 = _vote(1)
    ev = consensus_pb2.Evidence(
        duplicate_vote=consensus_pb2.DuplicateVote(a=m1.vote, b=_vote(9).vote)
    )
    link.send(consensus_item(m1))
    link.send_evidence(evidence_item(ev))
    link.send_evidence(evidence_item(ev))
    link.send(records_item([_envelope(1)]))
    _, before, ev1, ev2, after = _drain(link, 5)
    assert list(before.consensus) == [m1]
    assert not before.HasField("evidence")
    assert ev1.evidence == ev == ev2.evidence  # two evidences never merge into one
    assert [e.payload for e in after.records] == [b"r1"]


def test_a_message_never_exceeds_the_send_limit_unless_one_item_does() -> None:
    link = _link()
    big = [types_pb2.Envelope(payload=b"x" * 1_000_000, payload_type="t") for _ in range(12)]
    for e in big:
        link.send(records_item([e]))
    msgs = _drain(link, 3)[1:]
    sizes = [m.ByteSize() for m in msgs]
    assert all(s <= _MAX_SEND_BYTES for s in sizes), sizes
    assert sum(len(m.records) for m in msgs) == 12  # nothing split or lost


def test_nothing_is_queued_while_disconnected() -> None:
    link = _link()
    link.info.connected = False
    link.send(records_item([_envelope(1)]))
    assert link.info.dropped == 1
    assert link._queue.empty()


class _Records(services_pb2_grpc.PeerServicer):
    """A peer answering GetRecords with ``count`` envelopes of ``size`` bytes each."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size

    async def GetRecords(self, request, context):
        return services_pb2.GetRecordsResponse(
            envelopes=[
                types_pb2.Envelope(payload=b"x" * self.size, payload_type="t")
                for _ in range(self.count)
            ]
        )


def _get_records(count: int, size: int, asked: int, max_bytes: int):
    async def run():
        server = grpc.aio.server()
        services_pb2_grpc.add_PeerServicer_to_server(_Records(count, size), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        link = PeerLink(f"127.0.0.1:{port}", services_pb2.Hello(member="me"), KEYS)
        try:
            return await link.get_records([b"h" * 32] * asked, max_bytes, timeout=10)
        finally:
            await link.close()
            await server.stop(grace=None)

    return asyncio.run(run())


def test_get_records_keeps_at_most_one_envelope_per_hash_asked() -> None:
    got = _get_records(count=10, size=100, asked=3, max_bytes=1 << 20)
    assert len(got) == 3


def test_get_records_refuses_an_oversize_answer_unparsed() -> None:
    with pytest.raises(ReplicationError, match=r"an answer of \d+ bytes \(at most 1048576\)"):
        _get_records(count=20, size=100_000, asked=20, max_bytes=1 << 20)  # ~2 MB > 1 MiB


def test_a_peer_that_never_answers_is_named_once_as_a_warning(monkeypatch, caplog) -> None:
    # QA: a typo in `peers` (127.0.0.l:31400) was never logged; only `node status` showed it
    import logging
    import socket

    from node import peers

    monkeypatch.setattr(peers, "UNREACHABLE_WARN_S", 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused

        def warnings() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

        async def run() -> list[str]:
            link = PeerLink(f"127.0.0.1:{port}", services_pb2.Hello(member="me"), KEYS)
            link.start()
            try:
                for _ in range(400):  # (bounded: 20 s at most)
                    if warnings():
                        # (an absence takes time to see: more failed attempts, still one line)
                        await asyncio.sleep(0.3)
                        return warnings()
                    await asyncio.sleep(0.05)
                return []
            finally:
                await link.close()

        with caplog.at_level(logging.INFO, logger="suyuan.peers"):
            warned = asyncio.run(run())
    assert len(warned) == 1, warned
    assert f"peer 127.0.0.1:{port} has not answered for 0 s (UNAVAILABLE" in warned[0]
    assert "address in `peers` right?" in warned[0]


def test_a_linked_peer_that_stops_answering_is_named_once(monkeypatch, caplog) -> None:
    # QA: a paused peer keeps its link open for a while; it was never named in the log
    import logging
    import socket

    from node import peers

    monkeypatch.setattr(peers, "UNREACHABLE_WARN_S", 0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing answers there

        async def run() -> list[str]:
            link = PeerLink(f"127.0.0.1:{port}", services_pb2.Hello(member="me"), KEYS)
            link.info.connected = True  # as while the Exchange stream is open
            for _ in range(3):
                await link.poll_height()
            await link.close()
            return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

        with caplog.at_level(logging.INFO, logger="suyuan.peers"):
            warned = asyncio.run(run())
    assert len(warned) == 1, warned
    assert "though its link is open: paused or hung?" in warned[0]
