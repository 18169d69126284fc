"""The simulated world: instances of the replica, a network, timers, crashes, sync.

Event loop invariants:

1. Events are ordered by (time, sequence number); the sequence number breaks ties in
   insertion order, so a run is a pure function of its scenario.
2. An instance executes its replica's actions in list order. ``PersistSignState`` is
   durable the moment it is executed; a crash "mid step" executes only a prefix of the
   list, which is exactly the failure the persist-before-send rule is for.
3. Crashed instances receive nothing; their timers die with their epoch. On restart they
   are rebuilt from durable state only: their chain, their last persisted sign state and
   the last value they locked on (``PersistLock``, kept as bytes as a driver keeps it).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from consensus.certificate import verify_certificate
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
    Start,
    SyncCommitted,
    TimeoutFired,
    ValidateBlock,
)
from consensus.evidence import evidence_key, verify_evidence
from consensus.lockstate import LockedValue
from consensus.messages import Message, Proposal, Vote, block_hash_of
from consensus.signing import Ed25519Signer, verify_message
from consensus.sim.checks import Observations, RunResult, check
from consensus.sim.scenario import Scenario
from consensus.state import Replica
from consensus.validators import ChainContext, ValidatorSet
from proto import types_pb2

__all__ = ["GENESIS", "SIM_CHAIN", "Instance", "World", "run", "sim_block", "sim_valid"]

SIM_CHAIN = "suyuan-sim"
GENESIS = hashlib.sha256(b"suyuan simulator genesis").digest()
INVALID = b"INVALID"

# event kinds
_DELIVER, _TIMEOUT, _TICK, _CRASH, _RESTART, _CALL = range(6)


def sim_block(
    height: int, round_: int, proposer: str, prev: bytes, tag: str, invalid: bool = False
) -> types_pb2.Block:
    """A block with no records; ``invalid`` marks it for the validity rule to reject."""
    header = types_pb2.BlockHeader(
        chain_id=SIM_CHAIN,
        genesis_hash=GENESIS,
        height=height,
        round=round_,
        proposer=proposer,
        prev_block_hash=prev,
        state_root=INVALID if invalid else tag.encode(),
    )
    return types_pb2.Block(header=header.SerializeToString())


def sim_valid(block: types_pb2.Block) -> bool:
    """The simulator's record rules: reject blocks marked invalid."""
    try:
        header = types_pb2.BlockHeader.FromString(block.header)
    except Exception:  # a malformed header is invalid
        return False
    return header.state_root != INVALID


@dataclass
class Instance:
    """One running copy of a validator (Twins are two instances of one slot)."""

    iid: int
    slot: int
    signer: Ed25519Signer
    honest: bool
    behaviour: str | None = None
    twin_side: int | None = None
    replica: Replica | None = None
    alive: bool = True
    epoch: int = 0
    persisted: bytes | None = None
    locked: bytes | None = None  # the last ``PersistLock`` value, as bytes
    chain: list[Commit] = field(default_factory=list)
    crash_pending: bool = False
    last_tick_state: tuple[int, int, int] = (0, -1, 0)
    sync_busy_until: int = -1
    seen: list[Message] = field(default_factory=list)  # for replaying Byzantines

    @property
    def vid(self) -> str:
        return self.signer.validator_id


