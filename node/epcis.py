"""EPCIS 2.0 in and out: identifiers, document import, document export. Pure; no I/O.

Identifiers (``normalize_code``)
    Every trace code is compared in one canonical form, so that the EPC URN and the GS1
    Digital Link URI of the same object are the same code:

    ==========================================  ==============================================
    given                                       canonical
    ==========================================  ==============================================
    ``urn:epc:id:sgtin:CP.IR.S``                ``https://id.gs1.org/01/{GTIN-14}/21/{S}``
    ``urn:epc:class:lgtin:CP.IR.L``             ``https://id.gs1.org/01/{GTIN-14}/10/{L}``
    ``urn:epc:idpat:sgtin:CP.IR.*``             ``https://id.gs1.org/01/{GTIN-14}``
    ``urn:epc:id:sscc:CP.SR``                   ``https://id.gs1.org/00/{SSCC-18}``
    ``urn:epc:id:sgln:CP.LR.E``                 ``https://id.gs1.org/414/{GLN}[/254/{E}]``
    ``urn:epc:id:grai:CP.AT.S``                 ``https://id.gs1.org/8003/0{GRAI}{S}``
    ``urn:epc:id:giai:CP.R``                    ``https://id.gs1.org/8004/{CP}{R}``
    Digital Link ``http(s)://any.host/01/...``  ``https://id.gs1.org/`` + primary key and the
                                                identifying qualifier (21 serial, else 10 lot);
                                                GTINs padded to 14 digits; query and fragment
                                                (data attributes) dropped
    anything else (other URNs, local codes)     unchanged
    ==========================================  ==============================================

    The mapping is part of the replicated state (custody keys use it), so it must never
    change meaning for a given input; extend it only for inputs it leaves unchanged today.
    A malformed URN or Digital Link is kept verbatim rather than guessed at.

Import and export are documented on ``import_document`` and ``export_document``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from node.cached import cached
from node.errors import InputError, RuleError
from node.records import CATEGORIES, EVENT_TYPES, TraceRecord, event_time_ms, validate_event
from node.textrules import lone_surrogate

DL_BASE = "https://id.gs1.org"
MAX_CODE_BYTES = 200  # keys of two codes must fit LMDB's 511-byte key limit

_DIGITS = re.compile(r"^[0-9]+$")
# Primary keys accepted in a Digital Link path, with the qualifiers that identify an instance.
_DL_KEYS = {"01", "00", "414", "8003", "8004", "253", "255", "8006", "8010", "8017", "8018"}


def check_digit(digits: str) -> str:
    """GS1 mod-10 check digit of ``digits`` (weights 3,1,3,... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


@functools.lru_cache(maxsize=65536)  # one product's codes share it: pure, so memoized
def gtin14(company_prefix: str, item_ref: str) -> str:
    """GTIN-14 from an EPC company prefix and item reference (indicator digit first)."""
    body = item_ref[:1] + company_prefix + item_ref[1:]
    return body + check_digit(body)


def digital_link(gtin: str, *, serial: str = "", lot: str = "", base: str = DL_BASE) -> str:
    """The GS1 Digital Link URI for a GTIN plus serial (an item) or lot (a batch).

    This is what a package's QR code carries. ``gtin`` may be 8, 12, 13 or 14 digits.
    """
    if not _DIGITS.match(gtin) or len(gtin) not in (8, 12, 13, 14):
        raise ValueError(f"GTIN {gtin!r} must be 8, 12, 13 or 14 digits")
    if check_digit(gtin[:-1]) != gtin[-1]:
        raise ValueError(f"GTIN {gtin!r} has a wrong check digit")
    uri = f"{base.rstrip('/')}/01/{gtin.zfill(14)}"
    if lot:
        uri += f"/10/{lot}"
    if serial:
        uri += f"/21/{serial}"
    return uri


def _urn_to_dl(code: str) -> str:
    parts = code.split(":", 4)  # (a serial may hold ':')
    if len(parts) != 5:
        return code
    _, _, kind, scheme, value = parts
    # the last field (a serial, lot, extension or reference) may hold '.'
    fields = value.split(".", 1 if scheme in ("sscc", "giai") else 2)
    if kind == "id" and scheme == "sgtin" and len(fields) == 3:
        cp, ir, serial = fields
        if _gs1_digits(cp + ir, 13):
            return f"{DL_BASE}/01/{gtin14(cp, ir)}/21/{serial}"
    elif kind == "class" and scheme == "lgtin" and len(fields) == 3:
        cp, ir, lot = fields
        if _gs1_digits(cp + ir, 13):
            return f"{DL_BASE}/01/{gtin14(cp, ir)}/10/{lot}"
    elif kind == "idpat" and scheme == "sgtin" and len(fields) == 3 and fields[2] == "*":
        cp, ir, _ = fields
        if _gs1_digits(cp + ir, 13):
            return f"{DL_BASE}/01/{gtin14(cp, ir)}"
    elif kind == "id" and scheme == "sscc" and len(fields) == 2:
        cp, sr = fields
        if _gs1_digits(cp + sr, 17):
            body = sr[:1] + cp + sr[1:]
            return f"{DL_BASE}/00/{body}{check_digit(body)}"
    elif kind == "id" and scheme == "sgln" and len(fields) == 3:
        cp, lr, ext = fields
        if _gs1_digits(cp + lr, 12):
            gln = cp + lr + check_digit(cp + lr)
            return f"{DL_BASE}/414/{gln}" + (f"/254/{ext}" if ext != "0" else "")
    elif kind == "id" and scheme == "grai" and len(fields) == 3:
        cp, at, serial = fields
        if _gs1_digits(cp + at, 12):
            body = cp + at
            return f"{DL_BASE}/8003/0{body}{check_digit(body)}{serial}"
    elif kind == "id" and scheme == "giai" and len(fields) == 2:
        cp, ref = fields
        if _DIGITS.match(cp) and ref:
            return f"{DL_BASE}/8004/{cp}{ref}"
    return code


def _gs1_digits(s: str, length: int) -> bool:
    return len(s) == length and bool(_DIGITS.match(s))


def _path_segments(code: str) -> list[str] | None:
    """A URL's non-empty path segments; None if it does not parse."""
    try:
        return [s for s in urlsplit(code).path.split("/") if s]
    except ValueError:
        return None


def _first_key(segs: list[str] | None) -> int | None:
    """Where a Digital Link's primary key stands: the first AI of ``_DL_KEYS`` followed by
    a value (a path prefix may precede it); None if there is none."""
    if segs is None:
        return None
    return next((i for i in range(len(segs) - 1) if segs[i] in _DL_KEYS), None)


def _dl_canonical(code: str) -> str:
    segs = _path_segments(code)
    i = _first_key(segs)
    if segs is None or i is None:
        return code
    ai, value = segs[i], segs[i + 1]
    quals = dict(zip(segs[i + 2 :: 2], segs[i + 3 :: 2], strict=False))
    if ai == "01":
        if not _DIGITS.match(value) or len(value) not in (8, 12, 13, 14):
            return code
        value = value.zfill(14)
        if "21" in quals:
            return f"{DL_BASE}/01/{value}/21/{quals['21']}"
        if "10" in quals:
            return f"{DL_BASE}/01/{value}/10/{quals['10']}"
        return f"{DL_BASE}/01/{value}"
    if ai == "414" and "254" in quals:
        return f"{DL_BASE}/414/{value}/254/{quals['254']}"
    return f"{DL_BASE}/{ai}/{value}"


#: Digital Link primary keys that start with a GS1 company prefix, with the digits before
#: it (GTIN-14's indicator, SSCC's extension, GRAI's leading 0, ITIP's indicator)
_PREFIXED_KEYS = {
    **dict.fromkeys(("414", "417", "8004", "253", "255", "8010", "8017", "8018", "401", "402"), 0),
    **dict.fromkeys(("01", "00", "8003", "8006"), 1),
}
#: EPC URN schemes whose first field is a GS1 company prefix (TDS 2.x)
_PREFIXED_SCHEMES = frozenset(
    [
        "sgtin",
        "lgtin",
        "sscc",
        "sgln",
        "grai",
        "giai",
        "gsrn",
        "gsrnp",
        "gdti",
        "cpi",
        "sgcn",
        "ginc",
        "gsin",
        "itip",
        "upui",
        "pgln",
    ]
)


def company_digits(code: str) -> str:
    """A canonical code's GS1 key from where its company prefix starts (the prefix's
    length is not written in a key: ``Genesis.prefix_owners`` matches it), for a Digital
    Link or an EPC URN of a GS1 scheme (the keys ``normalize_code`` leaves as written too:
    GDTI, GSRN, CPI, ITIP, PGLN...; QA); "" for any other code."""
    if code.startswith("urn:epc:"):
        parts = code.split(":", 4)
        if len(parts) != 5 or parts[3] not in _PREFIXED_SCHEMES:
            return ""
        fields = parts[4].split(".")
        return fields[0] + (fields[1] if len(fields) > 1 else "")
    if not code.startswith(("https://", "http://")):
        return ""
    segs = _path_segments(code) or []
    for i in range(len(segs) - 1):
        skip = _PREFIXED_KEYS.get(segs[i])
        if skip is not None:
            return segs[i + 1][skip:]
    return ""


def normalize_code(code: str) -> str:
    """The canonical form of a trace code (see the module docstring). Pure and total."""
    c = code.strip()
    low = c.lower()
    if low.startswith("urn:epc:"):
        return _urn_to_dl("urn:epc:" + c[8:])
    if low.startswith(("https://", "http://")):
        return _dl_canonical(c)
    return c


# EPC URN kinds and schemes ``normalize_code`` converts, with the form it needs
_EPC_FORMS = {
    ("id", "sgtin"): "CompanyPrefix.ItemReference.Serial, the two numbers 13 digits together",
    ("class", "lgtin"): "CompanyPrefix.ItemReference.Lot, the two numbers 13 digits together",
    ("id", "sscc"): "CompanyPrefix.SerialReference, 17 digits together",
    ("id", "sgln"): "CompanyPrefix.LocationReference.Extension, the two numbers 12 digits",
    ("id", "grai"): "CompanyPrefix.AssetType.Serial, the two numbers 12 digits together",
    ("id", "giai"): "CompanyPrefix.AssetReference, a numeric company prefix",
}
#: GS1's character set 82, which serial numbers and lots are written in (GS1 General
#: Specifications 7.11): no space, no other character
_CSET82_CHAR = r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]"
_CSET82 = re.compile(_CSET82_CHAR + "{1,20}")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Digital Link primary keys with a fixed length and a check digit
_CHECKED_KEYS = {"01": "GTIN", "00": "SSCC", "414": "GLN"}
_CHECKED_LENGTH = {"00": 18, "414": 13}
_DL_PREFIX = DL_BASE + "/"
_DL_PREFIX_LEN = len(_DL_PREFIX)
_DL_GTIN = DL_BASE + "/01/"


