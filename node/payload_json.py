"""Decoding a record's signed JSON payload: one result on every node, whatever its stack.

Rules (part of the record format, so every node and the offline auditor apply them):
  * the payload is UTF-8 JSON whose top level is an object (checked by the caller);
  * no object repeats a key (parsers that keep the first or the last value would read
    different records);
  * no array or object nests deeper than ``MAX_DEPTH`` levels (the record object itself is
    level 1). EPCIS 2.0's richest example event is 9 levels deep (10 in its record);
  * (``strict``, for new records) every number is a finite JSON number: Python's ``json``
    also reads ``NaN``, ``Infinity`` and ``1e400`` (as infinity), which are not JSON, and an
    export would write them back. A certified block's records are read with
    ``strict=False``, so a log written before this rule still replays.

Why the depth rule: CPython's ``json`` module refuses deep nesting by raising
``RecursionError`` at a depth that depends on how deep the *caller's* stack already is, so
without a fixed limit two nodes (or one node's admission and its block validation) could
disagree about one record, and the error escaped as something other than bad input.

Speed: a payload that ``orjson`` parses and that re-encodes (sorted keys, compact) to its
very bytes is canonical, and a canonical payload cannot repeat a key (the repeat would be
missing from the re-encoding), so its ``orjson`` value is the record. Every other payload
(non-canonical spacing or order, a repeated key, numbers or escapes ``orjson`` writes
differently, invalid JSON) takes the standard library's path, which names what is wrong.
Both paths give equal values for a payload both accept (``tests/node/test_payload_json.py``).
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

import orjson

from node.errors import InputError
from node.textrules import lone_surrogate

#: Deepest nesting of arrays and objects a payload may have (the record object is level 1).
MAX_DEPTH = 64

_STRING = re.compile(rb'"[^"]*"')  # once escapes are gone: linear, no backtracking
_INNER_PAIR = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class RepeatedKeyError(InputError):
    """A JSON object names ``key`` twice."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"record: duplicate key {key!r} in the payload JSON")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` object hook: a dict, refusing a key that appears twice with
    ``RepeatedKeyError`` (the common case, no repeat, is one C-level ``dict`` call; the loop
    only names the repeated key). The standard library would keep the last value."""
    out: dict[str, Any] = dict(pairs)
    if len(out) == len(pairs):
        return out
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            raise RepeatedKeyError(k)
        seen.add(k)
    return out


def _no_constant(name: str) -> Any:
    raise InputError(f"record: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputError(f"record: the number {text[:40]} is out of range for JSON")
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=unique_keys)  # one, not one per record
_STRICT = json.JSONDecoder(
    object_pairs_hook=unique_keys, parse_constant=_no_constant, parse_float=_finite
)


def depth_within(payload: bytes, limit: int = MAX_DEPTH) -> bool:
    """True if no array or object in ``payload`` nests deeper than ``limit`` levels.

    Exact for valid JSON (brackets inside strings do not count); for text that is not
    JSON the answer means nothing (such text is refused either way). Linear work, all
    of it in C: a count when there are few brackets, else the escapes are removed (``\\\\``
    pairs first, then ``\\"``, which is how JSON pairs a run of backslashes), then the
    strings, then all but the brackets, then at most ``limit`` passes that each remove the
    innermost empty pairs."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return True
    unescaped = payload.replace(b"\\\\", b"").replace(b'\\"', b"")
    shape = _STRING.sub(b"", unescaped).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not shape:
            return True
        shape = _INNER_PAIR.sub(b"", shape)
    return not shape


def decode(payload: bytes, *, strict: bool = True) -> Any:
    """The JSON value of ``payload`` under the rules above; ``InputError`` names a breach.
    (``orjson`` itself refuses what ``strict`` refuses.)"""
    if not depth_within(payload):
        raise InputError(f"record: the payload JSON nests deeper than {MAX_DEPTH} levels")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    else:
        if type(doc) is dict:
            try:
                if orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) == payload:
                    return doc
            except orjson.JSONEncodeError:
                pass
    try:
        doc = (_STRICT if strict else _DECODER).decode(payload.decode("utf-8"))
        if strict and b"\\u" in payload and lone_surrogate(json.dumps(doc, ensure_ascii=False)):
            raise InputError(
                "record: the payload holds text that is not Unicode (an unpaired surrogate "
                "escape such as \\ud800, which UTF-8 cannot write)"
            )
        return doc
    except RecursionError as e:  # unreachable within MAX_DEPTH; kept as bad input anyway
        raise InputError("record: the payload JSON nests too deeply") from e
    except (ValueError, UnicodeDecodeError) as e:
        if "integer string conversion" in str(e):  # (QA-Y: the message named sys's setting)
            raise InputError(
                f"record: a number in the payload has more than {sys.get_int_max_str_digits()} "
                "digits"
            ) from e
        raise InputError(f"record: payload is not UTF-8 JSON ({e})") from e
