"""Trace records: the signed payload of every envelope.

A record is UTF-8 JSON (the envelope's payload) with these fields::

    format      "suyuan-record/1"
    chain_id    the consortium's chain id          genesis   hex SHA-256 of genesis.json
    author      member id of the first signer      nonce     unique per author (hex, 8-64 chars)
    category    product family (CATEGORIES)        event     an EPCIS 2.0 event object
    handoff     optional {"from": member, "to": member}: a custody handoff, signed by both
    attributes  optional object of public attributes
    sealed      optional object: attribute name -> base64 sealed box (for one member's key)
    attachments optional list of {"name", "sha256" (hex), "media_type"?}

Choices, written down: unknown *record* fields are refused (a signer must know what it
signs); the EPCIS ``event`` is kept as given, extensions included, because EPCIS 2.0 is
JSON-LD and extensible. The event must have a known ``type``, an ``eventTime`` that is an
RFC 3339 date-time with a UTC offset (EPCIS 2.0's JSON schema) and, where EPCIS requires
it, an ``action``. The record's bytes are never re-serialized after signing.

Verification (``verify_envelope``) runs these steps, each raising its own error:
  (1) payload type and size;
  (2) every signature, over DSSE's PAE and before the payload is parsed: at least one,
      each with a keyid, no duplicate signer, the keyid names a member of the genesis
      (else ``MembershipError``), Ed25519 valid (else ``VerificationError``) -- so a
      tampered payload fails as a bad signature, never as malformed JSON;
  (3) parse the record (the signed bytes; ``node.payload_json``: no repeated key, at most
      ``MAX_DEPTH`` levels of nesting), then, unless ``committed``, the rules for new
      records (``check_new_record``: eventTime, CBV spellings, lookalike codes, numbers);
  (4) chain id and genesis hash;
  (5) a handoff's receiver is a member; required signers present: the author, and for a
      handoff both parties; no others (a handoff lacking one is UNAUTHENTICATED, its
      message naming the custody rule ``handoff-signatures`` and the codes concerned);
  (6) the author holds a role allowed for the event's bizStep (else ``RulePermissionError``,
      rule ``role``: a rule refusal, exit 1, PERMISSION_DENIED).
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import json
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node import ed25519, payload_json, textrules
from node.cached import cached
from node.envelope import PAYLOAD_TYPE, Envelope, envelope_leaf_bytes
from node.errors import (
    ChainMismatchError,
    InputError,
    MembershipError,
    RuleError,
    RulePermissionError,
    TooLargeError,
    VerificationError,
)
from node.genesis import Genesis
from node.keys import KeyPair
from node.merkle import leaf_hash
from node.permissions import CBV_DISPOSITIONS, CBV_STEPS, bare_step, cbv_lookalike

if TYPE_CHECKING:
    from node.epcis import EventCodes

FORMAT = "suyuan-record/1"
EVENT_TYPES = (
    "ObjectEvent",
    "AggregationEvent",
    "TransformationEvent",
    "TransactionEvent",
    "AssociationEvent",
)
_NEEDS_ACTION = {"ObjectEvent", "AggregationEvent", "TransactionEvent", "AssociationEvent"}
ACTIONS = ("ADD", "OBSERVE", "DELETE")

#: The policy's product families (important-product traceability).
CATEGORIES = (
    "meat",
    "vegetables",
    "herbs",
    "infant-formula",
    "meat-products",
    "dairy",
    "edible-oil",
    "baijiu",
    "drugs",
    "pesticides",
    "veterinary-drugs",
    "feed",
    "fertiliser",
    "seeds",
    "elevators",
    "gas-cylinders",
    "explosives",
    "fireworks",
    "precursor-chemicals",
    "toxic-chemicals",
    "other",
)
_FIELDS = {
    "format",
    "chain_id",
    "genesis",
    "author",
    "nonce",
    "category",
    "event",
    "handoff",
    "attributes",
    "sealed",
    "attachments",
}


@dataclass(frozen=True)
class TraceRecord:
    chain_id: str
    genesis: str
    author: str
    nonce: str
    category: str
    event: Mapping[str, Any]
    handoff_from: str = ""
    handoff_to: str = ""
    attributes: Mapping[str, Any] | None = None
    sealed: Mapping[str, str] | None = None
    attachments: tuple[Mapping[str, str], ...] = ()

    @property
    def event_type(self) -> str:
        return str(self.event.get("type", ""))

    @property
    def biz_step(self) -> str:
        return str(self.event.get("bizStep", ""))

    @property
    def event_time(self) -> str:
        return str(self.event.get("eventTime", ""))

    @cached
    def time_ms(self) -> int | None:
        """``event_time`` in Unix ms (``event_time_ms``), None if it is no RFC 3339
        date-time; parsed once per record (the custody rules read it at admission, in the
        pending view and in every block check)."""
        return event_time_ms(self.event_time)

    @cached
    def roles(self) -> EventCodes:
        """The event's canonical codes by role (``node.epcis.event_roles``), computed once
        per record: admission and every block check read them. Raises ``RuleError`` on a
        malformed code (not cached then)."""
        from node.epcis import event_roles

        return event_roles(self.event)

    @property
    def is_handoff(self) -> bool:
        return bool(self.handoff_to)

    @property
    def error_declaration(self) -> dict[str, Any] | None:
        """The event's EPCIS 2.0 ``errorDeclaration`` object, or None (it declares no
        error; a value that is not an object is refused in new records)."""
        decl = self.event.get("errorDeclaration")
        return decl if isinstance(decl, dict) else None

    def required_signers(self) -> tuple[str, ...]:
        if self.is_handoff:
            return (self.author, self.handoff_to)
        return (self.author,)

    def codes(self) -> list[str]:
        """Every trace code the event names, each once, in first-seen order."""
        return list(dict.fromkeys(event_codes(self.event)))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FORMAT,
            "chain_id": self.chain_id,
            "genesis": self.genesis,
            "author": self.author,
            "nonce": self.nonce,
            "category": self.category,
            "event": dict(self.event),
        }
        if self.is_handoff:
            d["handoff"] = {"from": self.handoff_from, "to": self.handoff_to}
        if self.attributes:
            d["attributes"] = dict(self.attributes)
        if self.sealed:
            d["sealed"] = dict(self.sealed)
        if self.attachments:
            d["attachments"] = [dict(a) for a in self.attachments]
        return d

    def to_payload(self) -> bytes:
        """Canonical bytes to sign (sorted keys, compact). Only ever produced once."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")

    @classmethod
    def from_payload(cls, payload: bytes, *, strict: bool = True) -> TraceRecord:
        """Parse signed bytes (``node.payload_json``: a repeated key, nesting deeper than
        ``MAX_DEPTH`` or, if ``strict``, a number that is not finite JSON is refused with
        ``InputError``)."""
        return cls.from_dict(payload_json.decode(payload, strict=strict))

    @classmethod
    def from_dict(cls, doc: Any) -> TraceRecord:
        if not isinstance(doc, dict):
            raise InputError("record: expected a JSON object")
        unknown = set(doc) - _FIELDS
        if unknown:
            raise InputError(f"record: unknown field(s) {', '.join(sorted(unknown))}")
        if doc.get("format") != FORMAT:
            raise InputError(f"record: 'format' must be {FORMAT!r}")
        for f in ("chain_id", "genesis", "author", "nonce", "category"):
            if not isinstance(doc.get(f), str) or not doc[f]:
                raise InputError(f"record: {f!r} is missing or not a string")
        nonce = doc["nonce"]
        if not 8 <= len(nonce) <= 64:
            raise InputError("record: 'nonce' must be 8-64 characters")
        if doc["category"] not in CATEGORIES:
            raise InputError(
                f"record: unknown category {doc['category']!r} (one of: {', '.join(CATEGORIES)})"
            )
        validate_event(doc.get("event"))
        event: dict[str, Any] = doc["event"]
        hf, ht = "", ""
        if "handoff" in doc:
            h = doc["handoff"]
            if not isinstance(h, dict) or set(h) != {"from", "to"}:
                raise InputError('record: \'handoff\' must be {"from": member, "to": member}')
            hf, ht = h["from"], h["to"]
            if not isinstance(hf, str) or not isinstance(ht, str) or not hf or not ht:
                raise InputError("record: handoff members must be non-empty strings")
            if hf != doc["author"]:
                raise InputError("record: handoff 'from' must be the author")
            if hf == ht:
                raise InputError("record: a handoff needs two different members")
        attrs = doc.get("attributes")
        if attrs is not None and not isinstance(attrs, dict):
            raise InputError("record: 'attributes' must be an object")
        sealed = doc.get("sealed")
        if sealed is not None and (
            not isinstance(sealed, dict) or not all(isinstance(v, str) for v in sealed.values())
        ):
            raise InputError("record: 'sealed' must map names to base64 strings")
        att = doc.get("attachments", [])
        if not isinstance(att, list) or not all(
            isinstance(a, dict)
            and isinstance(a.get("sha256"), str)
            and len(a["sha256"]) == 64
            and isinstance(a.get("name"), str)
            for a in att
        ):
            raise InputError("record: 'attachments' must be a list of {name, sha256 (hex)}")
        return cls(
            doc["chain_id"],
            doc["genesis"],
            doc["author"],
            nonce,
            doc["category"],
            event,
            hf,
            ht,
            attrs,
            sealed,
            tuple(att),
        )