def gs1_problem(code: str) -> str:
    """Why canonical ``code`` is not a well-formed GS1 identifier it claims to be, or "".

    An EPC URN of a scheme the canonical form converts that is still a URN did not
    convert: it is malformed. An EPC URN's kind and scheme are lower case. In a URN or URL
    every ``%`` starts an escape in upper-case hex, and no letter, digit or ``-._~`` is
    escaped. In a Digital Link: a GTIN of 8, 12, 13 or 14 digits; the check digit of a
    GTIN, SSCC or GLN; a GRAI's and GIAI's form; a serial (21), lot (10) or GLN extension
    (254) of 1-20 characters of GS1's set 82, the extension not 0; exactly the characters
    an EPC URN escapes (``"%&/<>?``) escaped, so a URN and its Digital Link are one
    spelling. Each of these would otherwise name one object under two keys (``A1!`` and
    ``A1%21``, ``%2f`` and ``%2F``). Other codes pass."""
    if code.startswith(("urn:", "http://", "https://")) and "%" in code:
        problem = _escape_problem(code, strict=code.startswith(_DL_PREFIX))
        if problem:
            return problem
    if code.startswith(("http://", "https://")) and not code.startswith(_DL_PREFIX):
        return _gtin_length_problem(code)
    if code.startswith("urn:epc:"):
        parts = code.split(":")
        if len(parts) < 5:
            return ""
        kind, scheme = parts[2], parts[3]
        if kind != kind.lower() or scheme != scheme.lower():
            fixed = ":".join([*parts[:2], kind.lower(), scheme.lower(), *parts[4:]])
            return f"is an EPC URN with capitals in its kind or scheme: write {fixed[:80]!r}"
        form = _EPC_FORMS.get((kind, scheme))
        if form is not None:
            return f"is not a valid {scheme.upper()} EPC URN (urn:epc:{kind}:{scheme}:{form})"
        return ""
    if not code.startswith(_DL_PREFIX):
        return ""
    segs = code[_DL_PREFIX_LEN:].split("/")
    n = len(segs)
    if n % 2 or "" in segs:
        # (an EPC URN's unescaped '/' in a serial, or an empty extension, lands here)
        return "has a path that is not key/value pairs: escape '/' in a value as %2F"
    raw = _RAW_FORBIDDEN.search(code)
    if raw is not None:
        return f"has {raw.group()!r} unescaped: write it as %{ord(raw.group()):02X}"
    ai = segs[0]
    problem = _asset_problem(ai, segs[1]) if ai in _ASSET_KEYS else _key_problem(ai, segs[1])
    if problem:
        return problem
    for i in range(2, n - 1, 2):
        q, v = segs[i], segs[i + 1]
        if q in ("21", "10", "254") and not _CSET82.fullmatch(
            _PCT.sub(_pct_char, v) if "%" in v else v
        ):
            what = {"21": "serial number", "10": "lot", "254": "GLN extension"}[q]
            return (
                f"has a {what} {v[:30]!r} that is not 1-20 characters of GS1's character set "
                "(letters, digits and !\"%&'()*+,-./:;<=>?_; no spaces)"
            )
        if q == "254" and v == "0":
            return "has the GLN extension 0, which means none: leave out /254/0"
    return ""


