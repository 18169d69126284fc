"""C2SP signed notes and tlog-checkpoints for Suyuan's log. Pure: no I/O.

Specs: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.

A checkpoint note's text is exactly three lines, each ending in a newline::

    suyuan/<chain_id>/<genesis hash, lowercase hex>     the origin
    <log size, decimal, no leading zeros>
    <log root, standard base64>

followed by a blank line and one signature line per validator::

    — <key name> <base64(key ID || 64-byte Ed25519 signature over the note text)>

Invariants and choices, written down:
  * Each validator signs with its node key (its genesis Ed25519 key). Its key name is
    ``<origin>/<validator id>``; key ID = SHA-256(key name || 0x0A || 0x01 || public key)[:4]
    (signed-note "Ed25519 signatures"). Both are derived from the genesis file, so a
    witness configured with the genesis knows every validator's note key.
  * Domain separation: the note text starts with ``suyuan/<chain_id>/<hex>`` and contains no
    control character but newline, while every consensus sign-bytes string begins with a
    NUL-terminated ``suyuan/<kind>/v1`` tag (the hex genesis hash can never start with
    ``v1\\0``) and every record signature covers a DSSE PAE starting ``DSSEv1``. So a note
    signature can never be replayed as a vote or a record signature, or vice versa.
  * Verification follows signed-note: signatures from keys that are not this chain's
    validators (name or ID unknown) are ignored; a known key whose signature fails, or a
    validator signing twice, rejects the note; the note is accepted only with a quorum
    (2f+1) of distinct validators.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from consensus.quorum import QuorumResult, join_reasons
from consensus.validators import ValidatorSet
from node.errors import InputError
from node.genesis import Genesis
from node.keys import KeyPair
from node.records import verify_signature

EM_DASH = "\u2014"
SIG_TYPE_ED25519 = 0x01
MAX_SIGNATURES = 64
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,19})$")
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def origin(chain_id: str, genesis_hash: bytes) -> str:
    """The checkpoint origin line of a chain: ``suyuan/<chain_id>/<genesis hash hex>``.

    Raises:
        InputError: the chain id holds a space, ``+`` or a control character (the origin
            is also part of every key name, which signed-note forbids them in).
    """
    if not chain_id or any(c.isspace() or c == "+" or ord(c) < 0x20 for c in chain_id):
        raise InputError(f"chain id {chain_id!r} cannot be a checkpoint origin")
    if len(genesis_hash) != 32:
        raise InputError("genesis hash must be 32 bytes")
    return f"suyuan/{chain_id}/{genesis_hash.hex()}"


def key_name(origin_line: str, validator: str) -> str:
    """A validator's note key name: ``<origin>/<validator id>``."""
    return f"{origin_line}/{validator}"


def key_id(name: str, public_key: bytes) -> bytes:
    """Ed25519 note key ID: the first 4 bytes of SHA-256(name || 0x0A || 0x01 || key)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes((SIG_TYPE_ED25519,)) + public_key).digest()[
        :4
    ]


def checkpoint_text(origin_line: str, size: int, root: bytes) -> str:
    """The tlog-checkpoint note text (three lines, final newline included)."""
    if size < 0 or len(root) != 32:
        raise InputError("checkpoint: size must be >= 0 and the root 32 bytes")
    return f"{origin_line}\n{size}\n{base64.b64encode(root).decode()}\n"


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    size: int
    root: bytes


def parse_checkpoint_text(text: str) -> CheckpointBody:
    """Parse note text of exactly three lines (Suyuan emits no extension lines)."""
    if not text.endswith("\n"):
        raise InputError("checkpoint: note text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) != 3 or not all(lines):
        raise InputError("checkpoint: expected origin, size and root lines")
    org, size_s, root_s = lines
    if not _DECIMAL.match(size_s) or int(size_s) >= 1 << 64:
        raise InputError(f"checkpoint: bad tree size {size_s!r}")
    root = _b64(root_s, "root")
    if len(root) != 32:
        raise InputError("checkpoint: root must be 32 bytes")
    return CheckpointBody(org, int(size_s), root)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes  # 4 bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{EM_DASH} {self.name} {blob}\n"


@dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        """Text, blank line, signature lines (signed-note "Format")."""
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    @classmethod
    def from_text(cls, note: str) -> SignedNote:
        """Parse a signed note; refuses control characters, malformed lines, no signatures."""
        if any(ord(c) < 0x20 and c != "\n" for c in note):
            raise InputError("note: control characters are not allowed")
        cut = note.rfind("\n\n")
        if cut < 0:
            raise InputError("note: no blank line before the signatures")
        text, sig_block = note[: cut + 1], note[cut + 2 :]
        if not sig_block.endswith("\n"):
            raise InputError("note: signature lines must end with a newline")
        sigs = [_signature_line(line) for line in sig_block[:-1].split("\n")]
        if not sigs or len(sigs) > MAX_SIGNATURES:
            raise InputError(f"note: expected 1-{MAX_SIGNATURES} signature lines")
        return cls(text, tuple(sigs))


def _signature_line(line: str) -> NoteSignature:
    prefix = EM_DASH + " "
    if not line.startswith(prefix):
        raise InputError("note: a signature line must start with an em dash and a space")
    parts = line[len(prefix) :].split(" ")
    if len(parts) != 2 or not parts[0] or "+" in parts[0]:
        raise InputError("note: a signature line is '— <key name> <base64 signature>'")
    blob = _b64(parts[1], "signature")
    if len(blob) < 5:
        raise InputError("note: signature too short")
    return NoteSignature(parts[0], blob[:4], blob[4:])


def _b64(value: str, what: str) -> bytes:
    if not _B64.match(value) or len(value) % 4:
        raise InputError(f"note: {what} is not standard base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"note: {what} is not standard base64") from e


def sign_checkpoint(text: str, origin_line: str, key: KeyPair) -> NoteSignature:
    """A validator's signature line over ``text`` with its node key."""
    name = key_name(origin_line, key.name)
    return NoteSignature(name, key_id(name, key.public_key), key.sign(text.encode()))


