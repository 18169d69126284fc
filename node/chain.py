"""The ledger one node keeps: admission, block building, block validation and commit.

``ChainState`` ties the store, the genesis and the custody rules together. Every validator
runs the same checks on every record (steps numbered in ``validate_block``), so an honest
validator never prevotes a block an honest proposer would not have built.

Invariants:
  * a block is applied only after ``validate_block`` accepted it, or after its commit
    certificate verified (block sync);
  * a record is verified once per node, at admission; a block rebuilt from the mempool
    carries those results (``known``), matched by leaf hash (payload and every signature);
  * ``commit`` writes the block, its certificate, the log leaves, indexes and custody state
    in one store transaction;
  * block time (rule block-time): a proposed block's header time is after its parent's and
    at most ``MAX_CLOCK_AHEAD_MS`` ahead of the validating node's clock, so a committed
    header's time was at most that far ahead of the clock of an honest validator (2f+1
    prevoted it); no new record's event is more than a day after it (rule event-time).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from consensus.certificate import require_certificate
from consensus.messages import block_hash_of
from consensus.validators import ValidatorSet
from node import compact, custody, event_ids
from node.convert import envelope_from_proto
from node.errors import InputError, LedgerError, ReplayError, RuleError, TooLargeError
from node.genesis import Genesis
from node.records import (
    TraceRecord,
    VerifiedRecord,
    ahead_problem,
    header_time,
    verify_envelope,
)
from node.store import BlockWrite, Head, Store, StoreReader
from proto import types_pb2

log = logging.getLogger("suyuan.chain")
EXTRA_DBS = (custody.DB_CUSTODY, custody.DB_EDGES)

#: How far a proposed block's header time may be ahead of a validator's clock (rule
#: block-time). Validators' clocks must agree to within this (NTP keeps them within a
#: second); a validator whose clock is further behind prevotes nil on honest proposals.
MAX_CLOCK_AHEAD_MS = 30_000


def parse_certified(block: types_pb2.Block) -> list[VerifiedRecord | None]:
    """A certified block's records, parsed (``parse_trusted``: signatures not re-checked,
    the certified log root covers them). Raises ``BodyMismatchError``."""
    out: list[VerifiedRecord | None] = []
    for i, pb in enumerate(block.envelopes):
        try:
            out.append(parse_trusted(pb))
        except LedgerError as e:
            raise BodyMismatchError(f"block: record {i}: {e}") from e
    return out


def parse_trusted(pb: types_pb2.Envelope) -> VerifiedRecord:
    """Parse a certified block's record without re-checking its signatures (unknown
    protobuf fields are discarded first, as ``ChainState.verify`` does)."""
    pb.DiscardUnknownFields()
    env = envelope_from_proto(pb)
    return VerifiedRecord(env.record_id, TraceRecord.from_payload(env.payload, strict=False), env)


def records_hash(record_ids: Iterable[bytes]) -> bytes:
    """SHA-256 over the concatenated record ids of a block, in block order."""
    h = hashlib.sha256()
    for rid in record_ids:
        h.update(rid)
    return h.digest()


class StoreCustodyView:
    """Committed custody state read from the store (a ``custody.CustodyView``)."""

    def __init__(self, store: Store | StoreReader) -> None:
        self.store = store

    def get(self, code: str) -> custody.CodeState | None:
        raw = self.store.get(custody.DB_CUSTODY, code.encode())
        return custody.decode_state(raw) if raw is not None else None


@dataclass(frozen=True)
class Prepared:
    """A block that passed validation, with everything ``commit`` needs."""

    block: types_pb2.Block
    block_hash: bytes
    header: types_pb2.BlockHeader
    verified: tuple[VerifiedRecord, ...]
    leaf_hashes: tuple[bytes, ...]  # RFC 9162 leaf hashes of the envelopes, in order
    update: custody.BlockUpdate


class BodyMismatchError(InputError):
    """A block's envelopes are not the ones its header commits to (their count, record ids
    or leaves): in a certified block, the fault of the peer that served it (``node.sync``),
    never of this node's state."""


@dataclass(frozen=True)
class Dropped:
    record_id: bytes
    reason: LedgerError


