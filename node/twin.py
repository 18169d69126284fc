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

The same holds for a store whose sign state ends below a block the key signed: a data
folder restored from a backup or copied (review: it would sign at heights its key had
signed before, if the sync had not brought those blocks before its first timeout).

``recent_own_signature`` asks every peer, before the node starts, for its latest ``DEPTH``
certified blocks (headers and certificates, verified against the genesis). Signatures in
older blocks are found while the node syncs (``Node.check_own_signature``), as long as it
has signed nothing from its store: a validator that signs at its old height while it
catches up stops being checked there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from consensus.validators import ValidatorSet
from node.errors import LedgerError
from node.genesis import Genesis
from node.peers import GRPC_OPTIONS
from node.tls import aio_channel
from node.verify import check_certified_header
from proto import services_pb2, services_pb2_grpc, types_pb2

DEPTH = 10  # blocks looked at: a live validator is in nearly every certificate of 2f+1
CALL_TIMEOUT_S = 2.0  # each call to a peer
TOTAL_TIMEOUT_S = 8.0  # the whole look-up: a start is delayed by at most this


def old_store_refusal(found: str, member: str, signed_to: int) -> str:
    """Why a validator whose sign state ends below a block it signed does not start."""
    return (
        f"{found}, but this node's store has signed only up to height {signed_to}: it is "
        "older than this key's signatures (a data folder restored from a backup or copied "
        f"from another machine), or another process signs with {member!r}'s key; signing "
        "from it could sign a second vote at a height it already signed. Stop any other "
        "process with the key, move the store away and start with --resync"
    )


def twin_refusal(found: str, member: str) -> str:
    """Why a validator without sign state does not start or stops (``found``: which block
    carries its signature)."""
    return (
        f"{found}, but this node's store holds no sign state (it never signed from it): "
        f"another process signs with {member!r}'s key, which would make this one sign a "
        "second vote at a height (run only one of them), or this node's store was moved "
        "away to resync it; if so, and its old process is stopped, start it with --resync"
    )


async def _signed_at(
    address: str,
    genesis: Genesis,
    vs: ValidatorSet,
    member: str,
    above: int = 0,
    credentials: grpc.ChannelCredentials | None = None,
) -> tuple[str, int | None]:
    """(``address``, the latest block that ``member`` precommitted among the peer's last
    ``DEPTH`` blocks and, when ``above`` is given, the ``DEPTH`` blocks just above it; 0
    if none; None if the peer is not on this chain or does not answer).

    Only a precommit signature in a certificate that verifies against the genesis counts
    (review: a faulty peer could otherwise forge one; and a header's ``proposer`` field is
    signed by no one, so a faulty proposer could name another validator there and keep it
    from starting). The blocks just above ``above`` catch a store restored from a backup
    after the chain has moved on more than ``DEPTH`` blocks (review)."""
    async with aio_channel(address, credentials, GRPC_OPTIONS) as channel:
        stub = services_pb2_grpc.LedgerStub(channel)
        try:
            st = await stub.Status(services_pb2.StatusRequest(), timeout=CALL_TIMEOUT_S)
            if st.genesis_hash != genesis.hash:
                return address, None
            latest = range(st.height, max(st.height - DEPTH, above), -1)
            just_above = range(min(above + DEPTH, st.height), above, -1) if above else range(0)
            for height in sorted({*latest, *just_above}, reverse=True):
                req = services_pb2.GetCheckpointRequest(height=height)
                cp: types_pb2.Checkpoint = await stub.GetCheckpoint(req, timeout=CALL_TIMEOUT_S)
                try:
                    got = check_certified_header(bytes(cp.header), cp.certificate, genesis, vs)
                except LedgerError:
                    continue  # (not evidence of anything)
                if member in got.signers:
                    return address, height
        except grpc.aio.AioRpcError:
            return address, None
    return address, 0


async def recent_own_signature(
    peers: Sequence[str],
    genesis: Genesis,
    member: str,
    above: int = 0,
    credentials: grpc.ChannelCredentials | None = None,
) -> tuple[str, int] | None:
    """(peer address, height) of a recent certified block above height ``above`` that
    ``member`` signed, as some peer on this chain has it; None if no peer's last ``DEPTH``
    blocks carry its signature, or none answered within ``TOTAL_TIMEOUT_S``. Every peer is
    asked (a lagging one's blocks are older than the others')."""
    vs = ValidatorSet.from_pairs(genesis.validator_keys())
    tasks = [
        asyncio.create_task(_signed_at(p, genesis, vs, member, above, credentials)) for p in peers
    ]
    try:
        done, _ = await asyncio.wait(tasks, timeout=TOTAL_TIMEOUT_S)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in tasks:  # (in the order of ``peers``)
        if t in done and not t.cancelled() and t.exception() is None:
            address, height = t.result()
            if height:
                return address, height
    return None