def made_code_problem(code: str) -> str:
    """Why canonical ``code`` may not be made (commissioned, a transformation's output, a
    new parent), beyond ``gs1_problem``, or "": a GS1 element string whose first AI is a
    Digital Link key (``(01)06901234123456(21)A001``: as a local code it would stand
    outside the GS1-prefix binding; QA-Q), or an EPC URN of no Tag Data Standard scheme.
    Only codes being made are judged so: one committed before this rule can still be
    recalled, sold or destroyed (review)."""
    if code.startswith("("):
        dl = element_string_dl(code) if _ELEMENT_AI.match(code) else ""
        if dl:
            return (
                "is a GS1 element string (the text under a barcode), which this ledger does "
                f"not read as a GS1 key: write its Digital Link, {dl!r}"
            )
        return ""
    if not code.startswith("urn:epc:"):
        return ""
    parts = code.split(":")
    if len(parts) < 5:
        return ""
    kind, scheme = parts[2], parts[3]
    if kind == "id" and scheme == "lgtin":  # (QA-Q: a lot named as an instance)
        return (
            "is no EPC URN: a lot is urn:epc:class:lgtin:CompanyPrefix.ItemReference.Lot, "
            "named in a quantityList as an epcClass"
        )
    known = _TDS_SCHEMES.get(kind)
    if known is not None and scheme not in known:
        return (
            f"names no EPC scheme of GS1's Tag Data Standard (urn:epc:{kind}: is followed "
            f"by one of {', '.join(sorted(known))})"
        )
    return ""


#: EPC URN schemes of GS1's Tag Data Standard 2.x, by kind (``gs1_problem``: others name
#: nothing a tag or a partner could read; QA-Q: urn:epc:id:foo:1.2.3 was taken)
_TDS_SCHEMES = {
    "id": frozenset({
        "sgtin", "sscc", "sgln", "grai", "giai", "gsrn", "gsrnp", "gdti", "cpi", "sgcn",
        "ginc", "gsin", "itip", "upui", "pgln", "gid", "usdod", "adi", "bic", "imovn",
    }),
    "class": frozenset({"lgtin"}),
    "idpat": frozenset({
        "sgtin", "sscc", "sgln", "grai", "giai", "gsrn", "gsrnp", "gdti", "cpi", "sgcn",
        "ginc", "gsin", "itip", "upui", "pgln", "gid", "usdod", "adi", "bic", "imovn",
    }),
}  # fmt: skip
#: an application identifier in brackets, as a GS1 element string writes one: "(01)"
_ELEMENT_AI = re.compile(r"\((\d{2,4})\)")


def element_string_dl(code: str) -> str:
    """The canonical Digital Link of a GS1 element string in brackets
    (``(01)06901234123456(21)A001``: what is printed under a barcode), or "" if ``code``
    is not one whose first AI is a Digital Link primary key. Only a hint: ``normalize_code``
    keeps such text as it is (its mapping never changes meaning), and ``gs1_problem``
    refuses it in new records (QA-Q: another company's GTIN and serial, written so,
    passed as a local code, and ``trace history`` of that text found the squatter's)."""
    pairs: list[str] = []
    pos = 0
    for m in _ELEMENT_AI.finditer(code):
        if m.start() != pos and not pairs:
            return ""
        if pairs:
            pairs.append(_dl_escape(code[pos : m.start()]))
        pairs.append(m.group(1))
        pos = m.end()
    if not pairs or pos == len(code):
        return ""
    pairs.append(_dl_escape(code[pos:]))
    if pairs[0] not in _DL_KEYS or "" in pairs:
        return ""
    dl = _dl_canonical(f"{DL_BASE}/" + "/".join(pairs))
    return dl if dl.startswith(_DL_PREFIX) else ""


#: what a Digital Link path cannot hold as itself, of GS1's set 82: written %XX
_MUST_ESCAPE = frozenset('"%&/<>?')  # (as an EPC URN escapes them: one spelling for both)
_RAW_FORBIDDEN = re.compile('["&<>?]')  # ... so none stands as itself in a canonical path
_ASSET_KEYS = ("8003", "8004")  # GRAI, GIAI (``_asset_problem``)
_LOOSE_PCT = re.compile(r"%(?![0-9A-F]{2})")  # a '%' that starts no upper-case escape


