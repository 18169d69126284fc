"""Compact proposals at one node: the wire form, rebuilding, fetching, serving.

``node.compact`` holds the pure pieces; this module is the node's side (it reads the
mempool, asks peers, feeds the replica). A proposal from a peer carrying a
``CompactBlock`` (or its whole block, which is named by the leaf hashes this node computes
and handled the same way, ``on_full``) is handled in this order:

  (1) structure (``compact.check``) and the proposal's signature by the round's proposer,
      before anything is looked up or fetched (an unsigned body costs one signature check);
  (2) bound to its header: the leaf hashes appended to this node's log must give the
      header's log size and root (the header is what the proposer signed, and the root
      covers every leaf in order). A proposal for a later height, whose parent's log is
      not known yet, is held (``_hold``: ``KEPT`` slots, the first ``HELD_VARIANTS``
      bodies each) and handled when the head gets there; one for a decided height is
      dropped. A full-block proposal is checked for size and signature before any of
      its envelopes is hashed. A
      body that is not the proposer's (a relayer re-wrapping a signed proposal) therefore
      never reaches the replica, which would refuse the block for good and drop the real
      body as a duplicate;
  (3) rebuilt from the mempool (and the envelopes that came with it) by leaf hash; what is
      missing is fetched with ``Peer.GetRecords`` (the proposer first, then the other
      peers; at most ``MAX_FETCHES`` at a time, one per block; a fetch for a slot nearer
      the replica's height and round displaces the furthest one); the answer is bounded;
  (4) the rebuilt body must agree with its header's ``num_records`` and ``records_hash``;
      the replica gets the proposal with the whole block (``verified=True``).

A node that cannot rebuild a block the others decide (its records were at a proposer that
crashed) syncs it once f+1 validators have been seen past its head for a while
(``Node._stuck``); ``GetRecords`` also serves the envelopes of rebuilt bodies, so records
one validator fetched can be fetched from it in turn.

Invariants:
  * the records verified at admission stand for a block's envelopes only for the very
    block object rebuilt from them (``Bodies.known_for``); any other body under the same
    header is verified in full;
  * every cache is bounded: ``KEPT`` rebuilt and computed bodies, ``KEPT`` x
    ``HELD_VARIANTS`` held ones (each at most a block's size), the envelopes of the last
    ``RECENT_BLOCKS`` committed blocks, ``MAX_FETCHES`` fetches;
  * ``release`` (called at the end of every commit) never raises;
  * ``GetRecords`` answers each hash once and at most ``max_block_bytes`` of envelopes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from consensus.events import MessageReceived
from consensus.messages import Message, Proposal, encode_message
from consensus.signing import verify_message
from node import compact
from node.chain import records_hash
from node.errors import InputError, LedgerError
from node.merkle_store import preview
from node.records import VerifiedRecord
from proto import consensus_pb2, types_pb2

if TYPE_CHECKING:
    from node.mempool import Mempool
    from node.node import Node

log = logging.getLogger("suyuan.proposals")
KEPT = 8  # bodies per cache: a few rounds' proposals
RECENT_BLOCKS = 4  # committed blocks whose envelopes GetRecords still serves
MAX_FETCHES = 4
HELD_VARIANTS = 4  # bodies kept per held proposal slot
FETCH_TIMEOUT_S = 5.0  # one GetRecords call to one peer


@dataclass(frozen=True)
class Rebuilt:
    block: types_pb2.Block
    known: list[VerifiedRecord | None]  # per envelope: verified at admission, or None
    compact: consensus_pb2.CompactBlock
    by_leaf: dict[bytes, types_pb2.Envelope]  # served to peers (records this node fetched)


@dataclass(frozen=True)
class _Body:
    """A bound proposal being rebuilt: its slots fill in place as records are fetched."""

    msg: Proposal
    named: consensus_pb2.CompactBlock  # the header and leaf hashes it was bound by
    header: types_pb2.BlockHeader
    slots: compact.Slots
    known: list[VerifiedRecord | None]


K = TypeVar("K")


def _keep(cache: OrderedDict[K, Any], key: K, value: Any) -> None:
    cache[key] = value
    while len(cache) > KEPT:
        cache.popitem(last=False)


class _Recent:
    """A committed block's envelopes by leaf hash; the index is built on the first lookup."""

    def __init__(self, leaf_hashes: Sequence[bytes], block: types_pb2.Block) -> None:
        if len(leaf_hashes) != len(block.envelopes):
            raise ValueError("one leaf hash per envelope")
        self._hashes: Sequence[bytes] | None = leaf_hashes
        self._block: types_pb2.Block | None = block
        self._index: dict[bytes, types_pb2.Envelope] = {}

    def get(self, leaf_hash: bytes) -> types_pb2.Envelope | None:
        if self._block is not None and self._hashes is not None:
            self._index = dict(zip(self._hashes, self._block.envelopes, strict=True))
            self._hashes = self._block = None
        return self._index.get(leaf_hash)


