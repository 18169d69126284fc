"""Drafts to envelopes: what `record sign`, `record submit` and `handoff` read and sign.

A draft is an EPCIS 2.0 event, or ``{"event", "category"?, "handoff_to"?, "attributes"?,
"seal"?}``; ``--attach`` files are named by their SHA-256. Sealed attributes are opened here
too (``open_all``), for `record get --key`.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cli.common import read_json_file
from node.custody import check_commission_prefixes
from node.envelope import Envelope
from node.epcis import event_as_meant
from node.errors import InputError
from node.genesis import Genesis
from node.inputfile import read_input
from node.keys import KeyPair, load_key_file
from node.records import TraceRecord, make_record, sign_record, verify_envelope
from node.sealed import binding, open_sealed, private_key, seal_attributes
from node.textrules import hidden_char


def read_draft(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """An EPCIS event, or a draft {"event", "category"?, "handoff_to"?, "attributes"?}."""
    doc = read_json_file(path, "event file")
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object (an EPCIS event)")
    if "event" in doc:
        extra = set(doc) - {"event", "category", "handoff_to", "attributes", "seal"}
        if extra:
            raise InputError(f"{path}: unknown draft field(s) {', '.join(sorted(extra))}")
        if not isinstance(doc["event"], dict):
            raise InputError(f"{path}: 'event' must be an EPCIS event object")
        return doc["event"], doc
    if doc.get("type") == "EPCISDocument":
        raise InputError(f"{path}: an EPCIS document; use `suyuan epcis import` for documents")
    return doc, {}


_SEAL_FORM = '{"to": [MEMBER, ...], "attributes": {NAME: VALUE, ...}}'


def _seal_spec(path: Path, draft: dict[str, Any]) -> tuple[list[str], dict[str, Any]] | None:
    """A draft's ``seal``: (recipients besides the author, attributes to seal), or None."""
    spec = draft.get("seal")
    if spec is None:
        return None
    if (
        not isinstance(spec, dict)
        or set(spec) - {"to", "attributes"}
        or not isinstance(spec.get("attributes"), dict)
        or not spec["attributes"]
        or not isinstance(spec.get("to", []), list)
        or not all(isinstance(m, str) for m in spec.get("to", []))
    ):
        raise InputError(f"{path}: 'seal' must be {_SEAL_FORM}")
    return list(spec.get("to", [])), dict(spec["attributes"])


def load_envelope(path: Path) -> Envelope:
    data = read_input(path, "envelope")
    try:
        return Envelope.from_json(data)
    except InputError as e:
        raise InputError(f"{path}: {e}") from e


def attachment_entry(path: Path) -> dict[str, str]:
    """``{"name", "sha256", "media_type"?}`` of a regular file, its SHA-256 read in chunks
    (any size; a device or pipe, which may never end, is refused)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: a FIFO would block
            raise InputError(f"{path}: an attachment must be a regular file")
        with open(path, "rb", buffering=0) as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such attachment file") from e
    except OSError as e:
        raise InputError(f"{path}: cannot read attachment ({e.strerror})") from e
    if hidden_char(path.name):
        raise InputError(
            f"{str(path)!r}: an attachment's name may not hold a control or invisible character; "
            "rename the file"
        )
    entry = {"name": path.name, "sha256": digest}
    media_type, _ = mimetypes.guess_type(path.name)
    if media_type:
        entry["media_type"] = media_type
    return entry


#: the namespace of the name-based UUIDs ``event_id_for`` gives events (a fixed random UUID)
EVENT_ID_NAMESPACE = uuid.UUID("5b0f6d1e-8a43-4c59-9d2e-4f7a1c3e6b20")


def event_id_for(author: str, event: dict[str, Any], draft: dict[str, Any] | None = None) -> str:
    """An eventID for an event written without one: ``urn:uuid:`` of a name-based UUID
    (RFC 9562 version 5) of its author, its content and what a draft adds to it (receiver,
    attributes, sealed ones), all as sorted-key JSON: the same event signed twice is one
    event (rule event-id refuses the second); another event, another author's, or the same
    event with other results in its attributes is another. One event written two ways is
    one event: the content is read as meant (``node.epcis.event_as_meant``): eventTime as
    the instant it names, trace codes in canonical form."""
    more = {k: v for k, v in (draft or {}).items() if k != "event"}
    content = json.dumps(
        [author, event_as_meant(event), event_as_meant(more)], sort_keys=True, separators=(",", ":")
    )
    return f"urn:uuid:{uuid.uuid5(EVENT_ID_NAMESPACE, content)}"


def build_envelope(
    event_file: Path,
    key_file: Path,
    genesis: Genesis,
    category: str | None,
    attach: Sequence[Path] = (),
) -> Envelope:
    """Sign a draft as ``key_file``'s member, checked as ``record verify`` would check it;
    each ``attach`` file is named in the record by its SHA-256 (the file is not sent). An
    event without an ``eventID`` gets one (``event_id_for``): EPCIS declares an event in
    error by its eventID (QA: a mistaken sale written without one closed its code for
    good)."""
    event, draft = read_draft(event_file)
    key = load_key_file(key_file)
    if "eventID" not in event:
        event = {**event, "eventID": event_id_for(key.name, event, draft)}
    member = genesis.member(key.name)
    if member is None:
        raise InputError(f"key {key.name!r} is not a member of chain {genesis.chain_id!r}")
    if member.public_key != key.public_key:  # (QA: "signature by 'alice': invalid", exit 3)
        raise InputError(
            f"{key_file}: its public key is not {key.name!r}'s in the genesis of "
            f"{genesis.chain_id!r} (another member's key, renamed, or a key of another chain?)"
        )
    spec = _seal_spec(event_file, draft)
    record = make_record(
        genesis,
        key.name,
        event,
        category=category or str(draft.get("category", "other")),
        handoff_to=str(draft.get("handoff_to", "")),
        attributes=draft.get("attributes"),
        sealed=seal_attributes(genesis, key.name, *spec) if spec else None,
        attachments=list({tuple(e.items()): e for e in map(attachment_entry, attach)}.values()),
    )
    env = sign_record(record, key)
    # Refuse what `record verify` would reject (role for the bizStep, a non-member receiver);
    # only the receiver's countersignature may still be missing.
    verify_envelope(env, genesis, require_all_signers=False)
    check_commission_prefixes(record, genesis)  # (the rest of the custody rules: at the node)
    return env


def open_all(record: TraceRecord, key: KeyPair) -> tuple[dict[str, Any], list[str]]:
    """The record's sealed attributes ``key`` opens, and the names of the others."""
    sealed = record.sealed or {}
    mine = private_key(key)
    opened: dict[str, Any] = {}
    others: list[str] = []
    for name, text in sealed.items():
        try:
            ok, value = open_sealed(text, mine, binding(record.genesis, record.author, name))
        except InputError as e:
            raise InputError(f"sealed attribute {name!r} is {e}") from e
        if ok:
            opened[name] = value
        else:
            others.append(name)
    return opened, others