def _escape_problem(code: str, *, strict: bool) -> str:
    """The percent-encodings of a URN or URL (``gs1_problem``); ``strict`` for a canonical
    Digital Link, where only ``_MUST_ESCAPE`` may be escaped."""
    loose = _LOOSE_PCT.search(code)
    if loose is not None:
        frag = code[loose.start() : loose.start() + 3]
        if re.fullmatch(r"%[0-9A-Fa-f]{2}", frag):
            return f"writes the escape {frag!r} in lower case: write {frag.upper()!r}"
        return "has a '%' that starts no escape: write '%25' for a percent sign"
    for m in _PCT.finditer(code):
        ch = chr(int(m.group(1), 16))
        if ch in _UNRESERVED or (strict and ch not in _MUST_ESCAPE):
            return f"percent-encodes {ch!r} as {m.group(0)!r}: write {ch!r} itself"
    return ""


def _gtin_length_problem(code: str) -> str:
    """A URL that reads as a Digital Link of a GTIN (``/01/`` and digits) but was not
    canonicalized: its GTIN has the wrong number of digits (``009506000134352``)."""
    segs = _path_segments(code)
    i = _first_key(segs)
    if segs is None or i is None or segs[i] != "01":
        return ""
    value = segs[i + 1]
    if _DIGITS.match(value):
        return f"has a GTIN of {len(value)} digits; a GTIN has 8, 12, 13 or 14"
    if value.isdigit():  # other scripts' digits
        return f"has a GTIN that is not digits 0-9: {value[:30]!r}"
    return ""


#: the qualifiers the canonical form keeps, per primary key; any other is dropped from the
#: code, so two objects differing only in it would share one key
_KEPT_QUALIFIERS = {"01": frozenset({"10", "21"}), "414": frozenset({"254"})}
#: Digital Link 1.0's convenience names for keys (later versions deprecate them)
_ALPHAS = frozenset({"gtin", "itip", "sscc", "gln", "grai", "giai"})


def raw_link_problem(code: str) -> str:
    """Why ``code`` as written, a Digital Link, would not name one object by one key, or "":
    a path prefix holding a key number (the canonical form reads the first one: the wrong
    key), a qualifier the canonical form drops (two instances, one key) or repeats (the
    last one wins), a convenience name (``/gtin/``: kept verbatim, a second key)."""
    if not code[:8].lower().startswith(("https://", "http://")):
        return ""
    segs = _path_segments(code.strip())
    if segs is None:
        return ""
    for i in range(len(segs) - 1):
        if segs[i].lower() in _ALPHAS and segs[i + 1][:1].isdigit():
            return (
                f"uses the convenience name {segs[i]!r}: write the AI numbers "
                "(01 for gtin, 21 for ser, 10 for lot, ...)"
            )
    if not normalize_code(code).startswith(_DL_PREFIX):
        return ""  # (not read as a Digital Link: an opaque URL code)
    first = _first_key(segs)
    if first is None:
        return ""
    rest = segs[first + 2 :]
    later_keys = [s for s in rest[::2] if s in _DL_KEYS]
    if later_keys:
        return (
            f"names two GS1 keys ({segs[first]} and {later_keys[0]}): a path prefix may not "
            "hold a key number"
        )
    kept = _KEPT_QUALIFIERS.get(segs[first], frozenset())
    seen: set[str] = set()
    for q in rest[::2]:
        if q in seen:
            return f"gives the qualifier {q} twice"
        seen.add(q)
        if not (q.isdigit() and 2 <= len(q) <= 4):
            return "has a path that does not read as a key with qualifier/value pairs"
        if q not in kept:
            return (
                f"has the qualifier {q}, which the trace code does not keep: two objects "
                "differing only in it would be one code (Suyuan keeps 21 and 10 of a GTIN, "
                "254 of a GLN)"
            )
    return ""


#: ILMD keys that name the lot a commissioned item belongs to (CBV master data)
#: The trace node of a TransformationEvent's ``transformationID`` (``node.custody``): its id
#: under this prefix, never a product's code; only a recall names such a node in a record.
TRANSFORMATION_PREFIX = "transformation:"

_LOT_KEYS = (
    "cbvmda:lotNumber",
    "urn:epcglobal:cbv:mda#lotNumber",
    "urn:epcglobal:cbv:mda:lotNumber",  # (QA: this spelling was read as no lot)
    "urn:epc:mda:lotNumber",
    "lotNumber",
)
_MDA_NAMESPACES = frozenset({"urn:epcglobal:cbv:mda#", "urn:epcglobal:cbv:mda:"})


