from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ENTERPRISE: _ClassVar[Role]
    ASSOCIATION: _ClassVar[Role]
    REGULATOR: _ClassVar[Role]
    INSPECTOR: _ClassVar[Role]
    AUDITOR: _ClassVar[Role]
ROLE_UNSPECIFIED: Role
ENTERPRISE: Role
ASSOCIATION: Role
REGULATOR: Role
INSPECTOR: Role
AUDITOR: Role

class Member(_message.Message):
    __slots__ = ("id", "roles", "public_key", "x25519_key", "display_name", "org_code", "gs1_prefixes")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    X25519_KEY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ORG_CODE_FIELD_NUMBER: _ClassVar[int]
    GS1_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    id: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    public_key: str
    x25519_key: str
    display_name: str
    org_code: str
    gs1_prefixes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., public_key: _Optional[str] = ..., x25519_key: _Optional[str] = ..., display_name: _Optional[str] = ..., org_code: _Optional[str] = ..., gs1_prefixes: _Optional[_Iterable[str]] = ...) -> None: ...

class ConsensusParams(_message.Message):
    __slots__ = ("timeout_propose_ms", "timeout_prevote_ms", "timeout_precommit_ms", "timeout_delta_ms", "max_block_records", "max_block_bytes", "max_record_bytes", "create_empty_blocks_interval_ms")
    TIMEOUT_PROPOSE_MS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_PREVOTE_MS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_PRECOMMIT_MS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_DELTA_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCK_RECORDS_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORD_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_EMPTY_BLOCKS_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    timeout_propose_ms: int
    timeout_prevote_ms: int
    timeout_precommit_ms: int
    timeout_delta_ms: int
    max_block_records: int
    max_block_bytes: int
    max_record_bytes: int
    create_empty_blocks_interval_ms: int
    def __init__(self, timeout_propose_ms: _Optional[int] = ..., timeout_prevote_ms: _Optional[int] = ..., timeout_precommit_ms: _Optional[int] = ..., timeout_delta_ms: _Optional[int] = ..., max_block_records: _Optional[int] = ..., max_block_bytes: _Optional[int] = ..., max_record_bytes: _Optional[int] = ..., create_empty_blocks_interval_ms: _Optional[int] = ...) -> None: ...

class BizStepPermission(_message.Message):
    __slots__ = ("biz_step", "roles")
    BIZ_STEP_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    biz_step: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, biz_step: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class Genesis(_message.Message):
    __slots__ = ("format", "chain_id", "genesis_time", "members", "validators", "consensus", "permissions")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    GENESIS_TIME_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    VALIDATORS_FIELD_NUMBER: _ClassVar[int]
    CONSENSUS_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    format: str
    chain_id: str
    genesis_time: str
    members: _containers.RepeatedCompositeFieldContainer[Member]
    validators: _containers.RepeatedScalarFieldContainer[str]
    consensus: ConsensusParams
    permissions: _containers.RepeatedCompositeFieldContainer[BizStepPermission]
    def __init__(self, format: _Optional[str] = ..., chain_id: _Optional[str] = ..., genesis_time: _Optional[str] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., validators: _Optional[_Iterable[str]] = ..., consensus: _Optional[_Union[ConsensusParams, _Mapping]] = ..., permissions: _Optional[_Iterable[_Union[BizStepPermission, _Mapping]]] = ...) -> None: ...

