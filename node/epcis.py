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

import re
from urllib.parse import urlsplit

DL_BASE = "https://id.gs1.org"
MAX_CODE_BYTES = 200  # keys of two codes must fit LMDB's 511-byte key limit

_DIGITS = re.compile(r"^[0-9]+$")
# Primary keys accepted in a Digital Link path, with the qualifiers that identify an instance.
_DL_KEYS = {"01", "00", "414", "8003", "8004", "253", "255", "8006", "8010", "8017", "8018"}


def check_digit(digits: str) -> str:
    """GS1 mod-10 check digit of ``digits`` (weights 3,1,3,... from the right)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


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
    parts = code.split(":")
    if len(parts) != 5:
        return code
    _, _, kind, scheme, value = parts
    fields = value.split(".")
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


def _dl_canonical(code: str) -> str:
    try:
        url = urlsplit(code)
    except ValueError:
        return code
    segs = [s for s in url.path.split("/") if s]
    # The primary key is the first recognised AI followed by a value; a path prefix may precede.
    for i in range(len(segs) - 1):
        if segs[i] in _DL_KEYS:
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
    return code


def normalize_code(code: str) -> str:
    """The canonical form of a trace code (see the module docstring). Pure and total."""
    c = code.strip()
    low = c.lower()
    if low.startswith("urn:epc:"):
        return _urn_to_dl("urn:epc:" + c[8:])
    if low.startswith(("https://", "http://")):
        return _dl_canonical(c)
    return c


def code_problem(code: str) -> str:
    """Why ``code`` cannot be a trace code, or "" if it can (checked on the raw string)."""
    if not code.strip():
        return "an identifier is empty"
    if len(code.encode("utf-8")) > MAX_CODE_BYTES:
        return f"identifier longer than {MAX_CODE_BYTES} bytes: {code[:40]}..."
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in code):
        return f"identifier contains control characters: {code!r}"
    return ""
