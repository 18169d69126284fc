"""What goes into the replica (events) and what comes out (actions).

The driver loop, for each event: ``actions = replica.step(event)``, then executes the
actions **in list order**:

- ``PersistSignState``: write ``state.to_bytes()`` durably (``Store.put_sign_state``) and
  only then go on. It always precedes the ``Broadcast`` it protects; nothing after it may be
  executed (sent) before it is on disk.
- ``PersistLock``: keep ``value.to_bytes()`` (the block just locked on and its proof of
  lock, ``consensus.lockstate``) and pass it back to ``Replica`` after a restart; it comes
  just before the precommit's ``PersistSignState``. Liveness, not safety, needs it.
- ``Broadcast``: send the signed message to every peer. The replica has already applied it
  to itself; do not feed it back (a copy fed back is dropped as a duplicate).
- ``Relay``: another validator's message accepted for the first time; forward it to peers
  (gossip; it lets every honest node see equivocations and fills dropped links). Optional.
- ``ScheduleTimeout``: after ``duration_ms`` feed ``TimeoutFired(height, round, step)``.
  Stale timeouts are ignored by the replica, so timers need not be cancelled.
- ``RequestProposal``: this validator proposes at (height, round): build a block and feed
  ``ProposalValue(height, round, block)`` (promptly; an empty block is fine).
- ``ValidateBlock``: apply the record rules to the block; feed ``BlockValidity(hash, ok)``.
  The replica will not prevote the block before the answer and prevotes nil if ``ok`` is
  False. Answers may be synchronous or come later.
- ``Commit``: the block at ``height`` is decided with ``certificate``; store both before
  executing later actions (the replica has moved on to ``height + 1``).
- ``EvidenceFound``: store / gossip the evidence (``verify_evidence`` checks it offline).
- ``RequestSync``: at least f+1 validators are at heights above ``height``; fetch committed
  blocks from ``height`` on and feed them, in order, as ``SyncCommitted``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.lockstate import LockedValue
from consensus.messages import Message, Step
from consensus.signstate import SignState
from consensus.validators import BlockHash
from proto import consensus_pb2, types_pb2

__all__ = [
    "Action",
    "BlockValidity",
    "Broadcast",
    "Commit",
    "Event",
    "EvidenceFound",
    "MessageReceived",
    "PersistLock",
    "PersistSignState",
    "ProposalValue",
    "Relay",
    "RequestProposal",
    "RequestSync",
    "ScheduleTimeout",
    "Start",
    "SyncCommitted",
    "TimeoutFired",
    "ValidateBlock",
]

# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Start:
    """Begin (or resume after a restart) at the replica's height. Send exactly once."""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A proposal or vote from the network.

    ``verified=True`` promises that ``consensus.signing.verify_message`` already returned
    None for this exact message (e.g. in a thread pool); the replica then skips the check.
    """

    message: Message
    verified: bool = False


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    height: int
    round: int
    step: Step


@dataclass(frozen=True, slots=True)
class ProposalValue:
    """The driver's answer to ``RequestProposal``."""

    height: int
    round: int
    block: types_pb2.Block = field(compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class BlockValidity:
    """The driver's answer to ``ValidateBlock``."""

    block_hash: BlockHash
    ok: bool


@dataclass(frozen=True, slots=True)
class SyncCommitted:
    """Block ``certificate.height`` was committed elsewhere (block sync); the replica checks
    the certificate against the block's hash and, if it is for its current height, commits
    and moves to the next height.

    ``verified=True`` promises that ``consensus.certificate.verify_certificate`` already
    accepted this certificate for this block's hash (block sync checks it before feeding);
    the replica then skips the check.
    """

    block: types_pb2.Block = field(compare=False, hash=False)
    certificate: types_pb2.CommitCertificate = field(compare=False, hash=False)
    verified: bool = False


Event = Start | MessageReceived | TimeoutFired | ProposalValue | BlockValidity | SyncCommitted

# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class PersistSignState:
    state: SignState


@dataclass(frozen=True, slots=True)
class PersistLock:
    """Keep ``value`` (the block just locked on, and its proof of lock) for a restart, and
    give it back to ``Replica``; not needed for safety, so it may be written lazily, but
    before the precommit that follows it is best (``consensus.lockstate``)."""

    value: LockedValue


@dataclass(frozen=True, slots=True)
class Broadcast:
    message: Message


@dataclass(frozen=True, slots=True)
class Relay:
    message: Message


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    height: int
    round: int
    step: Step
    duration_ms: int


@dataclass(frozen=True, slots=True)
class RequestProposal:
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class ValidateBlock:
    block_hash: BlockHash
    block: types_pb2.Block = field(compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class Commit:
    height: int
    block: types_pb2.Block = field(compare=False, hash=False)
    certificate: types_pb2.CommitCertificate = field(compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class EvidenceFound:
    evidence: consensus_pb2.Evidence = field(compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class RequestSync:
    height: int


Action = (
    PersistSignState
    | PersistLock
    | Broadcast
    | Relay
    | ScheduleTimeout
    | RequestProposal
    | ValidateBlock
    | Commit
    | EvidenceFound
    | RequestSync
)
