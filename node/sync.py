"""Block sync: a node that is behind fetches certified blocks from peers.

Each block is checked completely before it reaches the replica, in two worker-thread
steps: ``_certified_records`` (its commit certificate must verify against the genesis
validators for exactly this height and this block's hash, one ``require_certificate`` call:
2f+1 signature checks per block, not consensus; and its records parse), which needs no
head and so runs while the block before it is still being applied; then ``_check_block``
on the head: the body must be the one the header commits to (num_records, records_hash,
chain link, custody rules and the log size and root after it; ``ChainState.validate_block``
without re-checking record signatures, which the certified log root covers). A certified
header served with other envelopes is thus refused here, so a synced block never fails when
the consensus loop applies it (the validation is cached and not repeated there, and the
replica is told the certificate is verified).

Blocks are read from the peer's stream by a reader task, up to ``LOOKAHEAD`` ahead of the
one being checked. When the pull starts at least ``[sync] helper_min_blocks`` blocks
behind the peer's claimed height, the reader also hands each block to a helper process
(``node.sync_helper``) to parse, and the first step rebuilds the records from its answer
instead of parsing them: the second core does the parsing. Until the helper is up, or if
it fails, the node parses itself.

A peer that serves a block failing these checks, or the wrong height, is dropped for this
round (its claimed height forgotten) and the next peer is tried. A peer whose pull brought
nothing also loses its claimed height, so sync is not re-triggered every second by a stale
or false claim; its next status answer restores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import grpc

from consensus.events import SyncCommitted
from node.chain import BodyMismatchError, parse_certified
from node.errors import LedgerError, ReplicationError, StorageError
from node.records import VerifiedRecord
from node.sync_helper import LOOKAHEAD, SyncHelper, rebuild
from proto import services_pb2, types_pb2

if TYPE_CHECKING:
    from node.node import Node

log = logging.getLogger("suyuan.sync")
_MAX_PASSES = 20
_APPLY_TIMEOUT_S = 30.0


async def _wait_applied(node: Node, height: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _APPLY_TIMEOUT_S
    while node.store.head().height < height:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ReplicationError(f"block {height} was not applied within {_APPLY_TIMEOUT_S}s")
        try:
            await asyncio.wait_for(node.committed.wait(), timeout=min(remaining, 0.5))
        except TimeoutError:
            continue


async def sync_from_peers(node: Node) -> None:
    """Catch up to the highest peer; returns when no peer is ahead or after bounded passes."""
    for _ in range(_MAX_PASSES):
        head = node.store.head().height
        ahead = sorted(
            (p for p in node.peers if p.info.height > head), key=lambda p: -p.info.height
        )
        if not ahead:
            # heights learnt from status polls may be stale: ask each peer once
            for p in node.peers:
                try:
                    reply = await p.stub.PeerStatus(
                        services_pb2.Hello(
                            genesis_hash=node.genesis.hash, member=node.key.name, height=head
                        ),
                        timeout=2.0,
                    )
                    p.info.height = reply.height
                except grpc.aio.AioRpcError:
                    continue
            ahead = sorted(
                (p for p in node.peers if p.info.height > head), key=lambda p: -p.info.height
            )
            if not ahead:
                return
        progressed = False
        for peer in ahead:
            try:
                n = await _pull(node, peer.stub, peer.address, peer.info.height)
            except (grpc.aio.AioRpcError, LedgerError) as e:
                log.warning("sync from %s failed: %s", peer.address, e)
                peer.info.height = 0  # forget its claim until it answers again
                continue
            if n:
                progressed = True
                break
            peer.info.height = min(peer.info.height, node.store.head().height)
        if not progressed:
            return


def _certified_records(
    node: Node,
    block: types_pb2.Block,
    cert: types_pb2.CommitCertificate,
    decoded: bytes | None = None,
) -> list[VerifiedRecord | None]:
    """The head-independent half of a block's check: its certificate, and its records
    parsed (signatures not re-checked: the certified log root covers them), or rebuilt from
    the sync helper's ``decoded`` blob. Runs while the previous block is still being
    applied. Raises ``LedgerError``."""
    node.chain.check_certificate(block, cert)
    if decoded is not None:
        try:
            return rebuild(decoded, block)
        except ValueError as e:
            log.warning("sync helper answer unusable (%s); parsing in the node", e)
    return parse_certified(block)


class LocalStateError(Exception):
    """A certified block whose envelopes are the certified ones (their leaves make the
    header's log root) fails this node's checks: its own state is at fault (a damaged
    store, or rules other than the validators'), not the peer that served it."""


def _check_block(node: Node, block: types_pb2.Block, known: list[VerifiedRecord | None]) -> None:
    """The rest, on the head: chain link, replay, custody rules, log size and root.

    A ``BodyMismatchError`` is the peer's (other envelopes under a certified header); any
    other failure is this node's (``LocalStateError``; QA-T: a validator with one damaged
    code state looped for ever, blaming each peer in turn)."""
    try:
        node.chain.validate_block(block, verify_signatures=False, known=known)
    except BodyMismatchError:
        raise
    except LedgerError as e:
        raise LocalStateError(str(e)) from e


_Item = tuple[types_pb2.CommittedBlock, "asyncio.Future[bytes | None] | None"]


async def _pull(node: Node, stub: object, address: str, claimed: int = 0) -> int:
    """Pull blocks from one peer until its stream ends; returns how many were applied.

    A reader task keeps up to ``LOOKAHEAD`` blocks ahead of the one being checked and, when
    the peer ``claimed`` at least ``[sync] helper_min_blocks`` blocks more than this node
    has, hands each to the sync helper process to parse as it arrives."""
    loop = asyncio.get_running_loop()
    start = node.store.head().height + 1
    call = stub.GetBlocks(  # type: ignore[attr-defined]
        services_pb2.GetBlocksRequest(from_height=start, to_height=0), timeout=300
    )
    min_blocks = node.config.sync.helper_min_blocks
    helper = SyncHelper() if min_blocks and claimed - start + 1 >= min_blocks else None
    queue: asyncio.Queue[_Item | BaseException | None] = asyncio.Queue(maxsize=LOOKAHEAD)

    async def read() -> None:
        try:
            async for cb in call:
                if helper is not None and node.sync_helper is not helper:
                    # started on the first block, not on the claim: a claim is unverified,
                    # and a peer claiming heights it does not serve made the node start a
                    # helper process each second (review)
                    node.sync_helper = helper
                    await helper.start()
                decoding = await helper.submit(cb.block) if helper is not None else None
                await queue.put((cb, decoding))
        except Exception as e:  # handed to the consumer, which raises it
            await queue.put(e)
        else:
            await queue.put(None)

    reader: asyncio.Task[None] | None = None
    n = 0
    expected = start
    try:
        reader = asyncio.create_task(read(), name="sync-reader")
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            cb, decoding = item
            cert, block = cb.certificate, cb.block
            if cert.height != expected:
                raise ReplicationError(
                    f"{address} served height {cert.height}, expected {expected}"
                )
            if node.store.head().height >= expected:  # consensus got there first
                expected += 1
                continue
            decoded = await decoding if decoding is not None else None
            try:
                # certificate and parse overlap the apply of the block before (fed, not awaited)
                known = await loop.run_in_executor(
                    None, _certified_records, node, block, cert, decoded
                )
            except LedgerError as e:
                raise ReplicationError(f"{address} served block {expected} that fails: {e}") from e
            await _wait_applied(node, expected - 1)  # a local failure, not the peer's
            if node.store.head().height >= expected:
                expected += 1
                continue
            try:
                await loop.run_in_executor(None, _check_block, node, block, known)
            except (LedgerError, LocalStateError) as e:
                if node.store.head().height >= expected:  # the head moved while checking
                    expected += 1
                    continue
                if isinstance(e, LocalStateError):
                    node.fatal(
                        f"block {expected}, certified by the validators and served as certified "
                        f"by {address}, fails this node's checks ({e}): this node's store is "
                        "likely damaged, or its rules are not the validators' (another "
                        "version); stop it, run `suyuan node check`, and resync it (README: "
                        "Disk incidents, backups and resync)",
                        StorageError,
                    )
                    return n
                raise ReplicationError(f"{address} served block {expected} that fails: {e}") from e
            node.check_own_signature(block.header, cert)
            node.events.put_nowait(SyncCommitted(block, cert, verified=True))
            n += 1
            expected += 1
            if n % 500 == 0:
                log.info("synced to height %d from %s", expected - 1, address)
        await _wait_applied(node, expected - 1)
    finally:
        cancel = getattr(call, "cancel", None)
        if cancel is not None:
            cancel()  # the rest of the stream is not wanted (a no-op once it has ended)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if helper is not None:
            node.sync_helper = None
            await helper.close()  # (nothing to do if no block came)
    if n:
        log.info("synced %d blocks from %s, now at height %d", n, address, expected - 1)
    return n
