"""Offline verification of proof bundles and checkpoints. Pure: no I/O, no network.

Everything here needs only the bundle (or checkpoint) and the genesis file. Results are
values (``BundleResult``, ``CheckpointResult``) listing each numbered step; the
``require_*`` wrappers raise ``VerificationError`` naming the first failed step.

Bundle verification (``verify_bundle``), every step always run and reported:

  (1) chain: ``format`` is exactly ``suyuan-proof/1`` and the bundle's ``genesis_hash`` is
      SHA-256 of the genesis file (the chain identity).
  (2) envelope: ``node.records.verify_envelope`` — every signature valid, no signer twice,
      each signer a member, the author's role allowed for the bizStep, a handoff signed by
      both parties and nobody else, the record bound to this chain.
  (3) inclusion: ``record_height`` equals the header's height, ``log_index`` lies in that
      block's range ``[log_size - num_records, log_size)``, and the RFC 9162 path proves
      ``leaf_hash(envelope_leaf_bytes)`` at ``log_index`` against the header's
      ``(log_size, log_root)``.
  (4) header: SHA-256(header bytes) is the certificate's block hash; the header is this
      chain's (chain id, genesis hash); its height and round are the certificate's; its
      proposer is a validator.
  (5) certificate: >= 2f+1 distinct genesis validators with valid precommit signatures over
      that block; any unknown, repeated or invalid signature fails it.
  (6) consistency: the bundle's optional consistency proof links the header's tree and the
      tree ``(old_size, old_root)`` (the smaller is a prefix of the larger); with a
      checkpoint, the checkpoint verifies (certificate, and note if present) and its
      ``(log_size, log_root)`` is the one the proof links to (or equals the header's).
      Skipped when there is neither, and when a proof that verifies comes without a
      checkpoint: its old root is the node's word, certified by nothing the verifier holds
      (a proof that does not verify still fails).

Why every field is covered: ``format``, ``genesis_hash`` (1); envelope payload, type and
every signature (2, and the leaf bytes in 3); ``log_index``, ``inclusion_path``,
``record_height`` (3); every header byte (hash in 4, signed in 5); certificate height, round,
block hash and each signature (4, 5); consistency fields (6). Dropping a certificate
signature while a quorum remains leaves a genuinely valid bundle and passes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from consensus.certificate import verify_certificate
from consensus.validators import ValidatorSet
from node import merkle, strictjson
from node.convert import envelope_from_proto
from node.envelope import envelope_leaf_bytes
from node.errors import InputError, LedgerError, VerificationError, first_line
from node.genesis import Genesis
from node.note import verify_checkpoint_note
from node.records import header_time, verify_envelope
from proto import types_pb2

BUNDLE_FORMAT = "suyuan-proof/1"
AUDIT_CHECKPOINT_FORMAT = "suyuan-audit-checkpoint/1"

STEP_NAMES = {
    1: "chain",
    2: "envelope",
    3: "inclusion",
    4: "header",
    5: "certificate",
    6: "consistency",
}


@dataclass(frozen=True)
class Step:
    """One numbered step: ``ok`` is True (passed), False (failed) or None (skipped)."""

    number: int
    name: str
    ok: bool | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        status = "skipped" if self.ok is None else ("pass" if self.ok else "fail")
        return {"step": self.number, "name": self.name, "status": status, "message": self.message}


@dataclass(frozen=True)
class BundleResult:
    """Outcome of ``verify_bundle``: truthy iff no step failed."""

    steps: tuple[Step, ...]
    record_id: bytes = b""
    log_index: int = 0
    height: int = 0
    log_size: int = 0
    log_root: bytes = b""

    def __bool__(self) -> bool:
        return all(s.ok is not False for s in self.steps)

    @property
    def first_failure(self) -> Step | None:
        return next((s for s in self.steps if s.ok is False), None)

    def describe(self) -> str:
        """One line: the first failed step, or a summary of what was proven."""
        f = self.first_failure
        if f is not None:
            return f"step {f.number} ({f.name}) failed: {f.message}"
        return (
            f"record {self.record_id.hex()} is log entry {self.log_index} of a log of "
            f"{self.log_size} certified at height {self.height}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": bool(self),
            "record_id": self.record_id.hex(),
            "log_index": self.log_index,
            "height": self.height,
            "log_size": self.log_size,
            "log_root": self.log_root.hex(),
            "steps": [s.to_dict() for s in self.steps],
            "message": self.describe(),
        }


class _StepFailedError(Exception):
    pass


def _run(number: int, check: Callable[[], str]) -> Step:
    """Run one step: ``check`` returns a pass message or raises ``_StepFailedError``/LedgerError."""
    try:
        return Step(number, STEP_NAMES[number], True, check())
    except (_StepFailedError, LedgerError) as e:
        return Step(number, STEP_NAMES[number], False, str(e))


def _fail(msg: str) -> _StepFailedError:
    return _StepFailedError(msg)


def parse_header(raw: bytes) -> types_pb2.BlockHeader | None:
    """The block header ``raw`` encodes, or None: it does not parse, or it is empty or cut
    short (no height: every block has one, from 1; QA-P: an empty header read as
    height 0)."""
    header = types_pb2.BlockHeader()
    try:
        header.ParseFromString(raw)
    except DecodeError:
        return None
    return header if header.height > 0 else None


# --------------------------------------------------------------------------- certified headers


@dataclass(frozen=True)
class CertifiedHeader:
    """A header whose commit certificate verified against the genesis validators."""

    header: types_pb2.BlockHeader
    block_hash: bytes
    signers: frozenset[str]


def check_certified_header(
    header_bytes: bytes,
    cert: types_pb2.CommitCertificate,
    genesis: Genesis,
    validators: ValidatorSet | None = None,
) -> CertifiedHeader:
    """Steps (4) and (5) for a header and its certificate; raises ``VerificationError``."""
    vs = validators or ValidatorSet.from_pairs(genesis.validator_keys())
    header = _check_header(header_bytes, cert, genesis, vs)
    result = verify_certificate(
        cert, vs, genesis.hash, genesis.chain_id, hashlib.sha256(header_bytes).digest()
    )
    if not result:
        raise VerificationError(result.describe("certificate"))
    return CertifiedHeader(header, hashlib.sha256(header_bytes).digest(), result.signers)


def _check_header(
    header_bytes: bytes,
    cert: types_pb2.CommitCertificate,
    genesis: Genesis,
    vs: ValidatorSet,
) -> types_pb2.BlockHeader:
    header = parse_header(header_bytes)
    if header is None:
        raise VerificationError("header is empty, cut short or does not parse")
    if not cert.block_hash and not cert.signatures:  # (QA-R: read as a hash mismatch)
        raise VerificationError("no commit certificate (it is missing or empty)")
    if not hmac.compare_digest(hashlib.sha256(header_bytes).digest(), cert.block_hash):
        raise VerificationError("SHA-256(header) is not the certificate's block hash")
    if header.chain_id != genesis.chain_id or header.genesis_hash != genesis.hash:
        raise VerificationError("header belongs to another chain")
    # a block is decided in the round it was built for or, re-proposed as the round's valid
    # value (Tendermint), in a later one: the header keeps the round it was built in
    if header.height != cert.height or cert.round < header.round:
        raise VerificationError(
            f"header is height {header.height} round {header.round}, certificate "
            f"{cert.height}/{cert.round}"
        )
    if header.height < 1 or header.proposer not in vs:
        raise VerificationError("header height or proposer is invalid")
    if len(header.log_root) != merkle.HASH_SIZE or len(header.prev_block_hash) != 32:
        raise VerificationError("header hashes must be 32 bytes")
    if header.num_records > header.log_size:
        raise VerificationError("header num_records exceeds log_size")
    return header


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class CheckpointResult:
    """Outcome of ``verify_checkpoint``: truthy iff ``reason`` is empty."""

    reason: str
    height: int = 0
    log_size: int = 0
    log_root: bytes = b""
    block_hash: bytes = b""
    note_signers: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return not self.reason


def verify_checkpoint(cp: types_pb2.Checkpoint, genesis: Genesis) -> CheckpointResult:
    """A checkpoint is valid iff its header is certified by a quorum of genesis validators
    and, when it carries a note, the note names this chain's origin, the header's log size
    and root, and carries >= 2f+1 valid validator note signatures. Never raises."""
    try:
        ch = check_certified_header(bytes(cp.header), cp.certificate, genesis)
    except LedgerError as e:
        return CheckpointResult(f"checkpoint: {e}")
    h = ch.header
    signers: frozenset[str] = frozenset()
    if cp.note:
        try:
            _, q = verify_checkpoint_note(cp.note, genesis, h.log_size, bytes(h.log_root))
        except LedgerError as e:
            return CheckpointResult(str(e))
        if not q:
            return CheckpointResult(q.describe("checkpoint note"))
        signers = q.signers
    return CheckpointResult("", h.height, h.log_size, bytes(h.log_root), ch.block_hash, signers)


def require_checkpoint(cp: types_pb2.Checkpoint, genesis: Genesis) -> CheckpointResult:
    """``verify_checkpoint``, raising ``VerificationError`` with the reason when invalid."""
    result = verify_checkpoint(cp, genesis)
    if not result:
        raise VerificationError(result.reason)
    return result


# --------------------------------------------------------------------------- bundles


def verify_bundle(
    bundle: types_pb2.ProofBundle,
    genesis: Genesis,
    checkpoint: types_pb2.Checkpoint | None = None,
) -> BundleResult:
    """Run steps (1)-(6) of the module docstring. Never raises."""
    vs = ValidatorSet.from_pairs(genesis.validator_keys())
    header_bytes = bytes(bundle.header)
    header = parse_header(header_bytes)
    env_pb = bundle.envelope
    record_id = hashlib.sha256(env_pb.payload).digest()

    def step1() -> str:
        if bundle.format != BUNDLE_FORMAT:
            raise _fail(f"format is {bundle.format!r}, expected {BUNDLE_FORMAT!r}")
        if not bundle.genesis_hash:
            raise _fail("bundle names no chain (genesis_hash is missing)")
        if not hmac.compare_digest(bytes(bundle.genesis_hash), genesis.hash):
            raise _fail(
                f"bundle is for the chain of genesis {bytes(bundle.genesis_hash).hex()}, the "
                f"genesis file is {genesis.hash.hex()} ({genesis.chain_id})"
            )
        return f"chain {genesis.chain_id} ({genesis.hash.hex()[:16]}...)"

    def step2() -> str:
        v = verify_envelope(envelope_from_proto(env_pb), genesis, committed=True)
        who = " and ".join(v.record.required_signers())
        return f"signed by {who}; bizStep {v.record.biz_step or '(none)'} permitted"

    def step3() -> str:
        if header is None:
            raise _fail("the block header is empty, cut short or does not parse (step 4)")
        if bundle.record_height != header.height:
            raise _fail(f"record_height {bundle.record_height} is not the header's {header.height}")
        first = header.log_size - header.num_records
        if not first <= bundle.log_index < header.log_size:
            raise _fail(
                f"log index {bundle.log_index} is not in block {header.height}'s range "
                f"[{first}, {header.log_size})"
            )
        leaf = merkle.leaf_hash(envelope_leaf_bytes(envelope_from_proto(env_pb)))
        path = [bytes(p) for p in bundle.inclusion_path]
        if not merkle.verify_inclusion(
            leaf, bundle.log_index, header.log_size, path, bytes(header.log_root)
        ):
            raise _fail(
                f"inclusion path does not prove leaf {bundle.log_index} in the log of "
                f"{header.log_size} at height {header.height}: the envelope (its payload and "
                "its signatures, in their order, make the leaf) or the path was changed"
            )
        return f"leaf {bundle.log_index} of {header.log_size} ({len(path)} hashes)"

    def step4() -> str:
        h = _check_header(header_bytes, bundle.certificate, genesis, vs)
        return (
            f"height {h.height} round {h.round} block {bundle.certificate.block_hash.hex()[:16]}"
            f", dated {header_time(h.time_ms)}"
        )

    def step5() -> str:
        r = verify_certificate(
            bundle.certificate,
            vs,
            genesis.hash,
            genesis.chain_id,
            hashlib.sha256(header_bytes).digest(),
        )
        if not r:
            raise _fail(r.describe("certificate"))
        return f"{r.verified} of {vs.n} validators signed (need {r.needed})"

    def step6() -> str:
        return _consistency(bundle, header, genesis, checkpoint)

    steps = [_run(1, step1), _run(2, step2), _run(3, step3), _run(4, step4), _run(5, step5)]
    if not bundle.HasField("consistency") and checkpoint is None:
        steps.append(Step(6, STEP_NAMES[6], None, "no consistency proof and no checkpoint"))
    else:
        s6 = _run(6, step6)
        if s6.ok and checkpoint is None:  # a valid proof to a root that nothing certified
            s6 = Step(
                6,
                STEP_NAMES[6],
                None,
                f"{s6.message}, whose root no checkpoint was given to certify "
                "(--checkpoint CP.json)",
            )
        steps.append(s6)
    return BundleResult(
        tuple(steps),
        record_id,
        bundle.log_index,
        header.height if header else 0,
        header.log_size if header else 0,
        bytes(header.log_root) if header else b"",
    )


def _consistency(
    bundle: types_pb2.ProofBundle,
    header: types_pb2.BlockHeader | None,
    genesis: Genesis,
    checkpoint: types_pb2.Checkpoint | None,
) -> str:
    if header is None:
        raise _fail("header does not parse")
    size, root = header.log_size, bytes(header.log_root)
    linked: tuple[int, bytes] | None = None
    msg = ""
    if bundle.HasField("consistency"):
        c = bundle.consistency
        old_size, old_root = c.old_size, bytes(c.old_root)
        path = [bytes(p) for p in c.path]
        if old_size < 1:
            raise _fail("consistency proof from an empty log")
        ok = (
            merkle.verify_consistency(old_size, size, old_root, root, path)
            if old_size <= size
            else merkle.verify_consistency(size, old_size, root, old_root, path)
        )
        if not ok:  # (smaller first, whichever is the checkpoint's: QA-X read "34 and 16")
            lo, hi = sorted((old_size, size))
            raise _fail(f"consistency proof from log size {lo} to {hi} does not verify")
        linked = (old_size, old_root)
        msg = f"log of {size} is consistent with the log of {old_size}"
    if checkpoint is None:
        return msg
    cp = require_checkpoint(checkpoint, genesis)
    if (cp.log_size, cp.log_root) == (size, root):
        return f"checkpoint at height {cp.height} has the header's own log ({size})"
    if cp.log_size == 0 and cp.log_root == merkle.EMPTY_ROOT:
        # (RFC 9162 has no proof from the empty tree: it is a prefix of every log)
        return f"{msg + '; ' if msg else ''}checkpoint at height {cp.height} has an empty log"
    if linked is None:
        raise _fail(
            f"the bundle has no consistency proof for the checkpoint (log size {cp.log_size}); "
            "prove it with --since"
        )
    if linked != (cp.log_size, cp.log_root):
        raise _fail(
            f"the consistency proof links log size {linked[0]}, the checkpoint's log is "
            f"of {cp.log_size}: prove the record again with --since this checkpoint"
            if linked[0] != cp.log_size
            else "the checkpoint's log root differs from the one the proof links: "
            "the log was rewritten"
        )
    return f"{msg}; checkpoint at height {cp.height} verified"


def require_bundle(
    bundle: types_pb2.ProofBundle,
    genesis: Genesis,
    checkpoint: types_pb2.Checkpoint | None = None,
) -> BundleResult:
    """``verify_bundle``, raising ``VerificationError`` naming the first failed step."""
    result = verify_bundle(bundle, genesis, checkpoint)
    if not result:
        raise VerificationError(result.describe())
    return result


# --------------------------------------------------------------------------- JSON forms


def bundle_to_json(bundle: types_pb2.ProofBundle) -> str:
    """The protobuf JSON mapping of a bundle (proto field names), with a final newline."""
    return json_format.MessageToJson(bundle, preserving_proto_field_name=True, indent=2) + "\n"


def parse_bundle_json(text: str | bytes) -> types_pb2.ProofBundle:
    """Parse a bundle's JSON mapping; unknown fields are refused (InputError)."""
    bundle = types_pb2.ProofBundle()
    doc = strictjson.loads(text, "bundle")
    if not isinstance(doc, dict) or "format" not in doc:  # (QA: [] and {} read as bundles)
        raise InputError(
            "bundle: not a proof bundle (a JSON object with a 'format'; `suyuan prove` writes one)"
        )
    strictjson.one_spelling(doc, types_pb2.ProofBundle.DESCRIPTOR, "bundle")
    try:
        json_format.ParseDict(doc, bundle, ignore_unknown_fields=False)
    except (json_format.ParseError, ValueError, TypeError) as e:
        raise InputError(f"bundle: not a ProofBundle JSON document ({first_line(e)})") from e
    return bundle


