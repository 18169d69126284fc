"""DSSE envelopes: signed bytes plus signatures over the pre-authentication encoding.

See https://github.com/secure-systems-lab/dsse (protocol.md, envelope.md).

Invariants:
  * ``payload`` is kept exactly as signed; nothing here re-serializes it.
  * record id = SHA-256(payload).
  * each signature signs ``pae(payload_type, payload)``; ``keyid`` is the member id.
  * the JSON form is DSSE's JSON envelope: ``payloadType``, ``payload`` (base64),
    ``signatures: [{keyid, sig (base64)}]``; unknown fields are refused, and base64 must
    be canonical (padded, zero padding bits), so one envelope has one JSON spelling.
  * the Merkle log's leaf bytes for an envelope are ``leaf_bytes(env)``: a fixed,
    length-prefixed encoding that does not depend on protobuf serialization.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from node import strictjson
from node.errors import InputError

PAYLOAD_TYPE = "application/vnd.suyuan.record+json;version=1"
_LEAF_TAG = b"suyuan-leaf/1\x00"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``.

    Lengths are ASCII decimal byte counts; ``payload_type`` is UTF-8 encoded.
    """
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope. Signatures are kept in the order they were added."""

    payload: bytes
    payload_type: str = PAYLOAD_TYPE
    signatures: tuple[Signature, ...] = ()

    @property
    def record_id(self) -> bytes:
        return hashlib.sha256(self.payload).digest()

    def signed_bytes(self) -> bytes:
        """The one canonical form that every signature covers."""
        return pae(self.payload_type, self.payload)

    def with_signature(self, keyid: str, sig: bytes) -> Envelope:
        """A copy with one more signature; a second signature by ``keyid`` is refused."""
        if any(s.keyid == keyid for s in self.signatures):
            raise InputError(f"envelope already carries a signature by {keyid!r}")
        return replace(self, signatures=(*self.signatures, Signature(keyid, sig)))

    def signers(self) -> tuple[str, ...]:
        return tuple(s.keyid for s in self.signatures)

    # ------------------------------------------------------------------ JSON form

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), indent=2) + "\n"

    @classmethod
    def from_json_dict(cls, doc: Any) -> Envelope:
        if not isinstance(doc, dict):
            raise InputError("envelope: expected a JSON object")
        unknown = set(doc) - {"payloadType", "payload", "signatures"}
        if unknown:
            raise InputError(f"envelope: unknown field(s) {', '.join(sorted(unknown))}")
        ptype = doc.get("payloadType")
        if not isinstance(ptype, str) or not ptype:
            raise InputError("envelope: 'payloadType' is missing")
        payload = _b64decode(doc.get("payload"), "payload")
        sigs_doc = doc.get("signatures", [])
        if not isinstance(sigs_doc, list):
            raise InputError("envelope: 'signatures' must be a list")
        sigs = []
        for i, s in enumerate(sigs_doc):
            if not isinstance(s, dict) or set(s) - {"keyid", "sig"}:
                raise InputError(f"envelope: signature {i} must be {{keyid, sig}}")
            keyid = s.get("keyid", "")
            if not isinstance(keyid, str):
                raise InputError(f"envelope: signature {i} 'keyid' must be a string")
            sigs.append(Signature(keyid, _b64decode(s.get("sig"), f"signatures[{i}].sig")))
        return cls(payload, ptype, tuple(sigs))

    @classmethod
    def from_json(cls, text: str | bytes) -> Envelope:
        """Parse an envelope file; a repeated key is refused (QA: an offer with two
        payloads showed a reader one and had ``handoff accept`` countersign the other)."""
        return cls.from_json_dict(strictjson.loads(text, "envelope"))


def _b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"envelope: {what!r} is missing or not a string")
    try:
        if "-" in value or "_" in value:  # DSSE: verifiers accept standard and URL-safe
            raw = base64.urlsafe_b64decode(_strict_urlsafe(value))
            canonical = base64.urlsafe_b64encode(raw).decode("ascii")
        else:
            raw = base64.b64decode(value, validate=True)
            canonical = base64.b64encode(raw).decode("ascii")
    except (binascii.Error, ValueError) as e:
        raise InputError(f"envelope: {what!r} is not valid base64") from e
    if canonical != value:  # non-zero padding bits: one byte string, one encoding
        raise InputError(f"envelope: {what!r} is not canonical base64 (non-zero padding bits)")
    return raw


def _strict_urlsafe(value: str) -> str:
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    if not set(value) <= allowed or "+" in value or "/" in value:
        raise ValueError("mixed base64 alphabets")
    return value


def leaf_bytes(payload_type: str, payload: bytes, signatures: Iterable[tuple[str, bytes]]) -> bytes:
    """The bytes an envelope contributes to the Merkle log (hashed as an RFC 9162 leaf).

    ``b"suyuan-leaf/1\\0" || u32 len(type) || type || u32 len(payload) || payload ||
    u16 nsig || (u16 len(keyid) || keyid || u16 len(sig) || sig)*``, big-endian, signatures in
    envelope order. Any change to the envelope changes these bytes.
    """
    sigs = list(signatures)
    try:
        t = payload_type.encode("utf-8")
        parts = [_LEAF_TAG, struct.pack(">I", len(t)), t, struct.pack(">I", len(payload)), payload]
        parts.append(struct.pack(">H", len(sigs)))
        for keyid, sig in sigs:
            k = keyid.encode("utf-8")
            parts += [struct.pack(">H", len(k)), k, struct.pack(">H", len(sig)), sig]
    except struct.error as e:  # (no envelope a node admits comes near: 64 KiB records)
        raise InputError(
            "envelope: too large to be a log entry (over 65,535 signatures, or a keyid or "
            "signature over 65,535 bytes)"
        ) from e
    except UnicodeEncodeError as e:
        raise InputError("envelope: a keyid or payloadType is not valid Unicode text") from e
    return b"".join(parts)


def envelope_leaf_bytes(env: Envelope) -> bytes:
    return leaf_bytes(env.payload_type, env.payload, ((s.keyid, s.sig) for s in env.signatures))