class Bodies:
    """The node's bounded caches of proposal bodies (event-loop state; ``known_for`` is
    also called from worker threads and reads one immutable entry)."""

    def __init__(self) -> None:
        self.rebuilt: OrderedDict[bytes, Rebuilt] = OrderedDict()
        self.wired: OrderedDict[bytes, tuple[types_pb2.Block, consensus_pb2.CompactBlock]] = (
            OrderedDict()
        )
        self.fetching: dict[tuple[int, int, bytes], asyncio.Task[None]] = {}
        # proposals for a later height, until the head reaches it (``_hold``)
        self.held: OrderedDict[tuple[int, int, bytes], list[Held]] = OrderedDict()
        self.recent: deque[_Recent] = deque(maxlen=RECENT_BLOCKS)

    def known_for(self, block_hash: bytes, block: types_pb2.Block) -> list[VerifiedRecord | None]:
        """The admission results standing for ``block``'s envelopes, or all None."""
        r = self.rebuilt.get(block_hash)
        if r is not None and r.block is block:
            return r.known
        return [None] * len(block.envelopes)

    def committed(self, leaf_hashes: Sequence[bytes], block: types_pb2.Block) -> None:
        """Keep a committed block's envelopes answerable by leaf hash (indexed lazily: most
        recent blocks are never asked for)."""
        self.recent.append(_Recent(leaf_hashes, block))

    def envelope(self, mempool: Mempool, leaf_hash: bytes) -> types_pb2.Envelope | None:
        p = mempool.by_leaf(leaf_hash)
        if p is not None:
            return p.envelope
        for r in reversed(self.rebuilt.values()):  # fetched ones are in no mempool
            e = r.by_leaf.get(leaf_hash)
            if e is not None:
                return e
        for blk in reversed(self.recent):
            e = blk.get(leaf_hash)
            if e is not None:
                return e
        return None

    def tasks(self) -> list[asyncio.Task[None]]:
        return list(self.fetching.values())


def wire(node: Node, msg: Message) -> consensus_pb2.ConsensusMessage:
    """A proposal with its block goes out compact; votes, and a body this node cannot name
    by leaf hashes (a peer's malformed full block, relayed), as they are."""
    if not isinstance(msg, Proposal) or msg.block is None:
        return encode_message(msg)
    c = _compact_of(node, msg.block_hash, msg.block)
    if c is None:
        return encode_message(msg)
    pb = msg.to_proto(with_block=False)
    pb.compact.CopyFrom(c)
    return consensus_pb2.ConsensusMessage(proposal=pb)


def _compact_of(
    node: Node, block_hash: bytes, block: types_pb2.Block
) -> consensus_pb2.CompactBlock | None:
    b = node.bodies
    r = b.rebuilt.get(block_hash)
    if r is not None and r.block is block:
        return r.compact
    w = b.wired.get(block_hash)
    if w is not None and w[0] is block:
        return w[1]
    try:
        c = compact.to_compact(block, node.chain.leaf_hashes(block))
    except LedgerError as e:
        log.debug("proposal body not sent compact: %s", e)
        return None
    _keep(b.wired, block_hash, (block, c))
    return c


def on_full(node: Node, msg: Proposal) -> None:
    """A peer's proposal carrying its whole block: named by the leaf hashes this node
    computes and handled as a compact one whose envelopes came with it (so its body is
    bound to its header before the replica sees it). Raises ``InputError``."""
    assert msg.block is not None
    block, limits = msg.block, node.genesis.consensus
    if len(block.envelopes) > limits.max_block_records:
        raise InputError(f"full proposal: {len(block.envelopes)} records")
    if block.ByteSize() > _body_cap(node):
        raise InputError(f"full proposal: {block.ByteSize()} bytes")
    _check_signed(node, msg)  # before the envelopes are hashed
    hashes = [compact.envelope_leaf_hash(pb) for pb in block.envelopes]
    c = compact.to_compact(block, hashes)
    on_compact(node, replace(msg, block=None), c, dict(zip(hashes, block.envelopes, strict=True)))


def _check_signed(node: Node, msg: Proposal) -> None:
    if msg.proposer != node.chain.validators.proposer(msg.height, msg.round):
        raise InputError(f"proposal: {msg.proposer!r} is not the round's proposer")
    if verify_message(msg, node.ctx) is not None:
        raise InputError("proposal: bad signature")


