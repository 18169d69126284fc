"""An in-memory cluster for transcript tests: deliver messages and fire timeouts by hand.

Nothing here is random or timed: tests choose which message reaches whom and when.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from consensus.events import (
    Action,
    BlockValidity,
    Broadcast,
    Commit,
    EvidenceFound,
    MessageReceived,
    PersistSignState,
    ProposalValue,
    Relay,
    RequestProposal,
    ScheduleTimeout,
    TimeoutFired,
    ValidateBlock,
)
from consensus.messages import Message
from consensus.params import TimeoutParams
from consensus.signing import Ed25519Signer
from consensus.signstate import SignState
from consensus.state import Replica
from consensus.validators import ChainContext, ValidatorSet
from proto import types_pb2

GENESIS = hashlib.sha256(b"test genesis").digest()
CHAIN = "test-chain"
PARAMS = TimeoutParams(propose_ms=1000, prevote_ms=500, precommit_ms=500, delta_ms=250)


def keys(n: int) -> list[SigningKey]:
    return [SigningKey(hashlib.sha256(f"validator-{i}".encode()).digest()) for i in range(n)]


def make_ctx(n: int) -> tuple[ChainContext, list[Ed25519Signer]]:
    ks = keys(n)
    ids = [f"v{i}" for i in range(n)]
    vs = ValidatorSet.from_pairs([(ids[i], bytes(ks[i].verify_key)) for i in range(n)])
    return ChainContext(vs, GENESIS, CHAIN), [Ed25519Signer(ids[i], ks[i]) for i in range(n)]


def make_block(height: int, round_: int, proposer: str, tag: str = "", invalid: bool = False):
    header = types_pb2.BlockHeader(
        chain_id=CHAIN,
        genesis_hash=GENESIS,
        height=height,
        round=round_,
        proposer=proposer,
        state_root=(b"INVALID" if invalid else tag.encode()),
    )
    return types_pb2.Block(header=header.SerializeToString())


def is_valid(block: types_pb2.Block) -> bool:
    return types_pb2.BlockHeader.FromString(block.header).state_root != b"INVALID"


@dataclass
class Node:
    replica: Replica
    index: int
    outbox: list[Message] = field(default_factory=list)
    timeouts: list[ScheduleTimeout] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    evidence: list[EvidenceFound] = field(default_factory=list)
    persisted: bytes | None = None
    signed: list[Message] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    pending_validity: list[ValidateBlock] = field(default_factory=list)
    requests: list[RequestProposal] = field(default_factory=list)


class Cluster:
    """n replicas; ``auto_value``/``auto_validity`` answer requests immediately."""

    def __init__(self, n: int = 4, auto_value: bool = True, auto_validity: bool = True):
        self.ctx, self.signers = make_ctx(n)
        self.auto_value = auto_value
        self.auto_validity = auto_validity
        self.nodes = [Node(Replica(self.ctx, s, PARAMS), i) for i, s in enumerate(self.signers)]
        self.block_tag = ""

    def start(self, *which: int) -> None:
        for i in which or range(len(self.nodes)):
            self.apply(i, self.nodes[i].replica.start())

    def restart(self, i: int, height: int | None = None) -> None:
        node = self.nodes[i]
        h = height if height is not None else node.replica.height
        state = SignState.from_bytes(node.persisted) if node.persisted else None
        node.replica = Replica(self.ctx, self.signers[i], PARAMS, h, state)
        node.outbox.clear()
        node.timeouts.clear()
        self.apply(i, node.replica.start())

    def apply(self, i: int, actions: list[Action]) -> None:
        node = self.nodes[i]
        node.actions.extend(actions)
        persisted_pos = None
        for a in actions:
            if isinstance(a, PersistSignState):
                node.persisted = a.state.to_bytes()
                persisted_pos = a.state.position
            elif isinstance(a, Broadcast):
                assert persisted_pos is not None, "broadcast without a preceding persist"
                node.outbox.append(a.message)
                node.signed.append(a.message)
            elif isinstance(a, Relay):
                pass
            elif isinstance(a, ScheduleTimeout):
                node.timeouts.append(a)
            elif isinstance(a, Commit):
                node.commits.append(a)
            elif isinstance(a, EvidenceFound):
                node.evidence.append(a)
            elif isinstance(a, RequestProposal):
                node.requests.append(a)
                if self.auto_value:
                    vid = node.replica.validator_id or ""
                    block = make_block(a.height, a.round, vid, self.block_tag)
                    self.apply(i, node.replica.step(ProposalValue(a.height, a.round, block)))
            elif isinstance(a, ValidateBlock):
                if self.auto_validity:
                    self.apply(i, node.replica.step(BlockValidity(a.block_hash, is_valid(a.block))))
                else:
                    node.pending_validity.append(a)

    def deliver(self, msg: Message, to: int) -> list[Action]:
        actions = self.nodes[to].replica.step(MessageReceived(msg))
        self.apply(to, actions)
        return actions

    def flush(self, frm: int, to: list[int] | None = None, only=None) -> None:
        """Deliver what ``frm`` broadcast so far to ``to`` (default: all others); ``only``
        filters the messages (the rest stay in the outbox)."""
        box = self.nodes[frm].outbox
        msgs = [m for m in box if only is None or only(m)]
        self.nodes[frm].outbox = [m for m in box if m not in msgs]
        targets = to if to is not None else [j for j in range(len(self.nodes)) if j != frm]
        for m in msgs:
            for j in targets:
                self.deliver(m, j)

    def stabilize(self, among: list[int] | None = None, rounds: int = 50) -> None:
        """Deliver all outboxes among ``among`` until quiet."""
        group = among if among is not None else list(range(len(self.nodes)))
        for _ in range(rounds):
            if not any(self.nodes[i].outbox for i in group):
                return
            for i in group:
                self.flush(i, [j for j in group if j != i])

    def fire(self, i: int, step=None) -> bool:
        """Fire node i's latest timeout for its current (height, round) (of ``step``)."""
        r = self.nodes[i].replica
        for t in reversed(self.nodes[i].timeouts):
            if (t.height, t.round) == (r.height, r.round) and (step is None or t.step == step):
                self.nodes[i].timeouts.remove(t)
                self.apply(i, r.step(TimeoutFired(t.height, t.round, t.step)))
                return True
        return False
