"""JSON documents a user hands in (bundles, checkpoints, evidence) read one way only.

The standard library keeps the last of two equal keys, and protobuf's JSON mapping takes a
field under its proto name and its JSON name (``log_index``, ``logIndex``), the last one
winning. Either way a file could show one value to a reader and give another to the
verifier. ``loads`` refuses a repeated key; ``one_spelling`` a field given under both of
its names, an integer written other than as ASCII digits (protobuf's reader takes ``"١"``,
``"６"``, ``"1e0"``, ``1.0`` and ``"01"``), or bytes other than padded base64 in the one
spelling of their value (it drops characters that are not base64, and takes missing or
extra padding), at every level of a protobuf message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from node.errors import InputError
from node.payload_json import RepeatedKeyError, unique_keys


def loads(text: str | bytes, what: str) -> Any:
    """``json.loads`` refusing a repeated key; errors are ``InputError`` naming ``what``."""
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except RepeatedKeyError as e:
        raise InputError(f"{what}: key {e.key!r} is given twice") from e
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{what}: not valid JSON ({first})") from e


_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_DIGITS = re.compile(r"-?(0|[1-9][0-9]*)")  # ASCII digits, no leading zero (one spelling)


def one_spelling(doc: Any, descriptor: Any, what: str) -> None:
    """Refuse (``InputError``) a field of ``descriptor`` in ``doc`` given under both its
    proto name and its JSON name, an integer field that is not a JSON integer or a string
    of ASCII digits, or a bytes field that is not base64 (standard or URL-safe, the
    alphabets protobuf's JSON mapping reads), at any depth (bounded by the document's own
    depth)."""
    if not isinstance(doc, dict):
        return
    for fd in descriptor.fields:
        names = {fd.name, fd.json_name}
        present = [n for n in names if n in doc]
        if len(present) > 1:
            raise InputError(
                f"{what}: field {fd.name!r} is given twice (as {' and '.join(sorted(present))})"
            )
        if not present:
            continue
        value = doc[present[0]]
        items = value if fd.is_repeated else [value]
        if not isinstance(items, list):
            continue  # (protobuf's reader names the wrong shape)
        for item in items:
            if fd.message_type is not None:
                one_spelling(item, fd.message_type, what)
            elif fd.type in _INTEGER_TYPES and not _integer(item):
                raise InputError(
                    f"{what}: field {fd.name!r} is {str(item)[:40]!r}, not an integer in digits"
                )
            elif fd.type == FieldDescriptor.TYPE_BYTES and not _base64(item):
                raise InputError(f"{what}: field {fd.name!r} is not base64 as written here")


def _base64(v: Any) -> bool:
    """Whether ``v`` is base64 with its padding, as this project writes it (standard, or
    URL-safe), in the one spelling of its bytes: no junk, no missing or extra ``=``, no
    unused bits set (QA: each decoded to the same bytes, so a file read two ways)."""
    if not isinstance(v, str) or not v.isascii():
        return False
    for alt in (b"+/", b"-_"):
        try:
            raw = base64.b64decode(v, altchars=alt, validate=True)
        except (ValueError, binascii.Error):
            continue
        if base64.b64encode(raw, altchars=alt).decode() == v:
            return True
    return False


def _integer(v: Any) -> bool:
    if isinstance(v, str):
        return _DIGITS.fullmatch(v) is not None
    return isinstance(v, int) and not isinstance(v, bool)


__all__ = ["loads", "one_spelling"]