def on_compact(
    node: Node,
    msg: Proposal,
    c: consensus_pb2.CompactBlock,
    supplied: dict[bytes, types_pb2.Envelope] | None = None,
) -> None:
    """Steps (1)-(4) of the module docstring; ``supplied`` maps leaf hashes this node
    computed to envelopes that came with the proposal. Raises ``InputError`` for a
    malformed or unsigned compact proposal, or one whose leaf hashes do not give its
    header's log root (the caller drops it)."""
    b = node.bodies
    r = b.rebuilt.get(msg.block_hash)
    if r is not None and r.compact.leaf_hashes == c.leaf_hashes:
        # a relayed or re-sent copy of a body rebuilt here: its signature (this copy's round,
        # pol_round) is still the replica's to check
        node.events.put_nowait(MessageReceived(replace(msg, block=r.block)))
        return
    compact.check(c, msg.block_hash, node.genesis.consensus.max_block_records)
    _check_signed(node, msg)
    replica = node.replica
    kept = replica is None or replica.retains(msg.height, msg.round)
    if msg.height <= node.store.head().height or (
        replica is not None and msg.height < replica.height
    ):
        return  # decided here already: its body is not needed
    header = _header(c, msg.height)
    bound = _binds(node, header, c.leaf_hashes)
    if bound is None:
        if kept:  # a later height: bound when the head gets there
            _hold(b, msg, c, supplied)
        return
    if not bound:
        raise InputError("compact proposal: its leaf hashes do not give its header's log root")
    pending, missing = compact.resolve(c, node.mempool.by_leaf)
    slots: compact.Slots = [p.envelope if p is not None else None for p in pending]
    known = [p.verified if p is not None else None for p in pending]
    if missing and supplied:
        for i in missing:
            slots[i] = supplied.get(bytes(c.leaf_hashes[i]))
        missing = [i for i in missing if slots[i] is None]
    body = _Body(msg, c, header, slots, known)
    if not missing:
        _deliver(node, body)  # far rounds too: the replica counts them
        return
    if not kept:
        return  # a round the replica would not keep: not worth a fetch
    key = (msg.height, msg.round, msg.block_hash)  # bound: one leaf list per block hash
    if key in b.fetching:
        return  # being fetched: the 1 s re-broadcast comes back if it fails
    if len(b.fetching) >= MAX_FETCHES:
        now = (replica.height, replica.round) if replica is not None else (msg.height, 0)
        furthest = max(b.fetching, key=lambda k: _distance(k, now))
        if _distance(key, now) >= _distance(furthest, now):
            return  # the fetches under way are for slots at least as near
        b.fetching.pop(furthest).cancel()  # a stale or later-round one gives way
    task = asyncio.create_task(_fetch(node, body, missing), name="fetch")
    b.fetching[key] = task

    def done(t: asyncio.Task[None]) -> None:
        if b.fetching.get(key) is t:
            del b.fetching[key]

    task.add_done_callback(done)


def _distance(key: tuple[int, int, bytes], now: tuple[int, int]) -> tuple[int, int, int]:
    """How far a fetch's proposal slot (height, round) is from the replica's: slots
    already passed are the furthest, then later heights, then later rounds."""
    h, r = key[0], key[1]
    return (1 if (h, r) < now else 0, abs(h - now[0]), abs(r - now[1]))


def _header(c: consensus_pb2.CompactBlock, height: int) -> types_pb2.BlockHeader:
    """``c``'s header, for the signed ``height``. Raises ``InputError``."""
    header = types_pb2.BlockHeader()
    try:
        header.ParseFromString(c.header)
    except DecodeError as e:
        raise InputError("compact proposal: header does not parse") from e
    if header.height != height:
        raise InputError(f"compact proposal: header height {header.height}, signed {height}")
    return header


def _binds(node: Node, header: types_pb2.BlockHeader, leaf_hashes: Sequence[bytes]) -> bool | None:
    """Whether ``leaf_hashes``, appended to this node's log, give the header's record
    count, log size and root (so they are the proposer's leaves, in order); None if the
    block is not the next one here (its parent's log is not known yet)."""
    head = node.store.head()
    front = node.store.frontier()
    if header.height != head.height + 1 or front.size != head.log_size:
        return None  # a later block (or the head moved while this ran): decide later
    if header.num_records != len(leaf_hashes):
        return False
    size, root = preview(front, leaf_hashes, hashed=True)
    return size == header.log_size and root == header.log_root


Held = tuple[Proposal, consensus_pb2.CompactBlock, "dict[bytes, types_pb2.Envelope] | None"]