def checkpoint_to_dict(cp: types_pb2.Checkpoint) -> dict[str, Any]:
    out: dict[str, Any] = json_format.MessageToDict(cp, preserving_proto_field_name=True)
    return out


def checkpoint_to_json(cp: types_pb2.Checkpoint) -> str:
    return json.dumps(checkpoint_to_dict(cp), indent=2) + "\n"


@dataclass(frozen=True)
class SavedCheckpoint:
    """A checkpoint, plus (when saved by ``suyuan audit``) every block hash up to it, so a
    later audit can name the first height at which a rewritten history differs."""

    checkpoint: types_pb2.Checkpoint
    block_hashes: tuple[bytes, ...] = ()

    def to_json(self) -> str:
        if not self.block_hashes:
            return checkpoint_to_json(self.checkpoint)
        doc = {
            "format": AUDIT_CHECKPOINT_FORMAT,
            "checkpoint": checkpoint_to_dict(self.checkpoint),
            "block_hashes": [h.hex() for h in self.block_hashes],
        }
        return json.dumps(doc, indent=1) + "\n"


def parse_checkpoint_json(text: str | bytes) -> SavedCheckpoint:
    """A ``Checkpoint`` JSON mapping, or an audit checkpoint document wrapping one."""
    doc = strictjson.loads(text, "checkpoint")
    if not isinstance(doc, dict):
        raise InputError("checkpoint: expected a JSON object")
    hashes: tuple[bytes, ...] = ()
    if doc.get("format") == AUDIT_CHECKPOINT_FORMAT:
        if set(doc) != {"format", "checkpoint", "block_hashes"}:
            raise InputError("audit checkpoint: expected format, checkpoint, block_hashes")
        raw = doc["block_hashes"]
        try:
            hashes = tuple(bytes.fromhex(h) for h in raw)
        except (TypeError, ValueError) as e:
            raise InputError("audit checkpoint: block_hashes must be hex strings") from e
        if not all(len(h) == 32 for h in hashes):
            raise InputError("audit checkpoint: block hashes must be 32 bytes")
        doc = doc["checkpoint"]
    cp = types_pb2.Checkpoint()
    strictjson.one_spelling(doc, types_pb2.Checkpoint.DESCRIPTOR, "checkpoint")
    try:
        json_format.ParseDict(doc, cp, ignore_unknown_fields=False)
    except (json_format.ParseError, ValueError, TypeError) as e:
        raise InputError(f"checkpoint: not a Checkpoint JSON document ({first_line(e)})") from e
    if not cp.header or not cp.HasField("certificate"):
        raise InputError(
            "checkpoint: it has no header or no certificate (from `suyuan checkpoint`)"
        )
    return SavedCheckpoint(cp, hashes)


__all__ = [
    "AUDIT_CHECKPOINT_FORMAT",
    "BUNDLE_FORMAT",
    "BundleResult",
    "CertifiedHeader",
    "CheckpointResult",
    "SavedCheckpoint",
    "Step",
    "bundle_to_json",
    "check_certified_header",
    "checkpoint_to_json",
    "parse_bundle_json",
    "parse_checkpoint_json",
    "parse_header",
    "require_bundle",
    "require_checkpoint",
    "verify_bundle",
    "verify_checkpoint",
]