_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)


def is_date_time(text: str) -> bool:
    """True iff ``text`` is an RFC 3339 ``date-time`` (EPCIS 2.0's ``time``: JSON Schema's
    ``date-time`` format): a real calendar date and time, a UTC offset, at most 9 digits of
    fraction. Looser than RFC 3339 in one way: a second of 60 is taken at any minute (RFC
    3339 allows a leap second only where one was inserted). Stricter in one: the year is
    0001-9999 (Python's calendar), not 0000."""
    m = _DATE_TIME.fullmatch(text)
    if m is None:
        return False
    head = text[:10] + "T" + text[11:17] + ("59" if m.group(1) == "60" else m.group(1))
    try:
        dt.datetime.fromisoformat(head)  # the calendar: no 30 February, no hour 24
    except ValueError:
        return False
    return True


def header_time(time_ms: int, timespec: str = "seconds") -> str:
    """A header's time (Unix ms) as UTC RFC 3339, or the number if it is not a date."""
    try:
        when = dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{time_ms} ms"
    return when.isoformat(timespec=timespec).replace("+00:00", "Z")


def event_time_ms(text: str) -> int | None:
    """Milliseconds since the epoch of an RFC 3339 ``date-time`` (``is_date_time``; a leap
    second read as :59, fractions past milliseconds dropped), None if it is not one."""
    m = _DATE_TIME.fullmatch(text)
    if m is None:
        return None
    if m.group(1) != "60" and text[10] == "T" and len(text) in _PLAIN_LENGTHS[text[-1] == "Z"]:
        # (the common spellings, which ``fromisoformat`` reads as the general path below
        # does: no leap second, a capital T and Z, a fraction of 0, 3 or 6 digits)
        try:
            return int(dt.datetime.fromisoformat(text).timestamp() * 1000)
        except ValueError:
            return None
    return _event_time_ms(text, m)


