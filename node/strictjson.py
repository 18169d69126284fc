"""JSON documents a user hands in (bundles, checkpoints, evidence) read one way only.

The standard library keeps the last of two equal keys, and protobuf's JSON mapping takes a
field under its proto name and its JSON name (``log_index``, ``logIndex``), the last one
winning. Either way a file could show one value to a reader and give another to the
verifier. ``loads`` refuses a repeated key; ``one_spelling`` a field given under both of
its names, at every level of a protobuf message.
"""

from __future__ import annotations

import json
from typing import Any

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


def one_spelling(doc: Any, descriptor: Any, what: str) -> None:
    """Refuse (``InputError``) a field of ``descriptor`` given under both its proto name
    and its JSON name in ``doc``, at any depth (bounded by the document's own depth)."""
    if not isinstance(doc, dict):
        return
    for fd in descriptor.fields:
        names = {fd.name, fd.json_name}
        present = [n for n in names if n in doc]
        if len(present) > 1:
            raise InputError(
                f"{what}: field {fd.name!r} is given twice (as {' and '.join(sorted(present))})"
            )
        if fd.message_type is None or not present:
            continue
        value = doc[present[0]]
        items = value if fd.is_repeated else [value]
        if isinstance(items, list):
            for item in items:
                one_spelling(item, fd.message_type, what)


__all__ = ["loads", "one_spelling"]
