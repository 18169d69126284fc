from proto import types_pb2 as _types_pb2
from proto import consensus_pb2 as _consensus_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitRequest(_message.Message):
    __slots__ = ("envelope", "wait")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    envelope: _types_pb2.Envelope
    wait: bool
    def __init__(self, envelope: _Optional[_Union[_types_pb2.Envelope, _Mapping]] = ..., wait: _Optional[bool] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("record_id", "committed", "height", "log_index")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    record_id: bytes
    committed: bool
    height: int
    log_index: int
    def __init__(self, record_id: _Optional[bytes] = ..., committed: _Optional[bool] = ..., height: _Optional[int] = ..., log_index: _Optional[int] = ...) -> None: ...

class SubmitBatch(_message.Message):
    __slots__ = ("envelopes", "batch_id", "wait")
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    envelopes: _containers.RepeatedCompositeFieldContainer[_types_pb2.Envelope]
    batch_id: int
    wait: bool
    def __init__(self, envelopes: _Optional[_Iterable[_Union[_types_pb2.Envelope, _Mapping]]] = ..., batch_id: _Optional[int] = ..., wait: _Optional[bool] = ...) -> None: ...

class SubmitResult(_message.Message):
    __slots__ = ("record_id", "code", "message", "height", "log_index")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    record_id: bytes
    code: int
    message: str
    height: int
    log_index: int
    def __init__(self, record_id: _Optional[bytes] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., height: _Optional[int] = ..., log_index: _Optional[int] = ...) -> None: ...

class SubmitBatchResult(_message.Message):
    __slots__ = ("batch_id", "results", "committed")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    results: _containers.RepeatedCompositeFieldContainer[SubmitResult]
    committed: bool
    def __init__(self, batch_id: _Optional[int] = ..., results: _Optional[_Iterable[_Union[SubmitResult, _Mapping]]] = ..., committed: _Optional[bool] = ...) -> None: ...

class GetRecordRequest(_message.Message):
    __slots__ = ("record_id",)
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    record_id: bytes
    def __init__(self, record_id: _Optional[bytes] = ...) -> None: ...

class RecordResponse(_message.Message):
    __slots__ = ("envelope", "info")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    envelope: _types_pb2.Envelope
    info: _types_pb2.RecordInfo
    def __init__(self, envelope: _Optional[_Union[_types_pb2.Envelope, _Mapping]] = ..., info: _Optional[_Union[_types_pb2.RecordInfo, _Mapping]] = ...) -> None: ...

class GetBlockRequest(_message.Message):
    __slots__ = ("height",)
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    height: int
    def __init__(self, height: _Optional[int] = ...) -> None: ...

class StreamBlocksRequest(_message.Message):
    __slots__ = ("from_height", "to_height")
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TO_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    from_height: int
    to_height: int
    def __init__(self, from_height: _Optional[int] = ..., to_height: _Optional[int] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("height",)
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    height: int
    def __init__(self, height: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeerInfo(_message.Message):
    __slots__ = ("address", "member", "height", "connected", "problem")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    address: str
    member: str
    height: int
    connected: bool
    problem: str
    def __init__(self, address: _Optional[str] = ..., member: _Optional[str] = ..., height: _Optional[int] = ..., connected: _Optional[bool] = ..., problem: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("chain_id", "genesis_hash", "member", "height", "log_size", "head_hash", "log_root", "round", "mempool_size", "peers", "syncing", "version", "idle_height", "validators", "validators_answering", "quorum")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    GENESIS_HASH_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    LOG_ROOT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    MEMPOOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    SYNCING_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IDLE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_ANSWERING_FIELD_NUMBER: _ClassVar[int]
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    genesis_hash: bytes
    member: str
    height: int
    log_size: int
    head_hash: bytes
    log_root: bytes
    round: int
    mempool_size: int
    peers: _containers.RepeatedCompositeFieldContainer[PeerInfo]
    syncing: bool
    version: str
    idle_height: int
    validators: int
    validators_answering: int
    quorum: int
    def __init__(self, chain_id: _Optional[str] = ..., genesis_hash: _Optional[bytes] = ..., member: _Optional[str] = ..., height: _Optional[int] = ..., log_size: _Optional[int] = ..., head_hash: _Optional[bytes] = ..., log_root: _Optional[bytes] = ..., round: _Optional[int] = ..., mempool_size: _Optional[int] = ..., peers: _Optional[_Iterable[_Union[PeerInfo, _Mapping]]] = ..., syncing: _Optional[bool] = ..., version: _Optional[str] = ..., idle_height: _Optional[int] = ..., validators: _Optional[int] = ..., validators_answering: _Optional[int] = ..., quorum: _Optional[int] = ...) -> None: ...

class ProveRequest(_message.Message):
    __slots__ = ("record_id", "since_size")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_SIZE_FIELD_NUMBER: _ClassVar[int]
    record_id: bytes
    since_size: int
    def __init__(self, record_id: _Optional[bytes] = ..., since_size: _Optional[int] = ...) -> None: ...

class TraceRequest(_message.Message):
    __slots__ = ("code", "max_depth", "limit", "page_token")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    code: str
    max_depth: int
    limit: int
    page_token: str
    def __init__(self, code: _Optional[str] = ..., max_depth: _Optional[int] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class TraceNode(_message.Message):
    __slots__ = ("code", "relation", "depth", "parent_code", "custodian", "status", "commissioned_by", "is_class", "recalled", "container", "recalled_by", "recalled_at", "disposition", "since_ms", "held_at", "held_by", "held_via", "void_at", "other_recalls")
    CODE_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    PARENT_CODE_FIELD_NUMBER: _ClassVar[int]
    CUSTODIAN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COMMISSIONED_BY_FIELD_NUMBER: _ClassVar[int]
    IS_CLASS_FIELD_NUMBER: _ClassVar[int]
    RECALLED_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    RECALLED_BY_FIELD_NUMBER: _ClassVar[int]
    RECALLED_AT_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    HELD_AT_FIELD_NUMBER: _ClassVar[int]
    HELD_BY_FIELD_NUMBER: _ClassVar[int]
    HELD_VIA_FIELD_NUMBER: _ClassVar[int]
    VOID_AT_FIELD_NUMBER: _ClassVar[int]
    OTHER_RECALLS_FIELD_NUMBER: _ClassVar[int]
    code: str
    relation: str
    depth: int
    parent_code: str
    custodian: str
    status: str
    commissioned_by: str
    is_class: bool
    recalled: bool
    container: str
    recalled_by: str
    recalled_at: int
    disposition: str
    since_ms: int
    held_at: int
    held_by: str
    held_via: str
    void_at: int
    other_recalls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, code: _Optional[str] = ..., relation: _Optional[str] = ..., depth: _Optional[int] = ..., parent_code: _Optional[str] = ..., custodian: _Optional[str] = ..., status: _Optional[str] = ..., commissioned_by: _Optional[str] = ..., is_class: _Optional[bool] = ..., recalled: _Optional[bool] = ..., container: _Optional[str] = ..., recalled_by: _Optional[str] = ..., recalled_at: _Optional[int] = ..., disposition: _Optional[str] = ..., since_ms: _Optional[int] = ..., held_at: _Optional[int] = ..., held_by: _Optional[str] = ..., held_via: _Optional[str] = ..., void_at: _Optional[int] = ..., other_recalls: _Optional[_Iterable[str]] = ...) -> None: ...

class TraceResponse(_message.Message):
    __slots__ = ("code", "records", "nodes", "next_page_token", "truncated")
    CODE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    code: str
    records: _containers.RepeatedCompositeFieldContainer[_types_pb2.RecordInfo]
    nodes: _containers.RepeatedCompositeFieldContainer[TraceNode]
    next_page_token: str
    truncated: bool
    def __init__(self, code: _Optional[str] = ..., records: _Optional[_Iterable[_Union[_types_pb2.RecordInfo, _Mapping]]] = ..., nodes: _Optional[_Iterable[_Union[TraceNode, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., truncated: _Optional[bool] = ...) -> None: ...

class SignCheckpointRequest(_message.Message):
    __slots__ = ("height",)
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    height: int
    def __init__(self, height: _Optional[int] = ...) -> None: ...

class CheckpointSignature(_message.Message):
    __slots__ = ("validator", "height", "note", "signature")
    VALIDATOR_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    validator: str
    height: int
    note: str
    signature: bytes
    def __init__(self, validator: _Optional[str] = ..., height: _Optional[int] = ..., note: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ListEvidenceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListEvidenceResponse(_message.Message):
    __slots__ = ("evidence",)
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    evidence: _containers.RepeatedCompositeFieldContainer[_consensus_pb2.Evidence]
    def __init__(self, evidence: _Optional[_Iterable[_Union[_consensus_pb2.Evidence, _Mapping]]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("genesis_hash", "member", "height", "nonce", "proof", "instance", "challenge")
    GENESIS_HASH_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    genesis_hash: bytes
    member: str
    height: int
    nonce: bytes
    proof: bytes
    instance: bytes
    challenge: bytes
    def __init__(self, genesis_hash: _Optional[bytes] = ..., member: _Optional[str] = ..., height: _Optional[int] = ..., nonce: _Optional[bytes] = ..., proof: _Optional[bytes] = ..., instance: _Optional[bytes] = ..., challenge: _Optional[bytes] = ...) -> None: ...

class PeerEnvelope(_message.Message):
    __slots__ = ("hello", "consensus", "records", "evidence")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    consensus: _containers.RepeatedCompositeFieldContainer[_consensus_pb2.ConsensusMessage]
    records: _containers.RepeatedCompositeFieldContainer[_types_pb2.Envelope]
    evidence: _consensus_pb2.Evidence
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., consensus: _Optional[_Iterable[_Union[_consensus_pb2.ConsensusMessage, _Mapping]]] = ..., records: _Optional[_Iterable[_Union[_types_pb2.Envelope, _Mapping]]] = ..., evidence: _Optional[_Union[_consensus_pb2.Evidence, _Mapping]] = ...) -> None: ...

class PeerAck(_message.Message):
    __slots__ = ("height",)
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    height: int
    def __init__(self, height: _Optional[int] = ...) -> None: ...

class GetBlocksRequest(_message.Message):
    __slots__ = ("from_height", "to_height")
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TO_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    from_height: int
    to_height: int
    def __init__(self, from_height: _Optional[int] = ..., to_height: _Optional[int] = ...) -> None: ...

class GetRecordsRequest(_message.Message):
    __slots__ = ("leaf_hashes",)
    LEAF_HASHES_FIELD_NUMBER: _ClassVar[int]
    leaf_hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, leaf_hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetRecordsResponse(_message.Message):
    __slots__ = ("envelopes",)
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    envelopes: _containers.RepeatedCompositeFieldContainer[_types_pb2.Envelope]
    def __init__(self, envelopes: _Optional[_Iterable[_Union[_types_pb2.Envelope, _Mapping]]] = ...) -> None: ...