#: lengths of a date-time with a fraction of 0, 3 or 6 digits: with an offset, with a Z
_PLAIN_LENGTHS = {False: frozenset({25, 29, 32}), True: frozenset({20, 24, 27})}


def _event_time_ms(text: str, m: re.Match[str]) -> int | None:
    sec = "59" if m.group(1) == "60" else m.group(1)
    rest = text[19:].upper()
    frac = ""
    if rest.startswith("."):
        digits = len(rest) - len(rest[1:].lstrip("0123456789"))
        frac, rest = rest[:digits][:7], rest[digits:]
    iso = text[:10] + "T" + text[11:17] + sec + frac + ("+00:00" if rest == "Z" else rest)
    try:
        return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return None


#: How far an event's time may be ahead of the block that commits it: clocks and time zones
#: err by hours, not by more than a day.
MAX_AHEAD_MS = 24 * 3600 * 1000


@functools.lru_cache(maxsize=4)
def _utc_day(day: int) -> str:
    """``YYYY-MM-DD`` of the ``day``-th day since the epoch (UTC)."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def ahead_problem(record: TraceRecord, time_ms: int, clock: str = "the node's time") -> str:
    """Why ``record``'s eventTime, or its error declaration's declarationTime, is more
    than ``MAX_AHEAD_MS`` after ``time_ms`` (``clock``: the node's, at admission, or the
    block's header time, in block validity), or "" (rule ``event-time``: an event is
    recorded once it has happened, an error declared once it is known)."""
    why = _ahead("eventTime", record.event_time, time_ms, clock)
    decl = record.error_declaration
    if not why and decl is not None and isinstance(decl.get("declarationTime"), str):
        why = _ahead("errorDeclaration.declarationTime", decl["declarationTime"], time_ms, clock)
    return why


def _ahead(field: str, text: str, time_ms: int, clock: str) -> str:
    if text[:10] <= _utc_day(time_ms // 86_400_000) and (
        text[-1:] in ("Z", "z") or text[-6:-5] == "+"
    ):
        return ""  # (today or earlier, at UTC or east of it: not ahead of today's end)
    t = event_time_ms(text)
    if t is None or t <= time_ms + MAX_AHEAD_MS:
        return ""
    when = dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC).isoformat(timespec="seconds")
    return (
        f"{field} {text[:40]!r} is {(t - time_ms) / 3_600_000:.0f} h after {clock} "
        f"({when.replace('+00:00', 'Z')}): an event is recorded once it has happened (at "
        "most a day ahead, for clocks that err)"
    )


_TZ_OFFSET = re.compile(r"[+-](0\d|1[0-3]):[0-5]\d|[+-]14:00", re.ASCII)  # EPCIS 2.0's


def offset_ok(offset: str) -> bool:
    """True iff ``offset`` is EPCIS 2.0's ``eventTimeZoneOffset``: ``+hh:mm`` or ``-hh:mm``,
    -14:00 to +14:00."""
    return bool(_TZ_OFFSET.fullmatch(offset))


def lookalike_problem(code: str) -> str:
    """Why ``code`` could pass for another code, or "" (see ``check_new_record``)."""
    if not code.isascii():  # (ASCII's visible characters are NFKC-stable)
        ch = textrules.hidden_char(code)
        if ch:
            return (
                f"contains {ch!r}, a character that shows nothing (e.g. a zero-width "
                "space) or is not in Unicode 3.2 (node.textrules)"
            )
        simple = textrules.plain(code)
        if simple != code:
            return (
                "has characters with a plainer form (full-width or compatibility "
                f"characters): write {simple[:60]!r}"
            )
    if code[:4].lower() == "urn:":
        end = code.find(":", 4)
        nid = code[4:end] if end > 0 else code[4:]
        if code[:4] != "urn:" or nid != nid.lower():
            fixed = "urn:" + nid.lower() + (code[end:] if end > 0 else "")
            return (
                "is a URN whose 'urn:' or namespace is not in lower case: "
                f"write {_shown(fixed, 80)}"
            )
    return ""


def _shown(code: str, most: int = 120) -> str:
    """``code`` quoted for a message, marked where it is cut."""
    return repr(code) if len(code) <= most else repr(code[:most]) + "..."


def _made_codes(record: TraceRecord) -> tuple[str, ...]:
    """The codes ``record`` would make: an ObjectEvent ADD's, a transformation's outputs,
    an aggregation ADD's parent (``node.custody``: commission, ``_transform``,
    ``_aggregate``); () if its codes do not parse (the custody rules name that)."""
    try:
        roles = record.roles
    except RuleError:
        return ()
    action = record.event.get("action")
    if record.event_type == "ObjectEvent" and action == "ADD":
        return roles.all
    if record.event_type == "TransformationEvent":
        return roles.outputs
    if record.event_type in ("AggregationEvent", "AssociationEvent") and action == "ADD":
        return (roles.parent,) if roles.parent else ()
    return ()


def check_new_record(record: TraceRecord, own_steps: Collection[str] = ()) -> None:
    """Rules for new records (signed by ``make_record``, admitted by ``verify_envelope``),
    not applied when a certified block is replayed (``parse_trusted``) or a committed record
    is audited, so a log written before a rule was added still replays. Raises
    ``InputError`` naming the field:

      * ``eventTime`` is an RFC 3339 date-time with a UTC offset (``is_date_time``), and
        ``eventTimeZoneOffset``, if given, is EPCIS 2.0's ``+hh:mm`` / ``-hh:mm``;
      * a trace code is written one way only (``lookalike_problem``): no character that
        shows nothing (a zero-width space) or that Unicode 3.2 lacks, nothing NFKC would
        change (full-width digits, ligatures), all judged by ``node.textrules`` against
        Unicode 3.2 so that every validator's Python answers the same; a URN's ``urn:``
        and namespace in lower case (RFC 8141 makes them case-insensitive, so ``URN:X:1``
        would be ``urn:x:1`` under another key);
      * a GS1 identifier is well formed (``node.epcis.gs1_problem`` on the canonical
        code, ``raw_link_problem`` on a Digital Link as written: one object, one key);
      * no EPC list (epcList, childEPCs, inputEPCList, outputEPCList) names a code twice,
        in one form or two (EPCIS 2.0's schema: ``uniqueItems``);
      * ``bizStep``, ``disposition`` and ``action``, if given, are strings, and a bizStep or
        disposition that spells a CBV word another way (``RECALLING``, `` recalling``,
        ``http://ref.gs1.org/cbv/BizStep-recalling``) is refused: the node's roles and
        custody rules read the CBV spellings only, so a lookalike would read as a recall
        while being none (``node.permissions.cbv_lookalike``); a bare word (no ``:``)
        that is no CBV 2.0 bizStep or disposition is refused (EPCIS 2.0's schema: a CBV
        word or a URI; QA-Q: ``comissioning`` committed, and commissioned the codes),
        unless it is a bizStep of ``own_steps``, the genesis's permissions table;
      * each ``sealed`` value is a well-formed sealed value (``node.sealed.seal_problem``;
        nothing is decrypted) under a non-empty name that is not also a public attribute;
      * an attribute's name, public or sealed, has no control or format character
        (``node.textrules.control_char``): a newline in a name forged a line of
        ``record get``, an escape sequence cleared a terminal;
      * an ``errorDeclaration`` is EPCIS 2.0's object (``_check_error_declaration``), its
        reason a CBV error reason or a URI;
      * ``ilmd`` only on an ObjectEvent ADD or a TransformationEvent (EPCIS 2.0).
    """
    _check_attribute_names(record)
    if record.sealed:
        _check_sealed(record)
    for a in record.attachments:
        _check_attachment(a)
    ev = record.event
    try:
        codes = record.roles.all  # canonical (computed once; the custody rules read them)
    except RuleError:
        codes = ()  # a malformed code: the custody rules refuse it, naming it
    from node.epcis import (
        TRANSFORMATION_PREFIX,
        gs1_problem,
        lot_conflict,
        made_code_problem,
        normalize_code,
        raw_codes,
        raw_link_problem,
        repeated_code,
    )

    for code in codes:
        problem = lookalike_problem(code) or gs1_problem(code)
        if problem:
            raise InputError(f"event: code {_shown(code)} {problem}")
    for code in _made_codes(record):
        problem = made_code_problem(code)
        if problem:
            raise InputError(f"event: code {_shown(code)} {problem}")
        if code.startswith(TRANSFORMATION_PREFIX) and not _is_recall(ev):
            raise InputError(
                f"event: code {_shown(code)} names the trace node of a transformationID; "
                "only a recall names it (give TransformationEvents the transformationID)"
            )
    for code in raw_codes(ev):
        if "/" in code:  # (a Digital Link as written: what its canonical form drops)
            problem = raw_link_problem(code)
            if problem:
                raise InputError(f"event: code {_shown(code)} {problem}")

    for where in ("readPoint", "bizLocation"):  # (QA-Q: an SGLN of 8 digits was taken)
        place = ev.get(where)
        gid = place.get("id") if isinstance(place, dict) else None
        if isinstance(gid, str) and gid.startswith(("urn:epc:", "https://id.gs1.org/")):
            problem = gs1_problem(normalize_code(gid))
            if problem:
                raise InputError(f"event: {where}.id {_shown(gid)} {problem}")
    if record.event_type == "TransformationEvent" and "transformationID" in ev:
        _check_transformation_id(ev["transformationID"])
    conflict = lot_conflict(ev)
    if conflict:
        raise InputError(f"event: {conflict}")
    repeat = repeated_code(ev)
    if repeat is not None:
        field, code = repeat
        raise InputError(
            f"event: {field} names {_shown(code)} twice (as written or in another form of the "
            "same code); EPCIS lists each object once"
        )
    when = record.event_time
    if not is_date_time(when):
        raise InputError(
            f"event: 'eventTime' {when[:40]!r} is not an RFC 3339 date-time with a UTC offset "
            "(EPCIS 2.0: e.g. 2026-03-01T08:00:00+08:00 or 2026-03-01T00:00:00.000Z)"
        )
    tz = ev.get("eventTimeZoneOffset")
    if tz is not None and not (isinstance(tz, str) and _TZ_OFFSET.fullmatch(tz)):
        raise InputError(
            f"event: 'eventTimeZoneOffset' {str(tz)[:40]!r} is not +hh:mm or -hh:mm "
            "(-14:00 to +14:00)"
        )
    for name in ("bizStep", "disposition", "action"):
        value = ev.get(name)
        if value is not None and not isinstance(value, str):
            raise InputError(f"event: {name!r} must be a string")
    for name, kind in (("bizStep", "bizstep"), ("disposition", "disp")):
        value = ev.get(name)
        if value:
            canonical = cbv_lookalike(value, kind)
            if canonical:
                raise InputError(
                    f"event: {name} {value[:60]!r} is not how CBV spells {canonical!r}: "
                    f"write {canonical!r} (or its URN or https://ref.gs1.org/cbv/ URI)"
                )
    for name, words in (("bizStep", CBV_STEPS), ("disposition", CBV_DISPOSITIONS)):
        value = ev.get(name)
        if value and ":" not in value and value not in words:  # (QA-Q: 'comissioning')
            if name == "bizStep" and value in own_steps:
                continue  # (a step the consortium's genesis gives roles: review)
            near = difflib.get_close_matches(value.lower(), sorted(words), n=1)
            raise InputError(
                f"event: {name} {value[:60]!r} is not a CBV 2.0 {name}"
                + (f" (did you mean {near[0]!r}?)" if near else "")
                + ": a bare word must be CBV's (EPCIS 2.0); an extension of your own is a "
                f"URI, such as 'https://example.com/{name.lower()}/{value[:30]}'"
            )
    for name in ("bizStep", "disposition", "action"):
        value = ev.get(name)
        if value and _not_a_word(value):  # (a URI or a CBV word: one token, no newline)
            raise InputError(
                f"event: {name} {value[:60]!r} has a space, control or format character "
                "(a URI or a CBV word has none)"
            )
    _check_event_id(ev)
    if "errorDeclaration" in ev:
        _check_error_declaration(ev["errorDeclaration"])
    if "ilmd" in ev and not (
        ev.get("type") == "TransformationEvent"
        or (ev.get("type") == "ObjectEvent" and ev.get("action") == "ADD")
    ):  # (QA: an OBSERVE's lot was accepted and read by no one)
        raise InputError(
            "event: 'ilmd' (instance/lot master data: the lot, the expiry) is given where "
            "things are made only: an ObjectEvent ADD or a TransformationEvent (EPCIS 2.0)"
        )


#: CBV 2.0's error reasons (bare words; their URNs and web URIs contain a ':')
CBV_ERROR_REASONS = frozenset({"did_not_occur", "incorrect_data"})


def _check_error_declaration(decl: Any) -> None:
    """EPCIS 2.0's ErrorDeclaration: an object with a ``declarationTime`` (as eventTime),
    a ``reason`` (a string) if given, and ``correctiveEventIDs`` (a list of eventIDs, each
    a string) if given (QA: ``{}``, a time without offset and a reason 5 were committed)."""
    if not isinstance(decl, dict):
        raise InputError("event: 'errorDeclaration' must be an object (EPCIS 2.0)")
    when = decl.get("declarationTime")
    if not isinstance(when, str) or not is_date_time(when):
        raise InputError(
            "event: errorDeclaration.declarationTime must be an RFC 3339 date-time with a UTC "
            f"offset (EPCIS 2.0 requires it), got {str(when)[:40]!r}"
        )
    if "reason" in decl and not (isinstance(decl["reason"], str) and decl["reason"].strip()):
        raise InputError("event: errorDeclaration.reason must be a non-empty string (a URI)")
    reason = decl.get("reason")
    if isinstance(reason, str) and ":" not in reason and reason not in CBV_ERROR_REASONS:
        # (QA: "did_not_ocur" was committed, for good: a declaration is made once)
        raise InputError(
            f"event: errorDeclaration.reason {reason[:60]!r} is no CBV error reason: "
            f"{' or '.join(sorted(CBV_ERROR_REASONS))}, or a URI of your own (with a ':')"
        )
    fixes = decl.get("correctiveEventIDs")
    if fixes is not None and not (
        isinstance(fixes, list) and all(isinstance(f, str) and f for f in fixes)
    ):
        raise InputError("event: errorDeclaration.correctiveEventIDs must be a list of eventIDs")
    for f in fixes or ():  # (QA: "not a uri" was accepted; an eventID is a URI)
        if ":" not in f or _not_a_word(f):
            raise InputError(
                f"event: errorDeclaration.correctiveEventIDs: {f[:60]!r} is not an eventID "
                "(a URI, such as urn:uuid:...)"
            )


def _is_recall(ev: Mapping[str, Any]) -> bool:
    from node.permissions import bare_disposition

    return bare_disposition(str(ev.get("disposition", ""))) == "recalled"


def _check_transformation_id(tid: Any) -> None:
    """A transformationID becomes a node of the trace graph (``node.custody._transform``),
    which a recall may name: it must pass the checks any code passes."""
    from node.epcis import gs1_problem, normalize_code, raw_link_problem

    if not isinstance(tid, str) or not tid.strip():
        raise InputError("event: 'transformationID' must be a non-empty string (a URI)")
    canonical = normalize_code(tid)
    problem = lookalike_problem(canonical) or gs1_problem(canonical)
    if not problem and "/" in tid:
        problem = raw_link_problem(tid)
    if problem:
        raise InputError(f"event: transformationID {_shown(tid)} {problem}")


_HEX64 = re.compile(r"[0-9a-f]{64}")


def _check_attachment(a: Mapping[str, str]) -> None:
    """An attachment's name is shown to people: no control or invisible format character
    (a newline would forge an output line, an escape sequence recolour a terminal)."""
    from node.textrules import hidden_char

    name = a.get("name", "")
    if not name or hidden_char(name):  # (Unicode 3.2: one answer on every validator)
        raise InputError(
            f"record: attachment name {_shown(name)} is empty or has a control or invisible "
            "character"
        )
    if not _HEX64.fullmatch(a.get("sha256", "")):
        raise InputError("record: an attachment's sha256 must be 64 lower-case hex digits")


def _not_a_word(value: str) -> bool:
    """True iff ``value`` holds whitespace or a control or format character."""
    if value.isascii():  # (the common case, on every record: two C-level scans)
        return " " in value or not value.isprintable()
    return any(c.isspace() for c in value) or bool(textrules.control_char(value))


def _check_event_id(ev: Mapping[str, Any]) -> None:
    """An EPCIS ``eventID``, if given, is a URI: a non-empty string, one token, written one
    way only (``lookalike_problem``), so that rule event-id compares like with like."""
    if "eventID" not in ev:
        return
    eid = ev["eventID"]
    if not isinstance(eid, str) or not eid:
        raise InputError("event: 'eventID' must be a non-empty string (a URI)")
    problem = _not_a_word(eid) and "has a space, control or format character"
    problem = problem or lookalike_problem(eid)
    if problem:
        raise InputError(f"event: eventID {_shown(eid)} {problem}")


def _check_attribute_names(record: TraceRecord) -> None:
    for kind, names in (("attribute", record.attributes), ("sealed attribute", record.sealed)):
        if not names:
            continue
        for name in names:
            if name.isascii() and name.isprintable():
                continue  # (the common case, on every record)
            ch = textrules.control_char(name)
            if ch:
                raise InputError(
                    f"record: {kind} name {_shown(name)} has a control or format character "
                    f"({ch!r}): a name is shown to people on one line"
                )


def _check_sealed(record: TraceRecord) -> None:
    from node.sealed import seal_problem

    for name, text in (record.sealed or {}).items():
        if not name:
            raise InputError("record: a sealed attribute needs a name")
        if record.attributes and name in record.attributes:
            raise InputError(f"record: attribute {_shown(name)} is both public and sealed")
        problem = seal_problem(text)
        if problem:
            raise InputError(f"record: sealed attribute {_shown(name)} is {problem}")


def validate_event(event: Any) -> None:
    """Minimal EPCIS 2.0 shape checks: a known type, an eventTime, an action if required."""
    if not isinstance(event, dict):
        raise InputError("record: 'event' must be an EPCIS event object")
    etype = event.get("type")
    if etype not in EVENT_TYPES:
        what = f"unknown type {etype!r}" if etype is not None else "no 'type'"  # (not None)
        raise InputError(f"event: {what} (one of: {', '.join(EVENT_TYPES)})")
    if "eventTime" in event and not isinstance(event["eventTime"], str):
        raise InputError(f"event: {etype}'s 'eventTime' must be a string (RFC 3339)")
    if not event.get("eventTime"):
        raise InputError(f"event: {etype} has no 'eventTime'")
    if etype in _NEEDS_ACTION and event.get("action") not in ACTIONS:
        raise InputError(f"event: {etype} needs 'action' ADD, OBSERVE or DELETE")
    for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        v = event.get(key)
        if v is not None and (not isinstance(v, list) or not all(isinstance(c, str) for c in v)):
            raise InputError(f"event: {key!r} must be a list of strings")


def _quantity_codes(items: Any) -> Iterator[str]:
    if isinstance(items, list):
        for q in items:
            if isinstance(q, dict) and isinstance(q.get("epcClass"), str):
                yield q["epcClass"]


def event_codes(event: Mapping[str, Any]) -> Iterator[str]:
    """Every identifier an EPCIS event names as an object: EPCs, classes, parent ids."""
    if isinstance(event.get("parentID"), str):
        yield event["parentID"]
    for key in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        v = event.get(key)
        if isinstance(v, list):
            yield from (c for c in v if isinstance(c, str))
    for key in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
        yield from _quantity_codes(event.get(key))


def new_nonce() -> str:
    return os.urandom(16).hex()


def make_record(
    genesis: Genesis,
    author: str,
    event: Mapping[str, Any],
    *,
    category: str = "other",
    handoff_to: str = "",
    attributes: Mapping[str, Any] | None = None,
    sealed: Mapping[str, str] | None = None,
    attachments: Sequence[Mapping[str, str]] = (),
    nonce: str | None = None,
) -> TraceRecord:
    """A validated record ready to sign: its payload is parsed back under the node's own
    rules (``from_payload``), so what a member signs is what every node accepts."""
    draft = TraceRecord(
        genesis.chain_id,
        genesis.hash.hex(),
        author,
        nonce or new_nonce(),
        category,
        dict(event),
        author if handoff_to else "",
        handoff_to,
        attributes,
        sealed or None,
        tuple(attachments),
    )
    try:
        payload = draft.to_payload()
    except RecursionError as e:
        raise InputError(
            f"record: nests deeper than {payload_json.MAX_DEPTH} levels of arrays and objects"
        ) from e
    except (TypeError, ValueError) as e:
        raise InputError(f"record: cannot be written as JSON ({e})") from e
    record = TraceRecord.from_payload(payload)
    check_new_record(record, genesis.permission_steps)
    return record


def sign_record(record: TraceRecord, key: KeyPair) -> Envelope:
    """The author's envelope: payload bytes produced once, signed by ``key``."""
    if key.name != record.author:
        raise InputError(f"key {key.name!r} cannot sign a record authored by {record.author!r}")
    env = Envelope(record.to_payload(), PAYLOAD_TYPE)
    return env.with_signature(key.name, key.sign(env.signed_bytes()))


def cosign(env: Envelope, key: KeyPair) -> Envelope:
    """Add ``key``'s signature (the handoff receiver's countersignature)."""
    return env.with_signature(key.name, key.sign(env.signed_bytes()))


@dataclass(frozen=True)
class VerifiedRecord:
    record_id: bytes
    record: TraceRecord
    envelope: Envelope

    @property
    def leaf(self) -> bytes:
        """The envelope's Merkle leaf bytes (``node.envelope.envelope_leaf_bytes``). Not
        kept: after admission only their hash is needed, and a record waits in the mempool
        and the proposal caches for seconds (about 600 bytes a record less)."""
        return envelope_leaf_bytes(self.envelope)

    @cached
    def leaf_hash(self) -> bytes:
        """RFC 9162 leaf hash of ``leaf``: the envelope's identity in a compact block."""
        return leaf_hash(self.leaf)


def _other_chain_hint(payload: bytes, genesis: Genesis) -> str:
    """For a refusal's message only: when the (unverified) payload names another chain, say
    so, since a member's key differs between consortia and the signature is then 'invalid'."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""
    if not isinstance(doc, dict):
        return ""
    cid, gh = doc.get("chain_id"), doc.get("genesis")
    if not isinstance(cid, str) or not isinstance(gh, str) or gh == genesis.hash_hex:
        return ""
    return (
        f" (the payload, unverified, names chain {cid[:40]!r}, genesis {gh[:16]}..., not "
        f"{genesis.chain_id!r}, {genesis.hash_hex[:16]}...: an envelope for another chain?)"
    )


def verify_signature(public_key: bytes, message: bytes, sig: bytes) -> bool:
    """Ed25519 check (``node.ed25519.verify``: libsodium's detached verify, GIL kept)."""
    return ed25519.verify(public_key, message, sig)


def verify_envelope(
    env: Envelope,
    genesis: Genesis,
    *,
    max_bytes: int | None = None,
    require_all_signers: bool = True,
    committed: bool = False,
) -> VerifiedRecord:
    """Verify ``env`` against ``genesis``; steps (1)-(6) of the module docstring.

    ``committed=True`` (the auditor, a proof's verifier) checks a record that a log already
    holds: every signature and rule of its time, without the rules for new records
    (``check_new_record``, strict numbers), so a log written before those still verifies.

    ``require_all_signers=False`` accepts a handoff offer that still lacks the receiver.
    """
    # (1) payload type and size
    if env.payload_type != PAYLOAD_TYPE:
        raise InputError(f"envelope: unsupported payloadType {env.payload_type!r}")
    limit = max_bytes if max_bytes is not None else genesis.consensus.max_record_bytes
    if len(env.payload) > limit:
        raise TooLargeError(f"record: payload is {len(env.payload)} bytes, limit {limit}")
    # (2) signatures over the PAE, before anything reads the payload
    if not env.signatures:
        raise VerificationError("envelope: no signatures")
    signed = env.signed_bytes()
    seen: set[str] = set()
    for s in env.signatures:
        if not s.keyid:
            raise MembershipError("envelope: a signature has no keyid naming its member")
        if s.keyid in seen:
            raise VerificationError(f"envelope: {s.keyid!r} signed twice")
        seen.add(s.keyid)
        member = genesis.member(s.keyid)
        if member is None:
            raise MembershipError(
                f"signature by {s.keyid!r}: not a member of {genesis.chain_id}"
                + _other_chain_hint(env.payload, genesis)
            )
        if not verify_signature(member.public_key, signed, s.sig):
            raise VerificationError(
                f"signature by {s.keyid!r}: invalid" + _other_chain_hint(env.payload, genesis)
            )
    # (3) parse
    record = TraceRecord.from_payload(env.payload, strict=not committed)
    if not committed:
        check_new_record(record, genesis.permission_steps)
    # (4) chain
    if record.chain_id != genesis.chain_id or record.genesis != genesis.hash_hex:
        raise ChainMismatchError(
            f"record: signed for chain {record.chain_id!r} ({record.genesis[:16]}...), "
            f"not {genesis.chain_id!r} ({genesis.hash.hex()[:16]}...)"
        )
    # (5) who must (and may) sign
    if record.is_handoff and genesis.member(record.handoff_to) is None:
        raise MembershipError(f"handoff receiver {record.handoff_to!r} is not a member")
    required = record.required_signers()
    for r in required:
        if r not in seen and (require_all_signers or r == record.author):
            who = "receiver" if r == record.handoff_to else "author"
            if not record.is_handoff:
                raise VerificationError(f"envelope: missing signature of the {who} {r!r}")
            codes = record.codes()
            named = ", ".join(codes[:5]) + (f" and {len(codes) - 5} more" if len(codes) > 5 else "")
            raise VerificationError(
                f"rule handoff-signatures: missing signature of the {who} {r!r} "
                f"(code{'s' if len(codes) > 1 else ''} {named})"
            )
    extra = seen - set(required)
    if extra:
        raise VerificationError(f"envelope: unexpected signer(s) {', '.join(sorted(extra))}")
    # (6) role for this bizStep
    author = genesis.member(record.author)
    assert author is not None  # the author signed, and every signer is a member
    roles = genesis.roles_for_step(record.biz_step)
    # a regulator may declare any member's event in error (``node.event_ids``), whatever
    # its bizStep (QA: a regulator's declaration of a sale was refused by this table)
    declares = record.error_declaration is not None
    if not author.has_role(*roles) and not (declares and author.has_role("regulator")):
        step = bare_step(record.biz_step) or "(none)"
        raise RulePermissionError(
            "role",
            f"author {record.author!r} ({', '.join(author.roles)}) may not record "
            f"bizStep {step}: allowed roles {', '.join(roles)}",
        )
    return VerifiedRecord(env.record_id, record, env)