class World:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.rng = random.Random(f"network/{sc.seed}/{sc.n}/{len(sc.byzantine)}")
        keys = [
            SigningKey(hashlib.sha256(f"sim-validator-{i}".encode()).digest()) for i in range(sc.n)
        ]
        self.ids = [f"val{i}" for i in range(sc.n)]
        self.validators = ValidatorSet.from_pairs(
            [(self.ids[i], bytes(keys[i].verify_key)) for i in range(sc.n)]
        )
        self.ctx = ChainContext(self.validators, GENESIS, SIM_CHAIN)
        byz = dict(sc.byzantine)
        self.instances: list[Instance] = []
        for slot in range(sc.n):
            signer = Ed25519Signer(self.ids[slot], keys[slot])
            behaviour = byz.get(slot)
            copies = 2 if behaviour == "twins" else 1
            for side in range(copies):
                self.instances.append(
                    Instance(
                        len(self.instances),
                        slot,
                        signer,
                        honest=behaviour is None,
                        behaviour=behaviour,
                        twin_side=side if copies == 2 else None,
                    )
                )
        self.honest_group: dict[int, int] = {}
        if sc.twin_split is not None:
            for g, group in enumerate(sc.twin_split):
                for s in group:
                    self.honest_group[s] = g
        self.queue: list[tuple[int, int, int, int, object]] = []
        self.seq = 0
        self.now = 0
        self.obs = Observations()
        self._verified: dict[Message, bool] = {}
        from consensus.sim.byzantine import Strategy, strategy_for

        self.strategies: dict[int, Strategy] = {
            inst.iid: strategy_for(inst.behaviour, self, inst)
            for inst in self.instances
            if not inst.honest
        }

    # ------------------------------------------------------------ scheduling

    def push(self, at: int, kind: int, iid: int, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, iid, payload))

    def call_later(self, delay: int, iid: int, fn: Callable[[], None]) -> None:
        self.push(self.now + delay, _CALL, iid, fn)

    # ------------------------------------------------------------ network

    def reachable(self, a: Instance, b: Instance, at: int) -> bool:
        if a.slot == b.slot:
            return False
        if a.twin_side is not None or b.twin_side is not None:
            sa = a.twin_side if a.twin_side is not None else self.honest_group.get(a.slot)
            sb = b.twin_side if b.twin_side is not None else self.honest_group.get(b.slot)
            if sa is not None and sb is not None and sa != sb:
                return False
        for p in self.sc.partitions:
            if p.start_ms <= at < p.end_ms and ((a.slot in p.side) != (b.slot in p.side)):
                return False
        return True

    def peers(self, inst: Instance) -> list[Instance]:
        return [o for o in self.instances if self.reachable(inst, o, self.now)]

    def latency(self) -> int:
        if self.now >= self.sc.gst_ms:
            return self.rng.randint(1, self.sc.delta_ms)
        d = int(self.rng.expovariate(1.0 / self.sc.pre_mean_ms)) + 1
        return min(d, self.sc.pre_max_ms)

    def send(self, src: Instance, msg: Message, dests: list[Instance] | None = None) -> None:
        for dst in self.peers(src) if dests is None else dests:
            if not self.reachable(src, dst, self.now):
                continue
            pre_gst = self.now < self.sc.gst_ms
            if pre_gst and self.rng.random() < self.sc.drop:
                self.obs.dropped += 1
                continue
            self.push(self.now + self.latency(), _DELIVER, dst.iid, msg)
            if pre_gst and self.rng.random() < self.sc.dup:
                self.push(self.now + self.latency(), _DELIVER, dst.iid, msg)

    def is_valid_sig(self, msg: Message) -> bool:
        ok = self._verified.get(msg)
        if ok is None:
            ok = self._verified[msg] = verify_message(msg, self.ctx) is None
        return ok

    # ------------------------------------------------------------ instances

    def boot(self, inst: Instance) -> None:
        last = inst.chain[-1] if inst.chain else None
        inst.replica = Replica(
            self.ctx,
            inst.signer,
            self.sc.params,
            height=len(inst.chain) + 1,
            sign_state=inst.persisted,
            locked=LockedValue.from_bytes(inst.locked) if inst.locked else None,
            last_commit=(last.block, last.certificate) if last else None,
        )
        inst.alive = True
        inst.crash_pending = False
        self.step(inst, Start())
        self.push(
            self.now + self.rng.randint(1, self.sc.rebroadcast_ms), _TICK, inst.iid, inst.epoch
        )

    def crash(self, inst: Instance) -> None:
        inst.alive = False
        inst.crash_pending = False
        inst.epoch += 1
        inst.replica = None
        self.obs.crashes += 1

    def step(self, inst: Instance, event: Event) -> None:
        if not inst.alive or inst.replica is None:
            return
        self.obs.steps += 1
        try:
            actions = inst.replica.step(event)
        except Exception as e:  # the replica must never raise on any input
            self.obs.violation("no_crash", f"{inst.vid}: replica raised {e!r}")
            self.crash(inst)
            return
        if inst.crash_pending:
            actions = actions[: self.rng.randint(0, len(actions))]
            self.execute(inst, actions)
            self.crash(inst)
            return
        self.execute(inst, actions)

    def execute(self, inst: Instance, actions: list[Action]) -> None:
        strategy = self.strategies.get(inst.iid)
        for a in actions:
            if not inst.alive:
                return
            if isinstance(a, PersistSignState):
                inst.persisted = a.state.to_bytes()
            elif isinstance(a, PersistLock):
                inst.locked = a.value.to_bytes()
            elif isinstance(a, Broadcast):
                if inst.honest:
                    self.obs.signed(inst.slot, a.message, inst.persisted)
                    self.send(inst, a.message)
                else:
                    assert strategy is not None
                    strategy.broadcast(a.message)
            elif isinstance(a, Relay):
                if inst.honest or (strategy is not None and strategy.relays):
                    self.send(inst, a.message)
            elif isinstance(a, ScheduleTimeout):
                ev = TimeoutFired(a.height, a.round, a.step)
                self.push(self.now + a.duration_ms, _TIMEOUT, inst.iid, (inst.epoch, ev))
            elif isinstance(a, RequestProposal):
                self._answer_value(inst, a)
            elif isinstance(a, ValidateBlock):
                self._answer_validity(inst, a)
            elif isinstance(a, Commit):
                self._commit(inst, a)
            elif isinstance(a, EvidenceFound):
                if inst.honest:
                    ok = verify_evidence(a.evidence, self.validators, GENESIS, SIM_CHAIN)
                    if not ok:
                        self.obs.violation("evidence", f"{inst.vid}: emitted invalid evidence")
                    self.obs.evidence.add(evidence_key(a.evidence))
            elif isinstance(a, RequestSync):
                self._sync(inst, a.height)

    def _answer_value(self, inst: Instance, a: RequestProposal) -> None:
        prev = block_hash_of(inst.chain[-1].block) if inst.chain else bytes(32)
        strategy = self.strategies.get(inst.iid)
        invalid = strategy is not None and strategy.invalid_blocks
        block = sim_block(a.height, a.round, inst.vid, prev, f"i{inst.iid}e{inst.epoch}", invalid)
        epoch = inst.epoch
        ev = ProposalValue(a.height, a.round, block)
        delay = self.rng.randint(0, 30) if self.sc.async_validity else 0
        self.call_later(delay, inst.iid, lambda: self._if_epoch(inst, epoch, ev))

    def _answer_validity(self, inst: Instance, a: ValidateBlock) -> None:
        strategy = self.strategies.get(inst.iid)
        ok = True if strategy is not None and strategy.accepts_anything else sim_valid(a.block)
        epoch = inst.epoch
        ev = BlockValidity(a.block_hash, ok)
        if self.sc.async_validity:
            delay = self.rng.randint(0, 40)
            self.call_later(delay, inst.iid, lambda: self._if_epoch(inst, epoch, ev))
        else:
            self.step(inst, ev)

    def _if_epoch(self, inst: Instance, epoch: int, ev: Event) -> None:
        if inst.epoch == epoch:
            self.step(inst, ev)

    def _commit(self, inst: Instance, a: Commit) -> None:
        if a.height != len(inst.chain) + 1:
            self.obs.violation(
                "commit_order", f"{inst.vid}: commit {a.height} after {len(inst.chain)}"
            )
        inst.chain.append(a)
        if not inst.honest:
            return
        bh = block_hash_of(a.block)
        r = verify_certificate(a.certificate, self.validators, GENESIS, SIM_CHAIN, bh)
        if not r:
            self.obs.violation("certificate", f"{inst.vid} h{a.height}: {r.describe('cert')}")
        if not sim_valid(a.block):
            self.obs.violation("validity", f"{inst.vid} committed an invalid block at {a.height}")
        self.obs.committed(inst.slot, a.height, bh, self.now)

    def _sync(self, inst: Instance, height: int) -> None:
        if self.now < inst.sync_busy_until:
            return
        sources = [o for o in self.peers(inst) if o.alive and len(o.chain) >= height]
        if not sources:
            return
        src = self.rng.choice(sources)
        inst.sync_busy_until = self.now + 2_000
        strategy = self.strategies.get(src.iid)
        blocks = [(c.block, c.certificate) for c in src.chain[height - 1 : height - 1 + 20]]
        if strategy is not None:
            blocks = strategy.sync_reply(blocks)
        delay = self.latency() + self.latency()
        if self.now < self.sc.gst_ms and self.rng.random() < self.sc.drop:
            return
        epoch = inst.epoch

        def deliver() -> None:
            inst.sync_busy_until = -1
            for block, cert in blocks:
                self._if_epoch(inst, epoch, SyncCommitted(block, cert))

        self.call_later(delay, inst.iid, deliver)

    # ------------------------------------------------------------ main loop

    def deliver(self, inst: Instance, msg: Message) -> None:
        if not inst.alive or inst.replica is None:
            return
        self.obs.delivered += 1
        valid = self.is_valid_sig(msg)
        strategy = self.strategies.get(inst.iid)
        if strategy is not None:
            strategy.received(msg)
        if inst.honest and valid:
            self.obs.observe(inst, msg, self.validators)
        self.step(inst, MessageReceived(msg, verified=valid))

    def tick(self, inst: Instance, epoch: int) -> None:
        if inst.epoch != epoch or not inst.alive or inst.replica is None:
            return
        r = inst.replica
        state = (r.height, r.round, int(r.step_name))
        if state == inst.last_tick_state:
            msgs = r.rebroadcast()
            strategy = self.strategies.get(inst.iid)
            if strategy is None:
                for m in msgs:
                    self.send(inst, m)
            else:
                strategy.rebroadcast(msgs)
            h = r.sync_needed()
            if h is not None:
                self._sync(inst, h)
        inst.last_tick_state = state
        strategy = self.strategies.get(inst.iid)
        if strategy is not None:
            strategy.tick()
        self.push(self.now + self.sc.rebroadcast_ms, _TICK, inst.iid, epoch)

    def run(self) -> RunResult:
        sc = self.sc
        for c in sc.crashes:
            for inst in self.instances:
                if inst.slot == c.slot:
                    self.push(c.at_ms, _CRASH, inst.iid, c.mid_step)
                    self.push(c.restart_ms, _RESTART, inst.iid, None)
        for inst in self.instances:
            if inst.behaviour == "silent":
                continue
            self.boot(inst)
        stable = sc.stable_ms
        end = stable + sc.liveness_bound_ms
        honest = [i for i in self.instances if i.honest]
        base: dict[int, int] | None = None
        while self.queue:
            at, _, kind, iid, payload = heapq.heappop(self.queue)
            if at > end:
                break
            self.now = at
            if base is None and at >= stable:
                base = {i.slot: len(i.chain) for i in honest}
                self.obs.stable_heights = dict(base)
            inst = self.instances[iid]
            if kind == _DELIVER:
                assert isinstance(payload, Proposal | Vote)
                self.deliver(inst, payload)
            elif kind == _TIMEOUT:
                assert isinstance(payload, tuple)
                epoch, ev = payload
                if epoch == inst.epoch:
                    self.step(inst, ev)
            elif kind == _TICK:
                assert isinstance(payload, int)
                self.tick(inst, payload)
            elif kind == _CALL:
                assert callable(payload)
                payload()
            elif kind == _CRASH:
                if inst.alive:
                    if payload:
                        inst.crash_pending = True
                    else:
                        self.crash(inst)
            elif kind == _RESTART:
                if not inst.alive:
                    self.boot(inst)
                else:
                    inst.crash_pending = False
            if base is not None and all(
                len(i.chain) >= base[i.slot] + sc.k_heights for i in honest
            ):
                break
        if base is None:
            base = {i.slot: len(i.chain) for i in honest}
            self.obs.stable_heights = dict(base)
        self.obs.end_heights = {i.slot: len(i.chain) for i in honest}
        self.obs.sim_ms = self.now
        for inst in honest:
            if inst.replica is not None:
                for k, v in inst.replica.counters.items():
                    self.obs.counters[k] = self.obs.counters.get(k, 0) + v
        return check(sc, self.obs)


def run(sc: Scenario) -> RunResult:
    """Run one scenario to completion and check it."""
    return World(sc).run()