class Signature(_message.Message):
    __slots__ = ("keyid", "sig")
    KEYID_FIELD_NUMBER: _ClassVar[int]
    SIG_FIELD_NUMBER: _ClassVar[int]
    keyid: str
    sig: bytes
    def __init__(self, keyid: _Optional[str] = ..., sig: _Optional[bytes] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("payload", "payload_type", "signatures")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    payload_type: str
    signatures: _containers.RepeatedCompositeFieldContainer[Signature]
    def __init__(self, payload: _Optional[bytes] = ..., payload_type: _Optional[str] = ..., signatures: _Optional[_Iterable[_Union[Signature, _Mapping]]] = ...) -> None: ...

class RecordInfo(_message.Message):
    __slots__ = ("record_id", "log_index", "height", "author", "event_type", "biz_step", "event_time", "codes", "category", "event_id", "handoff_to", "signers", "action", "disposition", "error_declaration", "declared_by")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    BIZ_STEP_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    HANDOFF_TO_FIELD_NUMBER: _ClassVar[int]
    SIGNERS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DISPOSITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_DECLARATION_FIELD_NUMBER: _ClassVar[int]
    DECLARED_BY_FIELD_NUMBER: _ClassVar[int]
    record_id: bytes
    log_index: int
    height: int
    author: str
    event_type: str
    biz_step: str
    event_time: str
    codes: _containers.RepeatedScalarFieldContainer[str]
    category: str
    event_id: str
    handoff_to: str
    signers: _containers.RepeatedScalarFieldContainer[str]
    action: str
    disposition: str
    error_declaration: str
    declared_by: bytes
    def __init__(self, record_id: _Optional[bytes] = ..., log_index: _Optional[int] = ..., height: _Optional[int] = ..., author: _Optional[str] = ..., event_type: _Optional[str] = ..., biz_step: _Optional[str] = ..., event_time: _Optional[str] = ..., codes: _Optional[_Iterable[str]] = ..., category: _Optional[str] = ..., event_id: _Optional[str] = ..., handoff_to: _Optional[str] = ..., signers: _Optional[_Iterable[str]] = ..., action: _Optional[str] = ..., disposition: _Optional[str] = ..., error_declaration: _Optional[str] = ..., declared_by: _Optional[bytes] = ...) -> None: ...

class BlockHeader(_message.Message):
    __slots__ = ("chain_id", "genesis_hash", "height", "round", "time_ms", "proposer", "prev_block_hash", "log_size", "log_root", "num_records", "records_hash", "state_root")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    GENESIS_HASH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    PREV_BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    LOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOG_ROOT_FIELD_NUMBER: _ClassVar[int]
    NUM_RECORDS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_HASH_FIELD_NUMBER: _ClassVar[int]
    STATE_ROOT_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    genesis_hash: bytes
    height: int
    round: int
    time_ms: int
    proposer: str
    prev_block_hash: bytes
    log_size: int
    log_root: bytes
    num_records: int
    records_hash: bytes
    state_root: bytes
    def __init__(self, chain_id: _Optional[str] = ..., genesis_hash: _Optional[bytes] = ..., height: _Optional[int] = ..., round: _Optional[int] = ..., time_ms: _Optional[int] = ..., proposer: _Optional[str] = ..., prev_block_hash: _Optional[bytes] = ..., log_size: _Optional[int] = ..., log_root: _Optional[bytes] = ..., num_records: _Optional[int] = ..., records_hash: _Optional[bytes] = ..., state_root: _Optional[bytes] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("header", "envelopes")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    header: bytes
    envelopes: _containers.RepeatedCompositeFieldContainer[Envelope]
    def __init__(self, header: _Optional[bytes] = ..., envelopes: _Optional[_Iterable[_Union[Envelope, _Mapping]]] = ...) -> None: ...

class CommitSig(_message.Message):
    __slots__ = ("validator", "signature")
    VALIDATOR_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    validator: str
    signature: bytes
    def __init__(self, validator: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class CommitCertificate(_message.Message):
    __slots__ = ("height", "round", "block_hash", "signatures")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    height: int
    round: int
    block_hash: bytes
    signatures: _containers.RepeatedCompositeFieldContainer[CommitSig]
    def __init__(self, height: _Optional[int] = ..., round: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., signatures: _Optional[_Iterable[_Union[CommitSig, _Mapping]]] = ...) -> None: ...

class CommittedBlock(_message.Message):
    __slots__ = ("block", "certificate")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    block: Block
    certificate: CommitCertificate
    def __init__(self, block: _Optional[_Union[Block, _Mapping]] = ..., certificate: _Optional[_Union[CommitCertificate, _Mapping]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("header", "certificate", "note")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    header: bytes
    certificate: CommitCertificate
    note: str
    def __init__(self, header: _Optional[bytes] = ..., certificate: _Optional[_Union[CommitCertificate, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class ConsistencyProof(_message.Message):
    __slots__ = ("old_size", "old_root", "path")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    OLD_ROOT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    old_root: bytes
    path: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, old_size: _Optional[int] = ..., old_root: _Optional[bytes] = ..., path: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ProofBundle(_message.Message):
    __slots__ = ("format", "genesis_hash", "envelope", "log_index", "inclusion_path", "header", "certificate", "consistency", "record_height")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    GENESIS_HASH_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_PATH_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    RECORD_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    format: str
    genesis_hash: bytes
    envelope: Envelope
    log_index: int
    inclusion_path: _containers.RepeatedScalarFieldContainer[bytes]
    header: bytes
    certificate: CommitCertificate
    consistency: ConsistencyProof
    record_height: int
    def __init__(self, format: _Optional[str] = ..., genesis_hash: _Optional[bytes] = ..., envelope: _Optional[_Union[Envelope, _Mapping]] = ..., log_index: _Optional[int] = ..., inclusion_path: _Optional[_Iterable[bytes]] = ..., header: _Optional[bytes] = ..., certificate: _Optional[_Union[CommitCertificate, _Mapping]] = ..., consistency: _Optional[_Union[ConsistencyProof, _Mapping]] = ..., record_height: _Optional[int] = ...) -> None: ...
