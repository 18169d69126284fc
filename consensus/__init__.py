"""Suyuan's BFT ordering: Tendermint as a pure state machine (see ``consensus.state``).

The public surface, for the node's driver, block sync, ``suyuan verify`` and ``suyuan audit``:

- ``Replica`` (``step(event) -> list[Action]``, ``rebroadcast()``, ``sync_needed()``), the
  events and actions in ``consensus.events``, ``TimeoutParams``, ``SignState``.
- ``ValidatorSet``, ``ChainContext``, ``Ed25519Signer``, ``verify_message``.
- ``verify_certificate`` / ``require_certificate``, ``verify_evidence`` / ``require_evidence``.
- ``Proposal``, ``Vote``, ``decode_message``, ``encode_message``, ``block_hash_of``.
"""

from consensus.certificate import make_certificate, require_certificate, verify_certificate
from consensus.events import (
    Action,
    BlockValidity,
    Broadcast,
    Commit,
    Event,
    EvidenceFound,
    MessageReceived,
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
from consensus.evidence import require_evidence, verify_evidence
from consensus.messages import (
    Message,
    Proposal,
    Step,
    Vote,
    VoteType,
    block_hash_of,
    decode_message,
    encode_message,
)
from consensus.params import TimeoutParams
from consensus.quorum import QuorumResult, max_faulty, quorum, skip_threshold
from consensus.signing import Ed25519Signer, Signer, verify_message
from consensus.signstate import SignState
from consensus.state import Replica
from consensus.validators import BlockHash, ChainContext, ValidatorId, ValidatorSet

__all__ = [
    "Action",
    "BlockHash",
    "BlockValidity",
    "Broadcast",
    "ChainContext",
    "Commit",
    "Ed25519Signer",
    "Event",
    "EvidenceFound",
    "Message",
    "MessageReceived",
    "PersistSignState",
    "Proposal",
    "ProposalValue",
    "QuorumResult",
    "Relay",
    "Replica",
    "RequestProposal",
    "RequestSync",
    "ScheduleTimeout",
    "SignState",
    "Signer",
    "Start",
    "Step",
    "SyncCommitted",
    "TimeoutFired",
    "TimeoutParams",
    "ValidateBlock",
    "ValidatorId",
    "ValidatorSet",
    "Vote",
    "VoteType",
    "block_hash_of",
    "decode_message",
    "encode_message",
    "make_certificate",
    "max_faulty",
    "quorum",
    "require_certificate",
    "require_evidence",
    "skip_threshold",
    "verify_certificate",
    "verify_evidence",
    "verify_message",
]
