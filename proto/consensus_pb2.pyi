from proto import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VoteType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VOTE_TYPE_UNSPECIFIED: _ClassVar[VoteType]
    PREVOTE: _ClassVar[VoteType]
    PRECOMMIT: _ClassVar[VoteType]
VOTE_TYPE_UNSPECIFIED: VoteType
PREVOTE: VoteType
PRECOMMIT: VoteType

class Proposal(_message.Message):
    __slots__ = ("height", "round", "pol_round", "block_hash", "block", "proposer", "signature", "compact")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    POL_ROUND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    COMPACT_FIELD_NUMBER: _ClassVar[int]
    height: int
    round: int
    pol_round: int
    block_hash: bytes
    block: _types_pb2.Block
    proposer: str
    signature: bytes
    compact: CompactBlock
    def __init__(self, height: _Optional[int] = ..., round: _Optional[int] = ..., pol_round: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., block: _Optional[_Union[_types_pb2.Block, _Mapping]] = ..., proposer: _Optional[str] = ..., signature: _Optional[bytes] = ..., compact: _Optional[_Union[CompactBlock, _Mapping]] = ...) -> None: ...

class CompactBlock(_message.Message):
    __slots__ = ("header", "leaf_hashes")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASHES_FIELD_NUMBER: _ClassVar[int]
    header: bytes
    leaf_hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, header: _Optional[bytes] = ..., leaf_hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Vote(_message.Message):
    __slots__ = ("type", "height", "round", "block_hash", "validator", "signature")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    VALIDATOR_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    type: VoteType
    height: int
    round: int
    block_hash: bytes
    validator: str
    signature: bytes
    def __init__(self, type: _Optional[_Union[VoteType, str]] = ..., height: _Optional[int] = ..., round: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., validator: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("duplicate_vote", "duplicate_proposal")
    DUPLICATE_VOTE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    duplicate_vote: DuplicateVote
    duplicate_proposal: DuplicateProposal
    def __init__(self, duplicate_vote: _Optional[_Union[DuplicateVote, _Mapping]] = ..., duplicate_proposal: _Optional[_Union[DuplicateProposal, _Mapping]] = ...) -> None: ...

class DuplicateVote(_message.Message):
    __slots__ = ("a", "b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    a: Vote
    b: Vote
    def __init__(self, a: _Optional[_Union[Vote, _Mapping]] = ..., b: _Optional[_Union[Vote, _Mapping]] = ...) -> None: ...

class DuplicateProposal(_message.Message):
    __slots__ = ("a", "b")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    a: Proposal
    b: Proposal
    def __init__(self, a: _Optional[_Union[Proposal, _Mapping]] = ..., b: _Optional[_Union[Proposal, _Mapping]] = ...) -> None: ...

class ConsensusMessage(_message.Message):
    __slots__ = ("proposal", "vote")
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    VOTE_FIELD_NUMBER: _ClassVar[int]
    proposal: Proposal
    vote: Vote
    def __init__(self, proposal: _Optional[_Union[Proposal, _Mapping]] = ..., vote: _Optional[_Union[Vote, _Mapping]] = ...) -> None: ...