def _lot_entries(event: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(key, value) of each ILMD entry naming the lot: ``_LOT_KEYS``, and ``P:lotNumber``
    for a prefix ``P`` the event's own ``@context`` maps to CBV master data (QA: a
    document's ``mda:lotNumber`` was ignored, so its item was in no lot)."""
    ilmd = event.get("ilmd")
    if not isinstance(ilmd, Mapping):
        return []
    keys: tuple[str, ...] = _LOT_KEYS
    ctx = event.get("@context")
    if ctx is not None:
        for entry in ctx if isinstance(ctx, list) else [ctx]:
            if isinstance(entry, Mapping):
                keys += tuple(
                    f"{p}:lotNumber"
                    for p, iri in entry.items()
                    if _context_iri(iri) in _MDA_NAMESPACES and isinstance(p, str) and p != "cbvmda"
                )
    return [(k, ilmd[k]) for k in keys if k in ilmd]


def _context_iri(value: Any) -> str:
    """The IRI a JSON-LD term definition maps to: the value itself, or an expanded
    definition's ``@id`` (QA: ``{"mda": {"@id": ...}}``, and GS1's ``{"@type": ...}`` terms,
    raised TypeError); "" for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("@id"), str):
        return str(value["@id"])
    return ""


def _declared_lot(event: Mapping[str, Any]) -> str:
    """The ILMD lot number (plain text, as CBV master data is), or ""."""
    return next((v for _, v in _lot_entries(event) if isinstance(v, str)), "")


def _dl_escape(text: str) -> str:
    """Plain lot text as a canonical Digital Link segment: ``_MUST_ESCAPE`` written %XX."""
    if not any(ch in _MUST_ESCAPE for ch in text):
        return text
    return "".join(f"%{ord(ch):02X}" if ch in _MUST_ESCAPE else ch for ch in text)


def lot_links(event: Mapping[str, Any], field: str = "epcList") -> list[tuple[str, str]]:
    """(lot, item) pairs, canonical, for the serialised items of ``event``'s ``field`` (the
    items an ObjectEvent ADD commissions, or a TransformationEvent's ``outputEPCList``)
    whose lot is given: by the item's own Digital Link (``/01/{GTIN}/10/{lot}/21/{serial}``,
    a qualifier the canonical item code drops) or by the event's ILMD ``lotNumber``. The
    lot is the LGTIN of the item's GTIN and that lot (the ILMD's plain text escaped as a
    Digital Link escapes it: QA, ``2026/11`` made ``/10/2026/11``, a code no spelling
    names); a lot outside GS1's character set names none. In first-seen order, each item
    once."""
    declared = _declared_lot(event) if "ilmd" in event else ""
    epcs = event.get(field)
    if not isinstance(epcs, list) or (
        not declared and not any(isinstance(c, str) and "/10/" in c for c in epcs)
    ):
        return []  # (the common case: no lot given)
    out: dict[str, str] = {}
    for raw in _raw_list(event, field):
        item = normalize_code(raw)
        if not item.startswith(_DL_GTIN) or item in out:
            continue
        gtin, _, rest = item[len(_DL_GTIN) :].partition("/")
        if not rest.startswith("21/"):
            continue
        lot = _dl_lot(raw)
        plain = _PCT.sub(_pct_char, lot) if lot else declared
        if plain and _CSET82.fullmatch(plain):
            out[item] = f"{_DL_GTIN}{gtin}/10/{_dl_escape(plain)}"
    return [(lot, item) for item, lot in out.items()]


def is_lot_code(code: str) -> bool:
    """Whether canonical ``code`` names a GTIN's lot (``/01/{GTIN}/10/{lot}``, no serial)."""
    if not code.startswith(_DL_GTIN):
        return False
    _, _, rest = code[len(_DL_GTIN) :].partition("/")
    return rest.startswith("10/") and len(rest) > 3 and "/" not in rest[3:]


