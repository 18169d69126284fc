"""A peer link refuses a peer on another chain, or one answering as this node's member;
one that proves it holds this node's key stops this node (two processes, one key)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from node.peers import PeerLink, hello_proof_bytes
from proto import services_pb2
from tests.fixtures import key

G = bytes(range(32))
V0 = key("v0")
NONCE = bytes(range(16))


def _refusal(reply: services_pb2.Hello, nonce: bytes = b"", seen: list[str] | None = None) -> str:
    me = SimpleNamespace(
        address="127.0.0.1:26651",
        _hello=services_pb2.Hello(genesis_hash=G, member="v0"),
        _own_key=V0.public_key,
        _on_duplicate=(seen.append if seen is not None else None),
    )
    return PeerLink._refusal(me, reply, nonce)[1]  # type: ignore[arg-type]


def test_another_chains_peer_is_named_once_not_linked():
    # it looped connect / FAILED_PRECONDITION 80 times a second, saying neither why nor what
    why = _refusal(services_pb2.Hello(genesis_hash=bytes(32), member="v1", height=5))
    assert why.startswith("peer 127.0.0.1:26651 is on another chain (genesis 0000")
    assert G.hex() in why


def test_a_peer_answering_as_this_nodes_member_without_proof_is_not_linked():
    seen: list[str] = []
    why = _refusal(services_pb2.Hello(genesis_hash=G, member="v0", height=5), NONCE, seen)
    assert "answers as 'v0', this node's own member, without proving" in why
    assert seen == []  # an impostor (or an older node) does not stop this one
    assert _refusal(services_pb2.Hello(genesis_hash=G, member="v1", height=5)) == ""
    assert _refusal(services_pb2.Hello(genesis_hash=G, member="", height=5)) == ""


def test_a_peer_that_proves_it_holds_this_nodes_key_stops_this_node():
    # QA: a second process with v3's key (a standby left running) logged the danger, kept
    # voting through the other peers, and left valid evidence of a double vote against v3
    proof = V0.sign(hello_proof_bytes(G, "v0", NONCE))
    reply = services_pb2.Hello(genesis_hash=G, member="v0", height=5, proof=proof)
    seen: list[str] = []
    why = _refusal(reply, NONCE, seen)
    assert "proved it holds 'v0''s key" in why
    assert seen == [why]
    # the same proof for another nonce (a replayed reply) proves nothing
    seen.clear()
    assert "without proving" in _refusal(reply, bytes(16), seen)
    assert seen == []


def test_a_node_that_dials_itself_under_another_address_is_told_so_and_not_stopped():
    # its own address spelled another way among its peers: it holds its own key, so the
    # proof is valid; the process's random instance id tells it is the same process
    me = SimpleNamespace(
        address="localhost:26651",
        _hello=services_pb2.Hello(genesis_hash=G, member="v0", instance=b"\x01" * 8),
        _own_key=V0.public_key,
        _on_duplicate=None,
    )
    proof = V0.sign(hello_proof_bytes(G, "v0", NONCE))
    reply = services_pb2.Hello(genesis_hash=G, member="v0", proof=proof, instance=b"\x01" * 8)
    level, why = PeerLink._refusal(me, reply, NONCE)  # type: ignore[arg-type]
    assert "is this very node" in why
    assert level == logging.WARNING  # it goes on: not an ERROR (QA: that misled)
