"""One participant's running node: the consensus driver around the pure replica.

The driver owns one asyncio event queue. Everything that changes consensus or chain state
happens on the single task that drains it (``_consensus_loop``): it steps the replica and
executes the returned actions in order (``consensus.events`` documents them). In
particular a ``PersistSignState`` is written durably (fsync) before any later action runs,
so no vote leaves the process before the state that protects it is on disk.

CPU-heavy work (signature checks, block validation, block writes) runs in worker threads;
libsodium and LMDB release the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format

from consensus.events import (
    Action,
    BlockValidity,
    Broadcast,
    Commit,
    Event,
    EvidenceFound,
    MessageReceived,
    PersistLock,
    PersistSignState,
    ProposalValue,
    Relay,
    RequestProposal,
    RequestSync,
    ScheduleTimeout,
    SyncCommitted,
    TimeoutFired,
    ValidateBlock,
)
from consensus.evidence import evidence_key
from consensus.lockstate import LockedValue
from consensus.messages import (
    Message,
    Proposal,
    Step,
    block_hash_of,
    decode_message,
)
from consensus.params import TimeoutParams
from consensus.signing import Ed25519Signer
from consensus.signstate import SignState
from consensus.state import Replica
from consensus.validators import ChainContext
from node import custody, event_ids, proposals
from node.chain import ChainState, Dropped, StoreCustodyView, declared_index
from node.compact import envelope_leaf_hash
from node.config import NodeConfig
from node.errors import (
    ConfigError,
    InputError,
    LedgerError,
    OverloadError,
    ReplayError,
    RuleError,
    StorageError,
)
from node.genesis import Genesis
from node.idle import IdleGate, StartAction
from node.keys import KeyPair
from node.memory import Hygiene
from node.mempool import Mempool, Pending
from node.peerauth import INSTANCE_BYTES, Challenges, LinkKeys
from node.peers import (
    POLL_S,
    SILENT_S,
    PeerInfo,
    PeerLink,
    consensus_item,
    evidence_item,
    records_item,
)
from node.records import TraceRecord, VerifiedRecord
from node.store import Store, StoreReader
from node.sync_helper import SyncHelper
from node.twin import twin_refusal
from proto import consensus_pb2, services_pb2, types_pb2

log = logging.getLogger("suyuan.node")
VERSION = "0.1.0"
_REBROADCAST_S = 1.0
#: Seconds f+1 validators may be seen past this node's head before it syncs the block.
STUCK_SYNC_S = 3.0
#: Longest a client's record refused by a custody rule waits for commits that other
#: validators have made and this node has not yet applied (``Node.settle``).
SETTLE_WAIT_S = 2.0
#: equivocations kept (memory, ``evidence.jsonl``, ``ListEvidence``) per validator: enough to
#: prove it faulty; more are ignored, before their signatures are checked
EVIDENCE_PER_VALIDATOR = 16


@dataclass(frozen=True)
class Committed:
    height: int
    log_index: int


class Node:
    def __init__(self, config: NodeConfig, genesis: Genesis, key: KeyPair, store: Store) -> None:
        self.config = config
        self.genesis = genesis
        self.key = key
        self.store = store
        self.chain = ChainState(store, genesis)
        self.mempool = Mempool(config.mempool.max_records, config.mempool.max_bytes)
        self.ctx = ChainContext(self.chain.validators, genesis.hash, genesis.chain_id)
        self.is_validator = key.name in self.chain.validators
        c = genesis.consensus
        self.params = TimeoutParams(
            c.timeout_propose_ms, c.timeout_prevote_ms, c.timeout_precommit_ms, c.timeout_delta_ms
        )
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        # tells this process from another with its key (signed in its PeerStatus replies)
        self.instance = os.urandom(INSTANCE_BYTES)
        self.challenges = Challenges()  # this process's, for peers opening links (peerauth)
        keys = LinkKeys(genesis.hash, key.name, key.public_key, key.sign, genesis.public_key)
        #: the ``[tls]`` section's certificates (read at start: a bad file stops it there)
        self.tls = config.tls.load() if config.tls is not None else None
        dial = self.tls.channel_credentials() if self.tls is not None else None
        self.peers = [
            PeerLink(
                a,
                services_pb2.Hello(
                    genesis_hash=genesis.hash, member=key.name, instance=self.instance
                ),
                keys,
                self._peer_connected,
                on_duplicate=self.fatal,
                expected=config.expected_member(a),
                credentials=dial,
            )
            for a in config.peers
        ]
        #: set when the node must stop (``fatal``); ``node.main.serve`` waits on it
        self.failure: asyncio.Future[LedgerError] | None = None
        self._first_height = 1 << 62  # (the first height this process may sign: ``start``)
        self.replica: Replica | None = None
        self.syncing = False
        self._ahead_since: tuple[int, float] | None = None  # (head, since) for ``_stuck``
        self.evidence: dict[tuple[str, str, int, int, int], consensus_pb2.Evidence] = {}
        self.hygiene = Hygiene()  # (memory a large request left, given back: node.memory)
        self._waiters: dict[bytes, list[asyncio.Future[Committed]]] = {}
        self._records_arrived = asyncio.Event()
        self.idle = IdleGate(config.consensus.idle_block_interval_ms)  # (node.idle)
        self._idle_timer: asyncio.TimerHandle | None = None
        self._proposing: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._pending_view = custody.OverlayView(self.chain.custody_view)
        self._unsettled: list[VerifiedRecord] = []
        self._reader: StoreReader | None = None  # set inside ``admitting``
        self._rate_window = (0.0, 0)
        self._sync_task: asyncio.Task[None] | None = None
        self.sync_helper: SyncHelper | None = None  # while a pull uses one (node.sync)
        self.bodies = proposals.Bodies()  # compact proposals (node.proposals)
        self.committed = asyncio.Event()  # set (and cleared) on every commit
        #: authenticated Exchange streams open from each member, and since when (monotonic)
        #: it has had none (``inbound_opened``; ``status`` names a validator peer sending
        #: nothing to this one: QA-V, a validator moved to another port went unheard)
        self.inbound: dict[str, int] = {}
        self._inbound_none_since: dict[str, float] = {}
        self._inbound_heard: dict[str, float] = {}  # member -> its streams' last message
        self._started = time.monotonic()
        self.settling = 0  # client requests waiting in ``settle`` (observability, tests)
        self._evidence_path = config.data_dir / "evidence.jsonl"
        self._load_evidence()
        #: a validator whose store holds no sign state, that has signed nothing since it
        #: started: its own signature in a block it syncs proves another process signed
        #: with its key (``check_own_signature``)
        self.new_store = False
        #: started with ``--resync``: that process is this node's earlier run, stopped
        self.resync = False

    # ------------------------------------------------------------------ lifecycle

    def fatal(self, reason: str, kind: type[LedgerError] = ConfigError) -> None:
        """Stop the node: another process runs this node's member (``PeerLink``), or its
        store cannot follow the certified chain (``kind`` ``StorageError``: exit 4). Nothing
        is sent from here on (``_broadcast``), so no vote of this process reaches a peer
        while the node stops."""
        if self.failure is not None and not self.failure.done():
            log.error("%s", reason)
            self.failure.set_result(kind(reason))

    async def start(self) -> None:
        self.failure = asyncio.get_running_loop().create_future()
        head = self.store.head()
        self._first_height = head.height + 1
        signer = Ed25519Signer(self.key.name, self.key.signing_key) if self.is_validator else None
        self.replica = Replica(
            self.ctx,
            signer,
            self.params,
            height=head.height + 1,
            sign_state=self.store.get_sign_state(),
            locked=(locked := self._locked_value()),
        )
        if locked is not None and locked.height == head.height + 1:  # (peers may ask for its
            leaves = [envelope_leaf_hash(e) for e in locked.block.envelopes]  # records when
            self.bodies.committed(leaves, locked.block)  # it proposes it again)
        for p in self.peers:
            p.set_height(head.height)
            p.start()
        await self._execute(self.replica.start())
        self._tasks.append(asyncio.create_task(self._consensus_loop(), name="consensus"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        log.info(
            "node %s started at height %d (validator=%s)",
            self.key.name,
            head.height,
            self.is_validator,
        )
        if not self.peers and len(self.genesis.validators) > 1:  # (QA: it never caught up)
            log.warning(
                "config lists no peers: this node sends its votes to no one and syncs from "
                "no one (it hears only nodes that dial it); list the other validators' "
                "addresses in 'peers'"
            )

    def _put_sign_state(self, state: SignState, lock: LockedValue | None) -> None:
        """Write the sign state durably, with the value just locked on, if any (in a worker
        thread: a locked block is serialized whole, up to ``max_block_bytes``)."""
        self.store.put_sign_state(state.to_bytes(), None if lock is None else lock.to_bytes())

    def _locked_value(self) -> LockedValue | None:
        """The value this validator was locked on when it stopped (``consensus.lockstate``);
        None if there is none, or it does not parse (liveness only: never a reason not to
        start)."""
        raw = self.store.get_locked()
        if raw is None:
            return None
        try:
            return LockedValue.from_bytes(raw)
        except InputError as e:
            log.warning("the stored locked value is ignored: %s", e)
            return None

    async def stop(self) -> None:
        self._stop.set()
        for t in [*self._tasks, self._proposing, self._sync_task, *self.bodies.tasks()]:
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        for p in self.peers:
            await p.close()

    # ------------------------------------------------------------------ the loop

    async def _consensus_loop(self) -> None:
        assert self.replica is not None
        while not self._stop.is_set():
            ev = await self.events.get()
            try:
                w = self.idle.waiting
                if w and isinstance(ev, MessageReceived) and ev.message.height >= w:
                    self._wake(ev.message.height)  # a peer started this height
                actions = self.replica.step(ev)
                await self._execute(actions)
            except asyncio.CancelledError:
                raise
            except StorageError as e:  # (one line: it names the cause and the free space)
                log.error("consensus event %s failed: %s", type(ev).__name__, e)
                raise
            except Exception:
                log.exception("consensus event %s failed", type(ev).__name__)
                raise

    async def _execute(self, actions: Sequence[Action]) -> None:
        loop = asyncio.get_running_loop()
        lock: LockedValue | None = None
        for a in actions:
            if isinstance(a, PersistLock):  # (written with the precommit's sign state)
                lock = a.value
            elif isinstance(a, PersistSignState):
                self.new_store = False  # what it signs from now on is in this store
                await loop.run_in_executor(None, self._put_sign_state, a.state, lock)
                lock = None
            elif isinstance(a, Broadcast | Relay):
                self._broadcast(a.message)
            elif isinstance(a, ScheduleTimeout | RequestProposal):
                if not self._held(a):
                    self._start_step(a)
            elif isinstance(a, ValidateBlock):
                ok = await loop.run_in_executor(None, self._validate, a.block)
                self.events.put_nowait(BlockValidity(a.block_hash, ok))
            elif isinstance(a, Commit):
                await self._commit(a.block, a.certificate)
            elif isinstance(a, EvidenceFound):
                self._add_evidence(a.evidence, gossip=True)
            elif isinstance(a, RequestSync):
                self.trigger_sync()

    def _start_step(self, a: StartAction) -> None:
        if isinstance(a, ScheduleTimeout):
            ev = TimeoutFired(a.height, a.round, a.step)
            asyncio.get_running_loop().call_later(a.duration_ms / 1000, self.events.put_nowait, ev)
        else:
            self._start_proposal(a.height, a.round)

    def _held(self, a: StartAction) -> bool:
        """True iff ``a`` waits in the idle gate (``node.idle``): round 0 of a new height
        while no record is pending. The first held at a height arms its timer."""
        if not self.idle.wants(a):
            return False
        if len(self.mempool):
            self._wake(a.height)
            return False
        if self.idle.hold(a):  # one timer at a time: a sync moves through many heights
            delay = self.idle.interval_ms / 1000
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            self._idle_timer = asyncio.get_running_loop().call_later(delay, self._wake, a.height)
            log.debug("height %d: waiting for records (at most %g s)", a.height, delay)
        return True

    def _wake(self, height: int) -> None:
        """Start what the idle gate held for ``height`` or before (a record, a peer's
        message at that height, or the timer)."""
        for a in self.idle.release(height):
            self._start_step(a)

    def _broadcast(self, msg: Message) -> None:
        if not self.peers or (self.failure is not None and self.failure.done()):
            return  # (a stopping node sends nothing it signed: see ``fatal``)
        item = consensus_item(proposals.wire(self, msg))
        for p in self.peers:
            p.send(item)

    def _validate(self, block: types_pb2.Block) -> bool:
        known = self.bodies.known_for(block_hash_of(block), block)
        try:
            self.chain.validate_block(block, known_fresh=self.mempool.__contains__, known=known)
            return True
        except LedgerError as e:
            log.warning("refusing proposed block: %s", e)
            return False
        except Exception:  # a rule's bug: the block is not valid here, and consensus goes on
            # (QA: a record whose @context held an object raised TypeError in a rule; in a
            # proposal it would have ended every honest validator's consensus task)
            log.exception("refusing proposed block: checking it failed")
            return False

    async def _commit(self, block: types_pb2.Block, cert: types_pb2.CommitCertificate) -> None:
        loop = asyncio.get_running_loop()
        head = self.store.head()
        if cert.height <= head.height:
            return  # already applied (e.g. by sync)
        prepared = await loop.run_in_executor(
            None, lambda: self.chain.validate_block(block, verify_signatures=False)
        )
        new_head = await loop.run_in_executor(None, self.chain.commit, prepared, cert)
        ids = [v.record_id for v in prepared.verified]
        self.bodies.committed(prepared.leaf_hashes, prepared.block)
        if len(self.mempool):  # (a syncing node's is empty)
            self.mempool.remove(ids)
            # a pending record whose nonce another committed record used can never commit;
            # its waiters are told so (review: a handoff accept raced by the withdrawal
            # waited out its deadline and answered "may still commit")
            lost = self.mempool.remove_nonces(
                (v.record.author, v.record.nonce) for v in prepared.verified
            )
            for rid in lost:
                self._fail_waiters(
                    rid,
                    ReplayError(
                        f"record {rid.hex()}: its author's nonce was used by a record committed "
                        f"at height {new_head.height} (a handoff offer withdrawn or accepted "
                        "first?): it can never commit"
                    ),
                )
        if self._unsettled:
            self._unsettled = [v for v in self._unsettled if v.record_id in self.mempool]
        if not len(self.mempool):
            self._pending_view = custody.OverlayView(self.chain.custody_view)
            self._unsettled = []
        else:  # committed state now answers for the codes this block changed
            changed = prepared.update.states()
            for code in changed:
                self._pending_view.pending.pop(code, None)
            if not self.is_validator and changed and self._pending_names(changed):
                # a validator drops a pending record that no longer passes when it next
                # proposes; a follower never proposes, so such a record stayed pending for
                # ever and its effect stayed in the pending view (review)
                self._rebuild_pending_view()
        for i, rid in enumerate(ids):
            for fut in self._waiters.pop(rid, []):
                if not fut.done():
                    fut.set_result(Committed(new_head.height, head.log_size + i))
        for p in self.peers:
            p.set_height(new_head.height)
        self.committed.set()
        self.committed.clear()
        proposals.release(self)  # proposals held for the new next height
        if ids or new_head.height % 100 == 0:
            log.info(
                "committed height %d: %d records, log size %d",
                new_head.height,
                len(ids),
                new_head.log_size,
            )

    # ------------------------------------------------------------------ proposing

    def _start_proposal(self, height: int, round_: int) -> None:
        if self._proposing is not None and not self._proposing.done():
            self._proposing.cancel()
        self._proposing = asyncio.create_task(self._propose(height, round_), name="propose")

    async def _propose(self, height: int, round_: int) -> None:
        """Wait (bounded) for records, then build the block and feed it to the replica."""
        idle_wait = self.params.timeout(Step.PROPOSE, round_) * 0.6 / 1000
        interval = self.genesis.consensus.create_empty_blocks_interval_ms / 1000
        wait = min(idle_wait, interval) if interval else idle_wait
        if not len(self.mempool):
            self._records_arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._records_arrived.wait(), timeout=wait)
        if len(self.mempool) and self.config.consensus.proposal_wait_ms:
            await asyncio.sleep(self.config.consensus.proposal_wait_ms / 1000)  # batch window
        c = self.genesis.consensus
        taken = self.mempool.take(c.max_block_records, c.max_block_bytes)
        loop = asyncio.get_running_loop()
        in_pool = self.mempool.__contains__

        def build(cands: list[Pending]) -> tuple[types_pb2.Block, list[Dropped]]:
            return self.chain.build_block(
                height,
                round_,
                self.key.name,
                [(p.envelope, p.verified) for p in cands],
                int(time.time() * 1000),
                known_fresh=in_pool,
            )

        try:
            try:
                block, dropped = await loop.run_in_executor(None, build, taken)
            except InputError:
                raise
            except Exception:  # a rule's bug on some record (review: the task ended without
                # a word, and this validator proposed nothing while the record stayed in its
                # pool): find the records the build fails on, one by one, drop them, and
                # propose the rest
                log.exception(
                    "building block %d round %d failed; finding the records it fails on",
                    height, round_,
                )  # fmt: skip
                block, dropped = await loop.run_in_executor(None, self._build_around, build, taken)
        except InputError as e:  # the head moved meanwhile (a sync): this slot has passed
            log.info("not proposing height %d round %d: %s", height, round_, e)
            return
        if dropped:
            for d in dropped:
                log.info(
                    "dropping record %s from the mempool: %s", d.record_id.hex()[:16], d.reason
                )
                self._fail_waiters(d.record_id, d.reason)
            self.mempool.remove(d.record_id for d in dropped)
            self._rebuild_pending_view()
        self.events.put_nowait(ProposalValue(height, round_, block))

    def _build_around(
        self,
        build: Callable[[list[Pending]], tuple[types_pb2.Block, list[Dropped]]],
        taken: list[Pending],
    ) -> tuple[types_pb2.Block, list[Dropped]]:
        """``build`` over the candidates it does not fail on, each tried alone first (a
        worker thread; bounded by the block's candidates); the ones it fails on are
        dropped, refused as records that cannot be checked."""
        bad: list[Dropped] = []
        good: list[Pending] = []
        for p in taken:
            try:
                build([p])
            except InputError:
                raise  # (the head moved: this slot has passed)
            except Exception as e:  # (the bug is logged once, by the caller)
                err = InputError(f"record: cannot be checked ({type(e).__name__}: {e})")
                bad.append(Dropped(p.record_id, err))
            else:
                good.append(p)
        try:
            block, dropped = build(good)
        except InputError:
            raise
        except Exception:  # (only together do they fail: propose none of them)
            block, dropped = build([])
            dropped = [Dropped(p.record_id, InputError("record: cannot be checked")) for p in good]
        return block, bad + dropped

    # ------------------------------------------------------------------ admission

    def check_capacity(self, n: int = 1) -> None:
        """RESOURCE_EXHAUSTED when the mempool or the rate limit is at its bound;
        INVALID_ARGUMENT for a batch of ``n`` that neither could ever take (QA-Y: "mempool
        full (0 records); retry later" for ever)."""
        limit = self.config.limits.rate_limit_per_s
        bounds = (
            (self.mempool.max_records, "mempool.max_records"),
            (limit, "limits.rate_limit_per_s"),
        )
        for bound, name in bounds:
            if bound and n > bound:
                raise InputError(
                    f"a batch of {n} records is more than this node takes at once ({name} "
                    f"{bound}): send smaller batches"
                )
        if len(self.mempool) + n > self.mempool.max_records:
            raise OverloadError(f"mempool full ({len(self.mempool)} records); retry later")
        if limit:
            now = time.monotonic()
            start, count = self._rate_window
            if now - start >= 1.0:
                start, count = now, 0
            if count + n > limit:
                raise OverloadError(f"rate limit {limit} records/s reached; retry later")
            self._rate_window = (start, count + n)

    @contextlib.contextmanager
    def admitting(self) -> Iterator[None]:
        """One store read transaction for the ``admit`` calls of a batch (their replay and
        custody lookups). Synchronous use only: no ``await`` inside, so no commit's
        bookkeeping interleaves; pending states overlay whatever the snapshot holds."""
        with self.store.reader() as r:
            self._reader = r
            self._pending_view.base = StoreCustodyView(r)
            try:
                yield
            finally:
                self._reader = None
                self._pending_view.base = self.chain.custody_view

    def admit(
        self,
        pb: types_pb2.Envelope,
        v: VerifiedRecord,
        *,
        local: bool = True,
        fresh_at: int | None = None,
    ) -> bool:
        """Add a verified record to the mempool after replay and rule checks.

        ``local`` records (submitted by a client of this node) are checked against the
        custody rules over the committed state plus the pending records; records gossiped
        by a peer were checked there, and every validator checks them again in the block,
        so here they are queued unchecked and laid over the pending view only when a local
        submission needs them (``_settle_gossip``). ``fresh_at`` is the head height at
        which ``ChainState.admission_checks`` found the record fresh; the replay check
        against the log is repeated only if a block was committed since. Returns False if
        already pending; raises the rule's error otherwise.
        """
        if v.record_id in self.mempool:
            return False
        if fresh_at is None or fresh_at != self.store.head().height:
            self.chain.check_fresh(v, self._reader)
        if self.mempool.nonce_pending(v.record.author, v.record.nonce):
            raise ReplayError(f"nonce {v.record.nonce!r} of {v.record.author!r} is pending")
        if local:
            with self._read() as r:
                self.chain.check_submitted(v, r)
            # (before the custody rules: a retry of a pending event is told which record has
            # it, not "already commissioned by a record not yet committed"; QA re-check)
            self.mempool.check_event_id(v.record)
            try:
                update = self._check_pending(v)
            except RuleError:
                if not self._unsettled:
                    raise
                self._settle_gossip()
                update = self._check_pending(v)
            self._pending_view.add(update)
        else:
            self._unsettled.append(v)
        self.mempool.add(Pending(v.record_id, pb, v, pb.ByteSize(), time.monotonic()))
        self._records_arrived.set()
        if self.idle.waiting:
            self._wake(self.idle.waiting)
        return True

    async def settle(self, timeout: float = SETTLE_WAIT_S) -> bool:
        """Wait (at most ``timeout`` seconds) until this node has applied the heights other
        validators have decided (``Replica.decided_elsewhere``); True if it applied at
        least one block meanwhile, so a custody refusal is worth checking again.

        Why: a client that saw its record committed at node A and sends the next record of
        that product to node B must not be refused because B is a moment behind A. Returns
        False at once when nothing is decided elsewhere (a refusal then stands)."""
        if self.replica is None:
            return False
        target = self.replica.decided_elsewhere()
        if target is None:
            return False
        start = self.store.head().height
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.settling += 1
        try:
            while self.store.head().height < target and (left := deadline - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.committed.wait(), left)
        finally:
            self.settling -= 1
        return self.store.head().height > start

    def _check_pending(self, v: VerifiedRecord) -> custody.CustodyUpdate:
        return custody.apply(
            self._pending_view,
            v.record,
            v.envelope.signers(),
            self.genesis,
            self.store.head().log_size + len(self.mempool),
            self._declared_index(v.record),
            new=True,
        )

    def _declared_index(self, record: TraceRecord) -> int | None:
        """``chain.declared_index`` in the admission's read transaction (or a new one)."""
        if not event_ids.is_declaration(record):
            return None
        with self._read() as r:
            return declared_index(record, r)

    @contextlib.contextmanager
    def _read(self) -> Iterator[StoreReader]:
        """The admission's read transaction (``admitting``), or a new one outside it."""
        if self._reader is not None:
            yield self._reader
        else:
            with self.store.reader() as r:
                yield r

    def _settle_gossip(self) -> None:
        """Lay the still unchecked gossiped records over the pending view, in arrival order."""
        pending, self._unsettled = self._unsettled, []
        for g in pending:
            if g.record_id not in self.mempool:
                continue
            try:
                self._pending_view.add(self._check_pending(g))
            except LedgerError:
                continue  # the block's validation decides; it only does not help here

    def _rebuild_pending_view(self) -> None:
        view = custody.OverlayView(self.chain.custody_view)
        base = self.store.head().log_size
        keep_out: list[bytes] = []
        for i, p in enumerate(self.mempool.items()):
            try:
                view.add(
                    custody.apply(
                        view,
                        p.verified.record,
                        p.verified.envelope.signers(),
                        self.genesis,
                        base + i,
                        self._declared_index(p.verified.record),
                        new=True,
                    )
                )
            except LedgerError as e:
                log.info("record %s no longer passes the rules: %s", p.record_id.hex()[:16], e)
                keep_out.append(p.record_id)
                self._fail_waiters(p.record_id, e)
        self.mempool.remove(keep_out)
        self._pending_view = view

    def gossip(self, records: list[types_pb2.Envelope]) -> None:
        if records and self.peers:
            item = records_item(records)
            for p in self.peers:
                p.send(item)

    def wait_for(self, record_id: bytes) -> asyncio.Future[Committed]:
        """A future set when ``record_id`` commits, or failed when it never can. A waiter
        given up (cancelled, as ``asyncio.wait_for`` does at its timeout) is forgotten."""
        fut: asyncio.Future[Committed] = asyncio.get_running_loop().create_future()
        if record_id not in self.mempool:  # pending, so not committed: ``_commit`` answers
            loc = self.store.record_location(record_id)
            if loc is not None:
                fut.set_result(Committed(loc[1], loc[0]))
                return fut
        self._waiters.setdefault(record_id, []).append(fut)
        fut.add_done_callback(lambda f: self._forget_waiter(record_id, f))
        return fut

    def _pending_names(self, codes: Mapping[str, object]) -> bool:
        """Whether a pending record names one of ``codes`` (canonical)."""
        for p in self.mempool.items():
            with contextlib.suppress(LedgerError):
                if any(c in codes for c in p.verified.record.roles.all):
                    return True
        return False

    def _forget_waiter(self, record_id: bytes, fut: asyncio.Future[Committed]) -> None:
        if not fut.cancelled():
            return  # (set by ``_commit`` or failed: already popped)
        waiting = self._waiters.get(record_id)
        if waiting is not None and fut in waiting:
            waiting.remove(fut)
            if not waiting:
                del self._waiters[record_id]

    def _fail_waiters(self, record_id: bytes, error: LedgerError) -> None:
        for fut in self._waiters.pop(record_id, []):
            if not fut.done():
                fut.set_exception(error)

    # ------------------------------------------------------------------ peers

    def on_peer_messages(self, msgs: Sequence[consensus_pb2.ConsensusMessage]) -> None:
        for pb in msgs:
            try:
                msg = decode_message(pb)
                if isinstance(msg, Proposal) and pb.proposal.HasField("compact"):
                    proposals.on_compact(self, msg, pb.proposal.compact)
                    continue
                if isinstance(msg, Proposal) and msg.block is not None:
                    proposals.on_full(self, msg)  # bound to its header like a compact one
                    continue
            except (LedgerError, ValueError) as e:
                log.debug("undecodable consensus message: %s", e)
                continue
            self.events.put_nowait(MessageReceived(msg))

    def _add_evidence(self, ev: consensus_pb2.Evidence, *, gossip: bool) -> None:
        try:
            key = evidence_key(ev)
        except Exception:  # malformed evidence from the network is ignored
            return
        if key in self.evidence:
            return
        kind, who, height, round_, _ = key
        own = self.is_validator and who == self.key.name and height >= self._first_height
        if not own and self._evidence_held(who) >= EVIDENCE_PER_VALIDATOR:
            return  # (review: a Byzantine validator's stream of self-made pairs filled memory
            # and disk; a few pairs prove it faulty as well as thousands. Evidence against
            # this node's own key is never dropped: it stops the node, below)
        self.evidence[key] = ev
        log.warning(
            "equivocation evidence against %s: two %ss signed at height %d round %d",
            who, kind, height, round_,
        )  # fmt: skip
        try:
            with self._evidence_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(json_format.MessageToDict(ev)) + "\n")
        except OSError as e:  # (kept in memory and gossiped; consensus goes on)
            log.error("evidence not written to %s: %s", self._evidence_path, e.strerror or e)
        if gossip and self.peers:
            item = evidence_item(ev)
            for p in self.peers:
                p.send_evidence(item)
        if own:
            # This process signs each height and round once (its sign state), so the other
            # signature is another process's with this key: a standby or a copied data folder
            # that never dialled this one (``PeerLink`` catches one that does).
            self.fatal(
                f"equivocation evidence against this node's own key {who!r} (two {kind}s at "
                f"height {height} round {round_}): another process signs with it; this one "
                "stops (run only one of them)"
            )

    def _evidence_held(self, validator: str) -> int:
        return sum(1 for k in self.evidence if k[1] == validator)

    def on_peer_evidence(self, ev: consensus_pb2.Evidence) -> None:
        from consensus.evidence import verify_evidence

        try:
            key = evidence_key(ev)
        except Exception:  # malformed evidence from the network is ignored
            return
        if key in self.evidence or (
            key[1] != self.key.name and self._evidence_held(key[1]) >= EVIDENCE_PER_VALIDATOR
        ):
            return
        if verify_evidence(ev, self.chain.validators, self.genesis.hash, self.genesis.chain_id):
            # passed on once, when new (QA-Y: a node that was sent evidence kept it, and an
            # auditor asking another node saw none; the cap per validator bounds the traffic)
            self._add_evidence(ev, gossip=True)

    def _load_evidence(self) -> None:
        if not self._evidence_path.exists():
            return
        for line in self._evidence_path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(Exception):
                ev = json_format.ParseDict(json.loads(line), consensus_pb2.Evidence())
                key = evidence_key(ev)
                if self._evidence_held(key[1]) < EVIDENCE_PER_VALIDATOR:
                    self.evidence[key] = ev

    # ------------------------------------------------------------------ sync

    def _peer_connected(self, info: PeerInfo) -> None:
        """A peer that is ahead on connecting (a restart after downtime): sync now, not at
        the next housekeeping period."""
        if self._stop.is_set() or self.replica is None:
            return
        if info.height > self.store.head().height + 1:
            self.trigger_sync()

    def trigger_sync(self) -> None:
        """Start block sync unless it runs already (or the node is stopping)."""
        if self._stop.is_set():
            return
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.create_task(self._sync(), name="sync")

    async def _sync(self) -> None:
        """Fetch certified blocks from the peer furthest ahead and feed them in order."""
        from node.sync import sync_from_peers

        self.syncing = True
        try:
            await sync_from_peers(self)
        finally:
            self.syncing = False

    def check_own_signature(self, header: bytes, cert: types_pb2.CommitCertificate) -> None:
        """A validator without sign state that syncs a certified block it precommitted:
        another process signed it with this key. Without ``--resync`` the
        node stops before it signs (``node.twin``: a twin may still be signing; QA); with
        it, that was this node's earlier run (a resync), and it is said once. A new
        consortium's nodes sign nothing before their store exists, so they are not
        stopped."""
        if not self.new_store:
            return
        me = self.key.name
        # (a precommit only: the certificate's signatures are verified, and a header's
        # proposer field is signed by no one, so a faulty proposer could name this one)
        if not any(s.validator == me for s in cert.signatures):
            return
        what = "precommit"
        self.new_store = False
        if not self.resync:
            self.fatal(
                twin_refusal(f"block {cert.height} carries this validator's {what}", self.key.name)
            )
            return
        log.warning(
            "data_dir %s held no sign state, yet block %d carries this validator's %s: "
            "signed by its run before the resync (--resync), as expected",
            self.config.data_dir,
            cert.height,
            what,
        )

    async def feed_synced(self, block: types_pb2.Block, cert: types_pb2.CommitCertificate) -> None:
        self.events.put_nowait(SyncCommitted(block, cert))

    async def _housekeeping(self) -> None:
        """Re-broadcast our consensus messages; poll peers' heights to trigger sync."""
        assert self.replica is not None
        ticks = 0
        while not self._stop.is_set():
            await asyncio.sleep(_REBROADCAST_S)  # periodic timer, not synchronisation
            # every period, even while commits go on: a peer that lost our precommits (a
            # dropped link) is one height behind and needs them to decide (a proposal goes
            # out compact, its body named by leaf hashes: about 70 kB at 2,000 records)
            for m in self.replica.rebroadcast(own_only=True):
                self._broadcast(m)
            ticks += 1
            self.hygiene.tick()
            if self.peers and (not self.is_validator or ticks % int(POLL_S) == 0):
                # a follower: no consensus traffic tells it heights; a validator: whether
                # each peer still answers (a paused one keeps its stream open)
                await asyncio.gather(*(p.poll_height() for p in self.peers), return_exceptions=True)
            head = self.store.head().height
            behind = any(p.info.height > head + 1 for p in self.peers)
            if behind or self.replica.sync_needed() is not None or self._stuck(head):
                self.trigger_sync()

    def _stuck(self, head: int) -> bool:
        """f+1 validators were seen past ``head`` for ``STUCK_SYNC_S`` while it stayed:
        they decided a block this node could not (its body never arrived, or its records
        were not to be found), so sync fetches it certified."""
        assert self.replica is not None
        now = asyncio.get_running_loop().time()
        if not self.replica.seen_ahead():
            self._ahead_since = None
            return False
        if self._ahead_since is None or self._ahead_since[0] != head:
            self._ahead_since = (head, now)
            return False
        if now - self._ahead_since[1] < STUCK_SYNC_S:
            return False
        self._ahead_since = None
        return True

    # ------------------------------------------------------------------ status

    def inbound_opened(self, member: str) -> None:
        self.inbound[member] = self.inbound.get(member, 0) + 1
        self.inbound_heard(member)

    def inbound_heard(self, member: str) -> None:
        """A message arrived on one of ``member``'s streams to this node."""
        self._inbound_heard[member] = time.monotonic()

    def inbound_closed(self, member: str) -> None:
        left = self.inbound.get(member, 0) - 1
        self.inbound[member] = max(0, left)
        if left <= 0:
            self._inbound_none_since[member] = time.monotonic()

    def _unheard(self, p: PeerLink, now: float) -> str:
        """Why a validator peer that answers this validator is not heard from: it has sent
        no stream for ``SILENT_S`` (so its `peers` likely lack this node's address), or ""."""
        who = p.info.member
        if not (self.is_validator and who in self.chain.validators and p.info.responsive(now)):
            return ""
        if self.inbound.get(who, 0) > 0:
            return ""
        since = max(self._started, self._inbound_none_since.get(who, self._started))
        if now - since < SILENT_S:
            return ""
        host, _, port = self.config.listen.rpartition(":")
        where = (
            f"(it listens on every interface, port {port})"
            if host.strip("[]") in ("0.0.0.0", "::", "")  # noqa: S104 -- names it, binds nothing
            else f"({self.config.listen})"
        )
        return (
            f"peer {p.address} ({who}) answers, but has sent this node nothing for "
            f"{int(now - since)} s: does its `peers` list this node's address {where}? Its "
            "votes do not reach this node"
        )

    def status(self) -> services_pb2.StatusResponse:
        head = self.store.head()
        r = self.replica
        now = time.monotonic()
        vs = self.chain.validators
        unheard = {p.address: self._unheard(p, now) for p in self.peers}
        answering = {
            p.info.member for p in self.peers if p.info.responsive(now) and not unheard[p.address]
        }
        # and every member streaming to this node: its votes reach it, whether or not this
        # node's own `peers` reach it (QA-W: "2 of 4 ... no block can commit" while blocks
        # committed, two `peers` entries being wrong)
        answering.update(  # (a hung one keeps its stream open: one heard lately; review)
            m
            for m, n in self.inbound.items()
            if n > 0 and now - self._inbound_heard.get(m, -SILENT_S) < SILENT_S
        )
        answering.add(self.key.name)
        return services_pb2.StatusResponse(
            chain_id=self.genesis.chain_id,
            genesis_hash=self.genesis.hash,
            member=self.key.name,
            height=head.height,
            log_size=head.log_size,
            head_hash=head.block_hash,
            log_root=head.log_root,
            round=r.round if r is not None else 0,
            mempool_size=len(self.mempool),
            peers=[
                services_pb2.PeerInfo(
                    address=p.address,
                    member=p.info.member,
                    height=p.info.height,
                    connected=p.info.responsive(now),
                    problem=p.info.problem or unheard[p.address],
                )
                for p in self.peers
            ],
            syncing=self.syncing,
            version=VERSION,
            idle_height=self.idle.waiting,
            validators=vs.n,
            validators_answering=sum(1 for v in answering if v in vs),
            quorum=vs.quorum,
        )


def data_path(config: NodeConfig) -> Path:
    return config.data_dir / "store"
