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
