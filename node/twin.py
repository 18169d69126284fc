"""Before a validator without sign state signs: is another process signing with its key?

A validator's store keeps its sign state (what it last signed), which stops it signing two
different votes at one height. A store without one has never signed. If the chain's recent
blocks nevertheless carry this validator's signature, another process signed them with this
key: a twin still running (QA: a standby started with a validator's key and an empty data
folder, dialling every peer but the original, kept signing, and the original was the one
that stopped on the evidence of a double vote), or this node's own earlier run, whose store
was moved away for a resync. The node cannot tell the two apart, so it refuses to start
unless the operator says it is a resync (``suyuan node start --resync``, the old process
stopped).

``recent_own_signature`` asks the peers, before the node starts: the latest ``DEPTH``
certified blocks of the first peer on this chain that answers. Signatures in older blocks
are found while the node syncs (``Node.check_own_signature``), before it has signed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from node.peers import GRPC_OPTIONS
from proto import services_pb2, services_pb2_grpc, types_pb2

DEPTH = 10  # blocks looked at: a live validator is in nearly every certificate of 2f+1
CALL_TIMEOUT_S = 2.0  # each call to a peer
TOTAL_TIMEOUT_S = 8.0  # the whole look-up: a start is delayed by at most this


def twin_refusal(found: str, member: str) -> str:
    """Why a validator without sign state does not start or stops (``found``: which block
    carries its signature)."""
    return (
        f"{found}, but this node's store holds no sign state (it never signed from it): "
        f"another process signs with {member!r}'s key, which would make this one sign a "
        "second vote at a height (run only one of them), or this node's store was moved "
        "away to resync it; if so, and its old process is stopped, start it with --resync"
    )


async def _signed_at(address: str, genesis_hash: bytes, member: str) -> tuple[str, int | None]:
    """(``address``, the latest of the peer's last ``DEPTH`` blocks that ``member`` signed:
    a precommit in its certificate, or its proposal; 0 if none; None if the peer is not on
    this chain or does not answer)."""
    async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as channel:
        stub = services_pb2_grpc.LedgerStub(channel)
        try:
            st = await stub.Status(services_pb2.StatusRequest(), timeout=CALL_TIMEOUT_S)
            if st.genesis_hash != genesis_hash:
                return address, None
            for height in range(st.height, max(st.height - DEPTH, 0), -1):
                req = services_pb2.GetCheckpointRequest(height=height)
                cp: types_pb2.Checkpoint = await stub.GetCheckpoint(req, timeout=CALL_TIMEOUT_S)
                if any(s.validator == member for s in cp.certificate.signatures):
                    return address, height
                if types_pb2.BlockHeader.FromString(cp.header).proposer == member:
                    return address, height
        except grpc.aio.AioRpcError:
            return address, None
    return address, 0


async def recent_own_signature(
    peers: Sequence[str], genesis_hash: bytes, member: str
) -> tuple[str, int] | None:
    """(peer address, height) of a recent block that ``member`` signed, as the first peer
    on this chain to answer has it; None if it signed none of them, or no peer on this
    chain answered within ``TOTAL_TIMEOUT_S``."""
    tasks = [asyncio.create_task(_signed_at(p, genesis_hash, member)) for p in peers]
    try:
        for done in asyncio.as_completed(tasks, timeout=TOTAL_TIMEOUT_S):
            address, height = await done
            if height is not None:
                return (address, height) if height else None
    except TimeoutError:
        return None
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return None