def event_as_meant(value: Any) -> Any:
    """``value`` with its spellings made one (``cli.draft.event_id_for``, and a retried
    event compared with the committed one; the event signed is as written): an
    ``eventTime`` that is an RFC 3339 date-time becomes its instant in ms and
    ``eventTimeZoneOffset`` goes (the same instant written with another offset); EPC URNs
    and GS1 Digital Links become their canonical Digital Link."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "eventTimeZoneOffset":
                continue
            ms = event_time_ms(v) if k == "eventTime" and isinstance(v, str) else None
            out[k] = {"instant_ms": ms} if ms is not None else event_as_meant(v)
        return out
    if isinstance(value, list):
        return [event_as_meant(v) for v in value]
    if isinstance(value, str) and value[:8].lower().startswith(("urn:epc:", "http://", "https://")):
        return normalize_code(value)
    return value


def compared_event_id(eid: str) -> str:
    """An eventID as rule event-id compares it: a ``urn:uuid:`` in lower case (RFC 9562: a
    UUID's hex digits are case-insensitive), any other as written."""
    return eid.lower() if eid[:9].lower() == "urn:uuid:" else eid


def lot_conflict(event: Mapping[str, Any]) -> str:
    """Why ``event``'s lot is not one GS1 lot, or "" (refused for new records: an item
    would escape its lot's recall). The ILMD names one lot number, as text; for a GS1
    product (a GTIN's item or class) it is 1-20 characters of GS1's set (QA: ``批号LX1``
    and a 26-character lot put items in no lot, without a word); an item's or class's
    Digital Link lot (``/10/``, as written, compared unescaped) is that lot number."""
    entries = _lot_entries(event)
    if not entries:
        return ""
    for k, v in entries:
        if not isinstance(v, str):
            return f"the ILMD {k} is not a string (a lot number is text)"
    values = dict.fromkeys(v for _, v in entries)
    if len(values) > 1:
        return (
            "the ILMD names two lot numbers "
            + " and ".join(f"{k}={v[:40]!r}" for k, v in entries)
            + ": one event's items are in one lot"
        )
    declared = entries[0][1]
    named = [
        (field, raw) for field in ("epcList", "outputEPCList") for raw in _raw_list(event, field)
    ] + [
        (field, raw)
        for field in ("quantityList", "outputQuantityList")
        for raw in _raw_classes(event, field)
    ]
    if not _CSET82.fullmatch(declared) and any(
        normalize_code(raw).startswith(_DL_GTIN) for _, raw in named
    ):
        return (
            f"the ILMD lotNumber {declared[:40]!r} is not 1-20 characters of GS1's character "
            "set (letters, digits and !\"%&'()*+,-./:;<=>?_; no spaces): a GS1 product's "
            "items would be in no lot"
        )
    for field, raw in named:
        lot = _dl_lot(raw)  # (as written: GS1's own examples give an LGTIN URN of
        # another lot than their ILMD's; a class names its lot itself, so nothing escapes)
        plain = _PCT.sub(_pct_char, lot) if lot else ""
        if lot and plain != declared:
            return (
                f"{field} code {raw[:120]!r} is in lot {plain[:40]!r} by its Digital Link, "
                f"but the event's ILMD lotNumber is {declared[:40]!r}: one item, one lot"
            )
    return ""


def _dl_lot(code: str) -> str:
    """The lot qualifier (10) of a Digital Link naming a GTIN, or ""."""
    if not code.lower().startswith(("https://", "http://")):
        return ""
    segs = _path_segments(code)
    i = _first_key(segs)
    if segs is None or i is None or segs[i] != "01":
        return ""
    return dict(zip(segs[i + 2 :: 2], segs[i + 3 :: 2], strict=False)).get("10", "")


@functools.lru_cache(maxsize=65536)  # one product's GTIN repeats: pure, so memoized
def _key_problem(ai: str, value: str) -> str:
    """A Digital Link primary key's length and check digit (GTIN, SSCC, GLN), or ""."""
    name = _CHECKED_KEYS.get(ai)
    if name is None:
        return ""
    if not _DIGITS.match(value):
        return f"has a {name} that is not digits 0-9: {value[:30]!r}"
    if ai == "01" and len(value) != 14:  # (a canonical GTIN is padded to 14 digits)
        return f"has a GTIN of {len(value)} digits; a GTIN has 8, 12, 13 or 14"
    size = _CHECKED_LENGTH.get(ai, len(value))
    if len(value) != size:
        return f"has a {name} of {len(value)} digits; a {name} has {size}"
    if check_digit(value[:-1]) != value[-1]:
        return (
            f"has a {name} with a wrong check digit: {value[:-1]}{check_digit(value[:-1])} "
            "would be right"
        )
    return ""


_CSET82_30 = re.compile(_CSET82_CHAR + "{1,30}")  # a GIAI's length


def _asset_problem(ai: str, value: str) -> str:
    """A GRAI (8003: a 0, the 13-digit GRAI with its check digit, a serial of up to 16)
    or a GIAI (8004: up to 30 characters of set 82, starting with the company prefix)."""
    plain = _PCT.sub(_pct_char, value) if "%" in value else value
    if ai == "8003":
        grai, serial = plain[:14], plain[14:]
        if len(grai) < 14 or grai[0] != "0" or not _DIGITS.match(grai):
            return "has a GRAI that is not 0 and 13 digits (then the serial)"
        if check_digit(grai[1:13]) != grai[13]:
            return f"has a GRAI with a wrong check digit: {grai[1:13]}{check_digit(grai[1:13])}"
        if len(serial) > 16 or (serial and not _CSET82.fullmatch(serial)):
            return "has a GRAI serial that is not up to 16 characters of GS1's character set"
    elif ai == "8004" and (not _CSET82_30.fullmatch(plain) or not plain[:1].isdigit()):
        return "has a GIAI that is not up to 30 characters of GS1's set, company prefix first"
    return ""


def _pct_char(m: re.Match[str]) -> str:
    return chr(int(m.group(1), 16))


def is_class_code(code: str) -> bool:
    """Whether ``code`` names a lot or product class (an EPCIS ``epcClass``), not an
    instance: an LGTIN or an SGTIN pattern URN, or a Digital Link of a GTIN, with or
    without a lot, and no serial."""
    c = normalize_code(code)
    if c.startswith(("urn:epc:class:", "urn:epc:idpat:")):
        return True
    return c.startswith(_DL_GTIN) and "/21/" not in c[len(_DL_GTIN) :]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def code_problem(code: str) -> str:
    """Why ``code`` cannot be a trace code, or "" if it can (checked on the raw string)."""
    if not code.strip():
        return "an identifier is empty"
    if lone_surrogate(code):
        return f"identifier is not Unicode text (an unpaired surrogate): {code[:40]!a}"
    if len(code.encode("utf-8")) > MAX_CODE_BYTES:
        return f"identifier longer than {MAX_CODE_BYTES} bytes: {code[:40]}..."
    if _CONTROL.search(code):
        return f"identifier contains control characters: {code!r}"
    return ""


# --------------------------------------------------------------------------- codes by role


@dataclass(frozen=True)
class EventCodes:
    """The canonical codes an event names, by role, each list in first-seen order."""

    objects: tuple[str, ...]  # epcList + quantityList (Object/Transaction), parent excluded
    parent: str
    children: tuple[str, ...]
    inputs: tuple[str, ...]
    consumed: frozenset[str]  # inputs given as instances (inputEPCList)
    outputs: tuple[str, ...]
    classes: frozenset[str]  # codes given as epcClass

    @cached
    def all(self) -> tuple[str, ...]:
        head = (self.parent,) if self.parent else ()
        return tuple(
            dict.fromkeys((*head, *self.objects, *self.children, *self.inputs, *self.outputs))
        )


def _raw_list(event: Mapping[str, Any], key: str) -> list[str]:
    v = event.get(key)
    return [c for c in v if isinstance(c, str)] if isinstance(v, list) else []


def _raw_classes(event: Mapping[str, Any], key: str) -> list[str]:
    v = event.get(key)
    if not isinstance(v, list):
        return []
    return [q["epcClass"] for q in v if isinstance(q, dict) and isinstance(q.get("epcClass"), str)]


def _canon(raw: Iterable[str]) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for c in raw:
        problem = code_problem(c)
        if problem:
            raise RuleError("codes", problem, c[:60])
        out[normalize_code(c)] = None
    return tuple(out)


_CODE_FIELDS = (
    "parentID",
    "epcList",
    "quantityList",
    "childEPCs",
    "childQuantityList",
    "inputEPCList",
    "inputQuantityList",
    "outputEPCList",
    "outputQuantityList",
)
_NO_CODES: tuple[str, ...] = ()
_EMPTY: frozenset[str] = frozenset()


def event_roles(event: Mapping[str, Any]) -> EventCodes:
    """Split an event's identifiers by role and canonicalize them (raises on bad codes)."""
    if "epcList" in event and not any(k in event for k in _CODE_FIELDS if k != "epcList"):
        # the common shape (an ObjectEvent or TransactionEvent naming instances): one list
        objects = _canon(_raw_list(event, "epcList"))
        return EventCodes(objects, "", _NO_CODES, _NO_CODES, _EMPTY, _NO_CODES, _EMPTY)
    return _event_roles_general(event)


def _event_roles_general(event: Mapping[str, Any]) -> EventCodes:
    parent_raw = event.get("parentID")
    parent = _canon([parent_raw])[0] if isinstance(parent_raw, str) else ""
    objects = _canon(_raw_list(event, "epcList") + _raw_classes(event, "quantityList"))
    children = _canon(_raw_list(event, "childEPCs") + _raw_classes(event, "childQuantityList"))
    in_epcs = _canon(_raw_list(event, "inputEPCList"))
    inputs = _canon([*in_epcs, *_raw_classes(event, "inputQuantityList")])
    outputs = _canon(_raw_list(event, "outputEPCList") + _raw_classes(event, "outputQuantityList"))
    classes = frozenset(
        _canon(
            _raw_classes(event, "quantityList")
            + _raw_classes(event, "childQuantityList")
            + _raw_classes(event, "inputQuantityList")
            + _raw_classes(event, "outputQuantityList")
        )
    )
    return EventCodes(objects, parent, children, inputs, frozenset(in_epcs), outputs, classes)


_EPC_LISTS = ("epcList", "childEPCs", "inputEPCList", "outputEPCList")
_CLASS_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")


def raw_codes(event: Mapping[str, Any]) -> list[str]:
    """Every code ``event`` names, as written (parentID, EPC lists, epcClasses)."""
    parent = event.get("parentID")
    out = [parent] if isinstance(parent, str) else []
    for key in _EPC_LISTS:
        if key in event:
            out.extend(_raw_list(event, key))
    for key in _CLASS_LISTS:
        if key in event:
            out.extend(_raw_classes(event, key))
    return out


def repeated_code(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(list name, code) of the first code an EPC list of ``event`` names a second time,
    as written or in another form of the same canonical code; None if there is none."""
    for key in _EPC_LISTS:
        v = event.get(key)
        if not isinstance(v, list) or len(v) < 2:
            continue  # (the common case: one code)
        raw = _raw_list(event, key)
        seen: set[str] = set()
        for c in raw:
            n = normalize_code(c)
            if n in seen:
                return key, c
            seen.add(n)
    return None


def canonical_codes(event: Mapping[str, Any]) -> tuple[str, ...]:
    """Every canonical code an event names (the keys its history is indexed under)."""
    return event_roles(event).all


def check_event_codes(codes: EventCodes, etype: str) -> None:
    """Refuse an event naming no code, or one code in two roles (``RuleError``)."""
    if not codes.all:
        raise RuleError(
            "codes",
            "the event names no trace code (give epcList, quantityList, parentID, childEPCs, "
            "inputs or outputs)",
        )
    groups = [codes.objects, codes.children, codes.inputs, codes.outputs]
    if codes.parent:
        groups.append((codes.parent,))
    seen: set[str] = set()
    for g in groups:
        for c in g:
            if c in seen:
                if c == codes.parent:
                    hint = "a container (parentID) cannot also be one of its own children"
                elif etype == "TransformationEvent":
                    hint = "a transformation's outputs must be new codes, not its inputs"
                else:
                    hint = "give each code one role"
                raise RuleError(
                    "duplicate-code", f"code is named in two roles of one {etype}: {hint}", c
                )
            seen.add(c)


# --------------------------------------------------------------------------- import

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
SUYUAN_PREFIX = "suyuan"
SUYUAN_NS = "urn:suyuan:epcis:"
MAX_EVENT_BYTES = 60 * 1024
_TZ = re.compile(
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)  # leaves room for the record around it (limit 64 KiB)


@dataclass(frozen=True)
class ImportResult:
    """One event of an imported document: a record draft, or the reason it is refused.

    ``event`` is the event to sign (``None`` if refused); ``codes`` its canonical codes.
    """

    position: int
    event: dict[str, Any] | None
    category: str
    reason: str = ""
    codes: tuple[str, ...] = ()
    event_id: str = ""  # the event's EPCIS eventID, if it has one
    exported_as: str = ""  # the record id a Suyuan export named it by (suyuan:recordId)
    exported: Mapping[str, Any] | None = None  # a refused exported handoff, without suyuan:

    @property
    def ok(self) -> bool:
        return self.event is not None


def document_events(doc: Any) -> tuple[list[Any], list[Any]]:
    """(events, extra @context entries) of an EPCIS document, query document, event or list.

    Raises ``InputError`` for anything else: the whole input is refused, not an event.
    """
    if isinstance(doc, list):
        return list(doc), []
    if not isinstance(doc, dict):
        raise InputError("epcis: expected an EPCIS document, an event or a list of events")
    dtype = doc.get("type")
    ctx = doc.get("@context", [])
    extra = [c for c in (ctx if isinstance(ctx, list) else [ctx]) if isinstance(c, dict)]
    body = doc.get("epcisBody")
    if dtype == "EPCISDocument":
        events = body.get("eventList") if isinstance(body, dict) else None
    elif dtype == "EPCISQueryDocument":
        qr = body.get("queryResults") if isinstance(body, dict) else None
        rb = qr.get("resultsBody") if isinstance(qr, dict) else None
        events = rb.get("eventList") if isinstance(rb, dict) else None
    elif dtype in EVENT_TYPES:
        return [doc], []
    else:
        what = f"unknown document type {dtype!r}" if dtype is not None else "no document 'type'"
        raise InputError(
            f"epcis: {what} (EPCISDocument, EPCISQueryDocument or an event type such as "
            "ObjectEvent)"
        )
    if not isinstance(events, list):
        where = (
            "epcisBody.eventList"
            if dtype == "EPCISDocument"
            else ("epcisBody.queryResults.resultsBody.eventList")
        )
        raise InputError(f"epcis: {dtype} has no {where} list")
    return events, extra


def import_event(event: Any, position: int = 0, *, category: str = "other") -> ImportResult:
    """Check one EPCIS event for use as a record's event (stateless checks only).

    Refused, with a reason naming what to change: not an object; no known type, no
    eventTime or no action (``node.records.validate_event``); an identifier that is empty,
    too long or has control characters; no trace code at all (e.g. a sensor report that
    does not name the product it measured); one code in two roles; too large for a record;
    a handoff exported from a Suyuan ledger (``suyuan:handoff``: one signature cannot carry
    it). Other ``suyuan:`` fields an export added are dropped from the event (they describe
    the exported record); ``exported_as`` keeps its ``suyuan:recordId``. Custody rules
    (commissioned once, custodian...) are checked at submission, not here.
    """
    if not isinstance(event, dict):
        return ImportResult(position, None, category, "the event is not a JSON object")
    # provenance an export added describes the exported record, not the one signed here
    exported_as = event.get(f"{SUYUAN_PREFIX}:recordId")
    handoff = f"{SUYUAN_PREFIX}:handoff" in event
    event = {k: v for k, v in event.items() if not k.startswith(f"{SUYUAN_PREFIX}:")}
    if handoff:
        try:
            codes = event_roles(event).all
        except (InputError, RuleError):
            codes = ()
        return ImportResult(
            position,
            None,
            category,
            "a handoff exported from a Suyuan ledger: here custody moves only with both "
            "members' signatures (suyuan handoff offer, then accept)",
            codes,
            exported_as=exported_as if isinstance(exported_as, str) else "",
            exported=event,
        )
    event_id = event.get("eventID")
    try:
        validate_event(event)
        roles = event_roles(event)
        check_event_codes(roles, str(event["type"]))
    except (InputError, RuleError) as e:
        return ImportResult(position, None, category, _reason(e))
    text = json.dumps(event, ensure_ascii=False)
    if lone_surrogate(text):  # (QA: a traceback, where a record would be refused)
        return ImportResult(
            position,
            None,
            category,
            "the event holds text that is not Unicode (an unpaired surrogate escape such as "
            "\\ud800, which UTF-8 cannot write)",
        )
    size = len(text.encode())
    if size > MAX_EVENT_BYTES:
        return ImportResult(
            position,
            None,
            category,
            f"the event is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit for one "
            "record: split its epcList or sensor reports over several events",
        )
    return ImportResult(
        position,
        event,
        category,
        "",
        roles.all,
        event_id if isinstance(event_id, str) else "",
        exported_as if isinstance(exported_as, str) else "",
    )


def _reason(e: Exception) -> str:
    if isinstance(e, RuleError) and e.rule == "codes" and not e.code:
        return (
            "the event names no trace code: add an epcList, quantityList, parentID/childEPCs "
            "or input/output lists naming the product or lot it is about"
        )
    return str(e)


def import_document(doc: Any, *, category: str = "other") -> list[ImportResult]:
    """Every event of ``doc`` as a record draft or a per-event refusal, in document order.

    ``doc`` is an EPCISDocument (``epcisBody.eventList``), an EPCISQueryDocument
    (``epcisBody.queryResults.resultsBody.eventList``), a bare event or a list of events.
    Namespace objects of the document's ``@context`` (vendor extensions such as
    ``example:myField``) are copied into each accepted event that has no ``@context`` of
    its own, so the signed event stays meaningful without its document. ``category`` (a
    ``node.records.CATEGORIES`` value) applies to every draft.
    """
    if category not in CATEGORIES:
        raise InputError(f"epcis: unknown category {category!r} (one of: {', '.join(CATEGORIES)})")
    events, extra = document_events(doc)
    out: list[ImportResult] = []
    first: dict[str, int] = {}  # eventID (a declaration's: after a NUL) -> its first position
    for i, ev in enumerate(events):
        r = import_event(ev, i, category=category)
        if r.event is not None and r.event_id:
            # (an error declaration repeats its event's eventID, once: ``node.event_ids``)
            declares = isinstance(r.event.get("errorDeclaration"), dict)
            same = ("\0" if declares else "") + compared_event_id(r.event_id)
            if same in first:
                r = replace(
                    r,
                    event=None,
                    reason=f"eventID {r.event_id!r} repeats event {first[same]}'s: EPCIS "
                    "names each event once",
                )
            else:
                first[same] = i
        if r.event is not None and extra and "@context" not in r.event:
            r = replace(r, event={"@context": list(extra), **r.event})
        out.append(r)
    return out


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Committed:
    """A committed record as exported: the record, its log index and record id."""

    record: TraceRecord
    log_index: int = -1
    record_id: bytes = b""


def export_event(item: Committed | TraceRecord) -> dict[str, Any]:
    """The record's event as signed, plus Suyuan provenance in ``suyuan:`` extension fields.

    Added: ``suyuan:author``, ``suyuan:category``, and when known ``suyuan:logIndex``,
    ``suyuan:recordId`` (hex), ``suyuan:handoff`` ({from, to}), the record's public
    ``suyuan:attributes`` and its ``suyuan:attachments`` (name, SHA-256; QA: left out
    without a word; sealed attributes stay sealed, named in ``suyuan:sealed``);
    ``eventTimeZoneOffset``
    (required by EPCIS, not by Suyuan records) when missing, taken from ``eventTime``'s
    offset ("+00:00" if it has none). Removed: ``suyuan:`` fields the member wrote into the
    event itself (they would read as the ledger's provenance, a handoff no one signed).
    """
    c = item if isinstance(item, Committed) else Committed(item)
    rec = c.record
    prefix = f"{SUYUAN_PREFIX}:"
    ev: dict[str, Any] = {k: v for k, v in rec.event.items() if not k.startswith(prefix)}
    if "eventTimeZoneOffset" not in ev:
        m = _TZ.search(str(ev.get("eventTime", "")))
        ev["eventTimeZoneOffset"] = "+00:00" if m is None or m.group(0) == "Z" else m.group(0)
    ev[f"{SUYUAN_PREFIX}:author"] = rec.author
    ev[f"{SUYUAN_PREFIX}:category"] = rec.category
    if c.log_index >= 0:
        ev[f"{SUYUAN_PREFIX}:logIndex"] = c.log_index
    if c.record_id:
        ev[f"{SUYUAN_PREFIX}:recordId"] = c.record_id.hex()
    if rec.is_handoff:
        ev[f"{SUYUAN_PREFIX}:handoff"] = {"from": rec.handoff_from, "to": rec.handoff_to}
    if rec.attributes:
        ev[f"{SUYUAN_PREFIX}:attributes"] = dict(rec.attributes)
    if rec.attachments:
        ev[f"{SUYUAN_PREFIX}:attachments"] = [dict(a) for a in rec.attachments]
    if rec.sealed:
        ev[f"{SUYUAN_PREFIX}:sealed"] = sorted(rec.sealed)
    return ev


def export_document(
    records: Iterable[Committed | TraceRecord],
    *,
    creation_date: str,
    document_id: str = "",
    state: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An EPCIS 2.0 JSON-LD EPCISDocument of ``records`` (e.g. a code's history, log order).

    ``creation_date`` (RFC 3339) is passed in: this module reads no clock. The document's
    ``@context`` is the EPCIS 2.0 context plus the ``suyuan`` namespace; events keep any
    ``@context`` they were signed with. ``state``: the code's state when exported, as
    ``suyuan:state`` (QA: a code born recalled exported as its "active" commissioning
    alone). Validates against GS1's EPCIS-JSON-Schema.json.
    """
    events = [export_event(r) for r in records]
    doc: dict[str, Any] = {
        "@context": [EPCIS_CONTEXT, {SUYUAN_PREFIX: SUYUAN_NS}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": creation_date,
        "epcisBody": {"eventList": events},
    }
    if document_id:
        doc["id"] = document_id
    if state:
        doc[f"{SUYUAN_PREFIX}:state"] = dict(state)
    return doc
