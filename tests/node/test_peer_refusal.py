"""A peer link refuses a peer on another chain, one answering as this node's member, and
one that does not prove the member it names (an outsider, an impostor); one that proves it
holds this node's key stops this node (two processes, one key)."""

from __future__ import annotations

import logging
from dataclasses import replace
from types import SimpleNamespace

from node.peerauth import CHALLENGE_BYTES, hello_proof_bytes
from node.peers import PeerLink
from proto import services_pb2
from tests.fixtures import genesis, key
from tests.node.livenode import link_keys

V0 = key("v0")
V1 = key("v1")
NONCE = bytes(range(16))
KEYS = replace(link_keys(genesis(), "v0"), genesis_hash=bytes(range(32)))
G = KEYS.genesis_hash


def _me(address: str = "127.0.0.1:26651", seen: list[str] | None = None, instance: bytes = b""):
    return SimpleNamespace(
        address=address,
        _hello=services_pb2.Hello(genesis_hash=G, member="v0", instance=instance),
        _keys=KEYS,
        _on_duplicate=(seen.append if seen is not None else None),
        _problem="",
        _expected="",
    )


def _refusal(reply: services_pb2.Hello, nonce: bytes = NONCE, seen: list[str] | None = None) -> str:
    return PeerLink._refusal(_me(seen=seen), reply, nonce)[1]


def _proved(member: str, nonce: bytes = NONCE, instance: bytes = b"\x02" * 8) -> services_pb2.Hello:
    """A reply of ``member``'s node process ``instance`` proving its key over ``nonce``."""
    proof = key(member).sign(hello_proof_bytes(G, member, instance, nonce))
    return services_pb2.Hello(
        genesis_hash=G, member=member, height=5, proof=proof, instance=instance,
        challenge=bytes(CHALLENGE_BYTES),
    )  # fmt: skip


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


def test_a_peer_is_linked_only_if_it_proves_the_member_it_names():
    # review finding 4: a link was taken from whoever answered, as whichever member it named
    assert _refusal(_proved("v1")) == ""
    assert _refusal(_proved("farm")) == ""  # a member's follower node links too
    unsigned = services_pb2.Hello(genesis_hash=G, member="v1", height=5)
    assert _refusal(unsigned) == (
        "peer 127.0.0.1:26651 answers as 'v1' without proving it holds 'v1''s key "
        "(an impostor, or a node of an earlier version: every node of a consortium runs one "
        "version): not linking to it"
    )
    assert "without proving" in _refusal(_proved("v1", nonce=bytes(16)))  # a replayed reply
    wrong_key = _proved("v2")
    wrong_key.member = "v1"  # v2's signature, claiming v1
    assert "without proving it holds 'v1''s key" in _refusal(wrong_key)
    assert _refusal(services_pb2.Hello(genesis_hash=G, member="relay")) == (
        "peer 127.0.0.1:26651 answers as 'relay', no member of this consortium: not linking to it"
    )
    assert "answers as '', no member" in _refusal(services_pb2.Hello(genesis_hash=G))


def test_a_peer_that_proves_it_holds_this_nodes_key_stops_this_node():
    # QA: a second process with v3's key (a standby left running) logged the danger, kept
    # voting through the other peers, and left valid evidence of a double vote against v3
    reply = _proved("v0")
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
    me = _me("localhost:26651", instance=b"\x01" * 8)
    reply = _proved("v0", instance=b"\x01" * 8)
    level, why = PeerLink._refusal(me, reply, NONCE)
    assert "is this very node" in why
    assert level == logging.WARNING  # it goes on: not an ERROR (QA: that misled)


def test_status_names_a_peer_on_another_chain(tmp_path) -> None:
    """QA-S: a node started with the wrong genesis linked to no peer, and `node status`
    showed only a lost quorum; the reason was in its log alone. The peer's problem is now
    in the status answer and the CLI's status lines."""
    import asyncio

    from proto import services_pb2 as spb
    from tests.fixtures import genesis
    from tests.node.livenode import config, live_node, run, solo_genesis

    async def body() -> None:
        async with live_node(config(tmp_path / "b", "v0"), solo_genesis()) as other:
            cfg = config(tmp_path / "a", "v1", peers=[other.address])
            async with live_node(cfg, genesis()) as live:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 20
                while True:  # bounded: the link's first attempt refuses the peer
                    st = await live.stub.Status(spb.StatusRequest(), timeout=5)
                    if st.peers and st.peers[0].problem:
                        break
                    assert loop.time() < deadline, "the peer's problem was never reported"
                    await asyncio.sleep(0.05)  # poll the condition until the deadline
                assert st.peers[0].address == other.address
                assert not st.peers[0].connected
                assert "is on another chain" in st.peers[0].problem

    run(body)


def test_the_status_command_prints_the_peers_problems(monkeypatch, capsys) -> None:
    from cli import node_cmd
    from tests.cli.helpers import StubClient

    problem = "peer 127.0.0.1:9 is on another chain (genesis 00..., this node's 01...)"

    class Client(StubClient):
        def status(self) -> services_pb2.StatusResponse:
            return services_pb2.StatusResponse(
                chain_id="c", member="v1", height=0, validators=4, validators_answering=1,
                quorum=3, peers=[services_pb2.PeerInfo(address="127.0.0.1:9", problem=problem)],
            )  # fmt: skip

    monkeypatch.setattr(node_cmd, "LedgerClient", Client)
    node_cmd.status(node="127.0.0.1:1", timeout=5.0, as_json=False)
    out = capsys.readouterr().out
    assert f"not linked: {problem}" in out
    assert "every peer is on another chain: is this node's genesis file the consortium's?" in out


def test_its_own_request_relayed_back_to_it_does_not_stop_a_node():
    # review: a peer passed a node's PeerStatus request to the node's own port and returned
    # the reply with its instance cleared: a valid proof of the node's own key, and the node
    # stopped as if a twin ran (one faulty peer could stop every validator dialling it).
    # The instance is signed: cleared or changed, the proof fails; kept, it is this node.
    seen: list[str] = []
    me = _me(seen=seen, instance=b"\x01" * 8)
    own = _proved("v0", instance=b"\x01" * 8)
    stripped = services_pb2.Hello()
    stripped.CopyFrom(own)
    stripped.ClearField("instance")
    why = PeerLink._refusal(me, stripped, NONCE)[1]
    assert "answers as 'v0', this node's own member, without proving" in why
    changed = services_pb2.Hello()
    changed.CopyFrom(own)
    changed.instance = b"\x03" * 8
    assert "without proving" in PeerLink._refusal(me, changed, NONCE)[1]
    assert "is this very node" in PeerLink._refusal(me, own, NONCE)[1]
    assert seen == []


def test_a_peer_of_an_earlier_version_is_named_not_linked():
    earlier = _proved("v1")
    earlier.ClearField("challenge")
    assert _refusal(earlier) == (
        "peer 127.0.0.1:26651 ('v1') issued no link challenge (a node of an earlier version? "
        "every node of a consortium runs one version): not linking to it"
    )


def test_a_peer_answering_as_another_member_than_peers_names_is_not_linked():
    # review: whoever runs an address a node dials could pass itself off as any member
    me = _me()
    me._expected = "v1"
    assert PeerLink._refusal(me, _proved("v1"), NONCE)[1] == ""
    assert PeerLink._refusal(me, _proved("v2"), NONCE)[1] == (
        "peer 127.0.0.1:26651 answers as 'v2', where `peers` names 'v1': not linking to it "
        "(is the address right?)"
    )
