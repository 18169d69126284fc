"""A peer link refuses a peer on another chain, or one answering as this node's member."""

from __future__ import annotations

from types import SimpleNamespace

from node.peers import PeerLink
from proto import services_pb2

G = bytes(range(32))


def _refusal(reply: services_pb2.Hello) -> str:
    me = SimpleNamespace(
        address="127.0.0.1:26651", _hello=services_pb2.Hello(genesis_hash=G, member="v0")
    )
    return PeerLink._refusal(me, reply)  # type: ignore[arg-type]


def test_another_chains_peer_is_named_once_not_linked():
    # it looped connect / FAILED_PRECONDITION 80 times a second, saying neither why nor what
    why = _refusal(services_pb2.Hello(genesis_hash=bytes(32), member="v1", height=5))
    assert why.startswith("peer 127.0.0.1:26651 is on another chain (genesis 0000")
    assert G.hex() in why


def test_a_peer_answering_as_this_nodes_member_is_not_linked():
    # a second process with v0's key dialled the real v0, synced, then voted: evidence
    # of a double vote against v0
    why = _refusal(services_pb2.Hello(genesis_hash=G, member="v0", height=5))
    assert "answers as 'v0', this node's own member" in why
    assert _refusal(services_pb2.Hello(genesis_hash=G, member="v1", height=5)) == ""
    assert _refusal(services_pb2.Hello(genesis_hash=G, member="", height=5)) == ""