def note_keys(genesis: Genesis) -> dict[tuple[str, bytes], tuple[str, bytes]]:
    """(key name, key ID) -> (validator id, public key) for every genesis validator."""
    org = origin(genesis.chain_id, genesis.hash)
    out: dict[tuple[str, bytes], tuple[str, bytes]] = {}
    for vid, pub in genesis.validator_keys():
        name = key_name(org, vid)
        out[(name, key_id(name, pub))] = (vid, pub)
    return out


def verify_note_signatures(
    text: str, signatures: Iterable[NoteSignature], genesis: Genesis
) -> QuorumResult:
    """Count distinct validators whose note signature over ``text`` verifies. Never raises.

    Unknown keys are ignored (signed-note); a failing known key or a repeated validator
    makes the result falsy whatever the count.
    """
    keys = note_keys(genesis)
    needed = ValidatorSet.from_pairs(genesis.validator_keys()).quorum
    data = text.encode()
    signers: set[str] = set()
    reasons: list[str] = []
    presented = 0
    for s in signatures:
        known = keys.get((s.name, s.key_id))
        if known is None:
            continue
        presented += 1
        vid, pub = known
        if vid in signers:
            reasons.append(f"duplicate note signature from {vid!r}")
        elif not verify_signature(pub, data, s.signature):
            reasons.append(f"invalid note signature from {vid!r}")
        else:
            signers.add(vid)
    return QuorumResult(len(signers), needed, frozenset(signers), join_reasons(reasons), presented)


def verify_checkpoint_note(
    note: str, genesis: Genesis, size: int | None = None, root: bytes | None = None
) -> tuple[CheckpointBody, QuorumResult]:
    """Parse and verify a signed checkpoint note of ``genesis``'s chain.

    Raises:
        InputError: the note does not parse, names another origin, or (when given) another
            size or root than expected. Signature failures are in the returned result.
    """
    signed = SignedNote.from_text(note)
    body = parse_checkpoint_text(signed.text)
    want = origin(genesis.chain_id, genesis.hash)
    if body.origin != want:
        raise InputError(f"checkpoint note: origin {body.origin!r} is not {want!r}")
    if size is not None and body.size != size:
        raise InputError(f"checkpoint note: size {body.size}, header says {size}")
    if root is not None and body.root != root:
        raise InputError("checkpoint note: root differs from the header's log root")
    return body, verify_note_signatures(signed.text, signed.signatures, genesis)


__all__ = [
    "CheckpointBody",
    "NoteSignature",
    "SignedNote",
    "checkpoint_text",
    "key_id",
    "key_name",
    "note_keys",
    "origin",
    "parse_checkpoint_text",
    "sign_checkpoint",
    "verify_checkpoint_note",
    "verify_note_signatures",
]