def _hold(
    b: Bodies,
    msg: Proposal,
    c: consensus_pb2.CompactBlock,
    supplied: dict[bytes, types_pb2.Envelope] | None,
) -> None:
    """Keep a later height's proposal: ``KEPT`` proposal slots (height, round, block), the
    oldest slot going first, and per slot the first ``HELD_VARIANTS`` bodies that came
    (the signature covers the header only, so a relayer can re-wrap it with other leaf
    hashes; they cannot push out the body that came first, nor another slot's)."""
    key = (msg.height, msg.round, msg.block_hash)
    variants = b.held.get(key)
    if variants is None:
        _keep(b.held, key, [(msg, c, supplied)])
    elif len(variants) < HELD_VARIANTS and all(v[1].leaf_hashes != c.leaf_hashes for v in variants):
        variants.append((msg, c, supplied))


def release(node: Node) -> None:
    """After a commit: handle the held proposals for the new next height, drop older ones.
    Never raises (it runs in the consensus loop): a body that fails is logged and dropped."""
    b = node.bodies
    nxt = node.store.head().height + 1
    for key in [k for k in b.held if k[0] <= nxt]:
        variants = b.held.pop(key, None)
        if key[0] != nxt or variants is None:
            continue
        for msg, c, supplied in variants:
            try:
                on_compact(node, msg, c, supplied)
            except LedgerError as e:
                log.debug("held proposal %d/%d dropped: %s", msg.height, msg.round, e)
            except Exception:  # a bug here must not stop consensus
                log.exception("held proposal %d/%d", msg.height, msg.round)


async def _fetch(node: Node, body: _Body, missing: list[int]) -> None:
    """Ask the proposer, then the other peers, for the missing envelopes."""
    loop = asyncio.get_running_loop()
    msg, c, n = body.msg, body.named, len(body.slots)
    wanted = len(missing)
    for peer in sorted(node.peers, key=lambda p: p.info.member != msg.proposer):
        if not missing:
            break
        asked = [c.leaf_hashes[i] for i in missing]
        try:
            got = await peer.get_records(asked, _body_cap(node), FETCH_TIMEOUT_S)
            missing = await loop.run_in_executor(None, compact.fill, c, body.slots, missing, got)
        except grpc.aio.AioRpcError as e:
            log.info("GetRecords from %s failed: %s", peer.address, e.code().name)
        except LedgerError as e:
            log.info("%s", e)
        except Exception:  # one peer's bad answer must not end the fetch
            log.exception("GetRecords from %s: unusable answer", peer.address)
    if missing:
        log.info(
            "proposal %d/%d: %d of %d records not found at any peer; syncing",
            msg.height,
            msg.round,
            len(missing),
            n,
        )
        node.trigger_sync()  # most likely the others decided it already
        return
    log.info(
        "proposal %d/%d: fetched %d of its %d records from peers", msg.height, msg.round, wanted, n
    )
    _deliver(node, body)


def _body_cap(node: Node) -> int:
    """The most bytes a peer's block body may take: ``max_block_bytes`` of envelopes (what
    ``serve`` sends at most, what a block may hold) plus protobuf framing. Bounds a full
    proposal and a ``GetRecords`` answer before anything in them is parsed or hashed."""
    c = node.genesis.consensus
    return c.max_block_bytes + 16 * c.max_block_records + 4096


def _agrees(header: types_pb2.BlockHeader, block: types_pb2.Block, known: Sequence[Any]) -> bool:
    """The body's record ids are the ones its header commits to (its count and leaves
    were bound to the header before it was assembled, ``_binds``)."""
    ids = (
        k.record_id if k is not None else hashlib.sha256(pb.payload).digest()
        for k, pb in zip(known, block.envelopes, strict=True)
    )
    return header.records_hash == records_hash(ids)


def _deliver(node: Node, body: _Body) -> None:
    msg, c = body.msg, body.named
    block = compact.assemble(c, body.slots)
    if not _agrees(body.header, block, body.known):
        log.info("proposal %d/%d: body does not match its header; ignored", msg.height, msg.round)
        return
    by_leaf = dict(zip(c.leaf_hashes, block.envelopes, strict=True))
    _keep(node.bodies.rebuilt, msg.block_hash, Rebuilt(block, body.known, c, by_leaf))
    # ``msg`` itself passed verify_message in on_compact
    node.events.put_nowait(MessageReceived(replace(msg, block=block), verified=True))


def serve(node: Node, leaf_hashes: Sequence[bytes]) -> list[types_pb2.Envelope]:
    """``Peer.GetRecords``: each hash answered once, pending or recently committed, up to
    ``max_block_bytes`` of envelopes (the asker tries another peer for the rest)."""
    out: list[types_pb2.Envelope] = []
    seen: set[bytes] = set()
    size = 0
    cap = node.genesis.consensus.max_block_bytes
    for h in leaf_hashes:
        if h in seen:
            continue
        seen.add(h)
        e = node.bodies.envelope(node.mempool, h)
        if e is None:
            continue
        size += e.ByteSize()
        if size > cap:
            break
        out.append(e)
    return out


__all__ = ["Bodies", "Rebuilt", "on_compact", "serve", "wire"]
