"""A peer's stream reaches the consensus loop only with votes that can still count (review:
300,000 junk votes, each decoded and queued, held a node to one height in 6.6 s): a vote at
a committed height, or more than ``VOTE_WINDOW`` heights ahead, is dropped unread."""

from __future__ import annotations

from pathlib import Path

from consensus.messages import VoteType, encode_message
from consensus.signing import Ed25519Signer, sign_vote
from node.service import VOTE_WINDOW
from proto import services_pb2, types_pb2
from tests.fixtures import genesis, key
from tests.node.livenode import config, exchange, live_node, run, signed, spy_votes

G = genesis()


def test_stale_and_far_votes_are_dropped_before_the_consensus_loop(tmp_path: Path) -> None:
    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), G) as live:
            node = live.node
            seen = spy_votes(node)
            v0 = Ed25519Signer("v0", key("v0").signing_key)

            def vote(h: int):
                return encode_message(sign_vote(v0, node.ctx, VoteType.PREVOTE, h, 0, None))

            async def send(heights: list[int]) -> None:
                env = services_pb2.PeerEnvelope(consensus=[vote(h) for h in heights])
                await exchange(live, G, "v0", [env])

            await send([1, VOTE_WINDOW, VOTE_WINDOW + 1, 50_000])
            assert seen == [1, VOTE_WINDOW]
            # commit height 1 (as consensus would): its votes are now stale
            first = signed(G, "urn:x:window")
            block, dropped = node.chain.build_block(1, 0, "v0", [(first, node.chain.verify(first))])
            assert not dropped
            node.chain._prepared.clear()
            await node._commit(block, types_pb2.CommitCertificate(height=1))
            seen.clear()
            await send([1, 2, VOTE_WINDOW + 1])
            assert seen == [2, VOTE_WINDOW + 1]

    run(body)