class ChainState:
    def __init__(self, store: Store, genesis: Genesis) -> None:
        self.store = store
        self.genesis = genesis
        self.validators = ValidatorSet.from_pairs(genesis.validator_keys())
        # the consensus limit: every node accepts the same blocks whatever its config says (a
        # node's own, lower ``limits.max_record_bytes`` applies at Submit only)
        self.max_record_bytes = genesis.consensus.max_record_bytes
        self.custody_view = StoreCustodyView(store)
        event_ids.catch_up(store)  # (a store of an earlier version: before any record is judged)
        self._prepared: dict[bytes, Prepared] = {}
        self._head_time_ms = _head_time_ms(store)

    def head(self) -> Head:
        return self.store.head()

    @property
    def head_time_ms(self) -> int:
        """The head block's header time (Unix ms; 0 before the first block)."""
        return self._head_time_ms

    # ------------------------------------------------------------------ records

    def verify(self, pb: types_pb2.Envelope) -> VerifiedRecord:
        """Steps (1)-(6) of ``node.records.verify_envelope`` (envelope size limit first).

        Not cached: a record is verified once per node, when it reaches the mempool;
        blocks rebuilt from the mempool (``node.proposals``) reuse those results.

        Discards ``pb``'s unknown protobuf fields first: the leaf (and so the log) covers
        only the known ones, and every node must store the same envelope bytes."""
        pb.DiscardUnknownFields()
        if pb.ByteSize() > self.max_record_bytes + 1024:
            raise TooLargeError(f"envelope is {pb.ByteSize()} bytes, limit {self.max_record_bytes}")
        return verify_envelope(
            envelope_from_proto(pb), self.genesis, max_bytes=self.max_record_bytes
        )

    def verify_many(self, pbs: Sequence[types_pb2.Envelope]) -> list[VerifiedRecord | LedgerError]:
        """Verify each envelope in the calling thread (callers already run off the event
        loop), errors in place; results in input order.

        No thread pool: the Python part of a verification holds the GIL, and per-item
        thread hand-offs cost more CPU than they save when several nodes share the cores
        (measured: 183 us of CPU per record with a 2-thread pool per item, 88 us here)."""
        out: list[VerifiedRecord | LedgerError] = []
        for pb in pbs:
            try:
                out.append(self.verify(pb))
            except LedgerError as e:
                out.append(e.with_traceback(None))  # kept: no frame -> list -> error cycle
            except Exception as e:  # a rule's bug refuses its record, not the whole batch
                log.exception("checking a record failed")
                out.append(InputError(f"record: cannot be checked ({type(e).__name__}: {e})"))
        return out

    def check_certificate(self, block: types_pb2.Block, cert: types_pb2.CommitCertificate) -> None:
        """``cert`` certifies ``block``: 2f+1 precommits of this chain's validators for its
        hash (``require_certificate``; a synced or stored block). Raises
        ``VerificationError``."""
        require_certificate(
            cert,
            self.validators,
            self.genesis.hash,
            self.genesis.chain_id,
            expected_hash=block_hash_of(block),
        )

    def check_fresh(self, v: VerifiedRecord, reader: StoreReader | None = None) -> None:
        """Replay protection against the committed log (the mempool checks pending ones).

        One lookup for a fresh record: the record id is the SHA-256 of the payload, which
        names the author and nonce, and every committed record's (author, nonce) is in the
        nonce index, so an unused nonce means an uncommitted record. The id index (random
        keys, one B-tree leaf page per lookup) is read only to name a repeat precisely."""
        if reader is None:
            with self.store.reader() as r:
                self.check_fresh(v, r)
            return
        if reader.nonce_seen(v.record.author, v.record.nonce):
            if reader.has_record(v.record_id):
                raise ReplayError(f"record {v.record_id.hex()} is already committed")
            raise ReplayError(
                f"nonce {v.record.nonce!r} of {v.record.author!r} was used by a committed record"
            )

    def admission_checks(
        self, pbs: Sequence[types_pb2.Envelope]
    ) -> tuple[list[VerifiedRecord | LedgerError], int]:
        """``verify_many`` plus replay checks against the log, in one read transaction.

        Returns the results and the head height they were checked at: a caller that admits
        them after another block was committed must check freshness again."""
        results = self.verify_many(pbs)
        height = self.store.head().height
        with self.store.reader() as r:
            for i, v in enumerate(results):
                if isinstance(v, LedgerError):
                    continue
                try:
                    self.check_fresh(v, r)
                except ReplayError as e:
                    results[i] = e.with_traceback(None)
        return results, height

    def check_submitted(self, v: VerifiedRecord, reader: StoreReader) -> None:
        """The admission rules for a record a client submits (``Node.admit``, local): its
        eventTime is at most a day after this node's clock (rule event-time:
        ``records.ahead_problem``; block validity judges it again against the header's
        time), and its EPCIS eventID is not on a committed record (rule event-id; an error
        declaration's rule: ``node.event_ids``). Raises ``RuleError``."""
        why = ahead_problem(v.record, int(time.time() * 1000))
        if why:
            raise _event_time_error(v, why)
        event_ids.check_record(v.record, reader, self.genesis)

    def check_rules(
        self,
        records: Sequence[VerifiedRecord],
        reader: StoreReader | None = None,
        *,
        new: bool = False,
    ) -> custody.BlockUpdate:
        """Custody rules for ``records`` in order, over the committed state (``new``: not
        yet committed records, judged by the rules for new records too)."""
        if reader is None:
            with self.store.reader() as r:
                return self.check_rules(records, r, new=new)
        items = [(v.record, v.envelope.signers()) for v in records]
        declared = {
            i: found
            for i, v in enumerate(records)
            if (found := declared_index(v.record, reader)) is not None
        }
        return custody.apply_block(
            StoreCustodyView(reader),
            items,
            self.genesis,
            self.store.head().log_size,
            declared,
            new=new,
        )

    # ------------------------------------------------------------------ blocks

    def build_block(
        self,
        height: int,
        round_: int,
        proposer: str,
        candidates: Sequence[tuple[types_pb2.Envelope, VerifiedRecord]],
        time_ms: int | None = None,
        *,
        known_fresh: Callable[[bytes], bool] | None = None,
    ) -> tuple[types_pb2.Block, list[Dropped]]:
        """A block of the candidates that still pass every rule, in order, and the rest.

        Its header time is ``time_ms`` (default: this node's clock), or 1 ms after the
        head's if that is not earlier (rule block-time). ``known_fresh(record_id)`` true means the
        record is known not to be committed (it is pending in this node's mempool), which
        spares the store lookups."""
        head = self.store.head()
        if height != head.height + 1:
            raise InputError(f"cannot build block {height} on head {head.height}")
        if time_ms is None:
            time_ms = int(time.time() * 1000)
        time_ms = max(time_ms, self._head_time_ms + 1)
        dropped: list[Dropped] = []
        fresh: list[tuple[types_pb2.Envelope, VerifiedRecord]] = []
        seen_ids: set[bytes] = set()
        seen_nonces: set[tuple[str, str]] = set()
        with self.store.reader() as reader:
            for pb, v in candidates:
                nonce = (v.record.author, v.record.nonce)
                try:
                    if v.record_id in seen_ids or nonce in seen_nonces:
                        raise ReplayError("repeated within the block")
                    if known_fresh is None or not known_fresh(v.record_id):
                        self.check_fresh(v, reader)
                except LedgerError as e:
                    dropped.append(Dropped(v.record_id, e.with_traceback(None)))
                    continue
                late = ahead_problem(v.record, time_ms, "the block's time")
                if late:
                    dropped.append(Dropped(v.record_id, _event_time_error(v, late)))
                    continue
                seen_ids.add(v.record_id)
                seen_nonces.add(nonce)
                fresh.append((pb, v))
            # (rule event-id, for new records: a block of ours is one)
            refused = event_ids.check_new([v for _, v in fresh], reader, self.genesis)
            if refused:
                dropped += [Dropped(fresh[i][1].record_id, err) for i, err in refused]
                gone = {i for i, _ in refused}
                fresh = [item for i, item in enumerate(fresh) if i not in gone]
            update = self.check_rules([v for _, v in fresh], reader, new=True)
        bad = {r.position for r in update.refused}
        for r in update.refused:
            dropped.append(Dropped(fresh[r.position][1].record_id, r.error))
        kept = [item for i, item in enumerate(fresh) if i not in bad]
        leaf_hashes = tuple(v.leaf_hash for _, v in kept)  # hashed once per record and node
        size, root = self.store.preview_root(leaf_hashes, hashed=True)
        header = types_pb2.BlockHeader(
            chain_id=self.genesis.chain_id,
            genesis_hash=self.genesis.hash,
            height=height,
            round=round_,
            time_ms=time_ms,
            proposer=proposer,
            prev_block_hash=head.block_hash,
            log_size=size,
            log_root=root,
            num_records=len(kept),
            records_hash=records_hash(v.record_id for _, v in kept),
        )
        block = types_pb2.Block(header=header.SerializeToString(), envelopes=[pb for pb, _ in kept])
        if not update.refused:  # our own proposal needs no second validation
            self._remember(
                Prepared(
                    block,
                    block_hash_of(block),
                    header,
                    tuple(v for _, v in kept),
                    leaf_hashes,
                    update,
                )
            )
        return block, dropped

    def leaf_hashes(self, block: types_pb2.Block) -> list[bytes]:
        """The leaf hashes of ``block``'s envelopes, in order (a compact proposal's body):
        from the validated records when ``block`` is the very block validated or built
        here, else computed."""
        p = self._prepared.get(block_hash_of(block))
        if p is not None and p.block is block:
            return list(p.leaf_hashes)
        return [compact.envelope_leaf_hash(pb) for pb in block.envelopes]

    def _remember(self, prepared: Prepared) -> None:
        if len(self._prepared) > 64:
            self._prepared.clear()
        self._prepared[prepared.block_hash] = prepared

    def validate_block(
        self,
        block: types_pb2.Block,
        *,
        verify_signatures: bool = True,
        known_fresh: Callable[[bytes], bool] | None = None,
        known: Sequence[VerifiedRecord | None] | None = None,
    ) -> Prepared:
        """Check a proposed (or synced) block against the head; raise the first failure.

        (1) the header parses; chain id and genesis hash are this chain's;
        (2) height is head + 1 and prev_block_hash is the head's hash; proposer a validator;
            in a proposed block (signatures checked), its time is after the head's and at
            most ``MAX_CLOCK_AHEAD_MS`` after this node's clock (rule block-time);
        (3) num_records and records_hash match the envelopes;
        (4) every envelope verifies (size, signatures, membership, roles) — skipped for
            blocks whose commit certificate was verified, if ``verify_signatures`` is False,
            and for ``known[i]``, envelope ``i`` already verified by this node. The caller
            guarantees ``known[i]`` is the verification of exactly envelope ``i`` (a block
            rebuilt from those very records by leaf hash); its leaf is what the log root
            is checked against, and the block's envelopes are what commit stores;
        (5) no record id or author nonce repeats, in the block or in the log;
        (6) the custody rules accept every record, in order; in a proposed block (signatures
            checked) no record repeats a committed or earlier record's EPCIS eventID
            (``node.event_ids``) nor dates its event over a day after the header's time
            (rule event-time): rules for new records, so certified blocks skip them;
        (7) log_size and log_root are the log's after appending the block's leaves:
            checked right after (3), so that each failure of (3), (4) or (7) is a
            ``BodyMismatchError`` (the envelopes are not the header's) and any other
            failure of a certified block is this node's.
        """
        bh = block_hash_of(block)
        cached = self._prepared.get(bh)
        if cached is not None and cached.header.height == self.store.head().height + 1:
            return cached
        header = types_pb2.BlockHeader()
        try:
            header.ParseFromString(block.header)
        except DecodeError as e:
            raise InputError("block: header does not parse") from e
        if header.chain_id != self.genesis.chain_id or header.genesis_hash != self.genesis.hash:
            raise InputError("block: header is for another chain")
        head = self.store.head()
        if header.height != head.height + 1:
            raise InputError(f"block: height {header.height}, expected {head.height + 1}")
        if header.prev_block_hash != head.block_hash:
            raise InputError("block: prev_block_hash is not the head's hash")
        if header.proposer not in self.validators:
            raise InputError(f"block: proposer {header.proposer!r} is not a validator")
        if verify_signatures:
            self._check_block_time(header.time_ms)
        n = len(block.envelopes)
        if header.num_records != n:
            raise BodyMismatchError(f"block: num_records {header.num_records}, carries {n}")
        check = self.verify if verify_signatures else parse_trusted
        if known is not None and len(known) != n:
            raise ValueError("validate_block: one known entry per envelope")
        verified: list[VerifiedRecord] = []
        for i, pb in enumerate(block.envelopes):
            v = known[i] if known is not None else None
            if v is None:
                try:
                    v = check(pb)
                except LedgerError as e:
                    raise BodyMismatchError(f"block: record {i}: {e}") from e
            verified.append(v)
        if header.records_hash != records_hash(v.record_id for v in verified):
            raise BodyMismatchError("block: records_hash does not match the envelopes")
        # (7, before the rules: a certified block whose leaves make its root is the
        # validators' own, so a failure after this is this node's, not its sender's)
        leaf_hashes = tuple(v.leaf_hash for v in verified)
        size, root = self.store.preview_root(leaf_hashes, hashed=True)
        if header.log_size != size or header.log_root != root:
            raise BodyMismatchError(
                "block: log_size/log_root do not match the log after this block"
            )
        ids = {v.record_id for v in verified}
        nonces = {(v.record.author, v.record.nonce) for v in verified}
        if len(ids) != n or len(nonces) != n:
            raise InputError("block: a record id or author nonce repeats within the block")
        with self.store.reader() as reader:
            for v in verified:
                if known_fresh is not None and known_fresh(v.record_id):
                    continue  # pending here: checked at admission, and not committed since
                try:
                    self.check_fresh(v, reader)
                except ReplayError as e:
                    raise InputError(f"block: {e}") from e
            if verify_signatures:  # (a proposal: the rules for new records)
                for i, v in enumerate(verified):
                    late = ahead_problem(v.record, header.time_ms, "the block's time")
                    if late:
                        err = _event_time_error(v, late)
                        raise RuleError(err.rule, f"block: record {i}: {err}", err.code)
                refused = event_ids.check_new(verified, reader, self.genesis)
                if refused:
                    i, err = refused[0]
                    raise RuleError(err.rule, f"block: record {i}: {err}", err.code)
            update = self.check_rules(verified, reader, new=verify_signatures)
        if update.refused:
            refusal = update.refused[0]
            err = refusal.error
            raise RuleError(err.rule, f"block: record {refusal.position}: {err}", err.code)
        prepared = Prepared(block, bh, header, tuple(verified), leaf_hashes, update)
        self._remember(prepared)
        return prepared

    def commit(self, prepared: Prepared, certificate: types_pb2.CommitCertificate) -> Head:
        """Write the validated block and its certificate atomically; returns the new head."""
        p = prepared
        self.store.append_block(
            BlockWrite(
                height=p.header.height,
                block_hash=p.block_hash,
                header_bytes=bytes(p.block.header),
                certificate_bytes=certificate.SerializeToString(),
                envelopes=[pb.SerializeToString() for pb in p.block.envelopes],
                record_ids=[v.record_id for v in p.verified],
                leaf_data=p.leaf_hashes,
                codes=p.update.codes(),
                nonces=[(v.record.author, v.record.nonce) for v in p.verified],
                extra=[*p.update.puts(), *event_ids.puts(p.verified, p.header.height)],
                leaves_hashed=True,
            )
        )
        self._prepared.clear()
        self._head_time_ms = p.header.time_ms
        return self.store.head()

    def _check_block_time(self, time_ms: int) -> None:
        """Rule block-time for a proposed block's header time; raises ``InputError``."""
        if time_ms <= self._head_time_ms:
            raise InputError(
                f"block: time {header_time(time_ms, 'milliseconds')} is not after the previous "
                f"block's ({header_time(self._head_time_ms, 'milliseconds')}) (rule block-time)"
            )
        now = int(time.time() * 1000)
        if time_ms > now + MAX_CLOCK_AHEAD_MS:
            raise InputError(
                f"block: time {header_time(time_ms, 'milliseconds')} is "
                f"{(time_ms - now) / 1000:.1f} s after this node's clock (at most "
                f"{MAX_CLOCK_AHEAD_MS // 1000} s; rule block-time)"
            )


def declared_index(record: TraceRecord, reader: StoreReader) -> int | None:
    """For an error declaration, the log index of the committed record it declares (by
    eventID; ``custody.apply``'s ``declared``), else None."""
    if not event_ids.is_declaration(record):
        return None
    eid = event_ids.event_id(record)
    found = event_ids.declared_record(eid, reader) if eid else None
    return found.log_index if found is not None else None


def _head_time_ms(store: Store) -> int:
    """The header time of ``store``'s head block (0 before the first block)."""
    height = store.head().height
    block = store.get_block(height) if height else None
    return types_pb2.BlockHeader.FromString(block.header_bytes).time_ms if block else 0


def _event_time_error(v: VerifiedRecord, why: str) -> RuleError:
    codes = v.record.codes()
    return RuleError("event-time", why, codes[0] if codes else "")
