"""Identifier text rules that give one answer on every node, whatever its Python.

``unicodedata`` follows the Unicode version of the running Python (3.11: 14.0, 3.12: 15.0),
so a rule built on it could accept a record on one validator and refuse it on another.
These rules read ``unicodedata.ucd_3_2_0`` instead: Unicode 3.2, frozen in every Python
(IDNA uses it). A character Unicode 3.2 does not assign is refused in an identifier, so a
later Unicode version cannot change an answer.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

_UCD = unicodedata.ucd_3_2_0

#: Categories that show nothing (or only space) where they stand: format characters,
#: spaces and separators, controls; and what Unicode 3.2 leaves unassigned.
_HIDDEN_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp", "Cc", "Cn", "Co", "Cs"})
#: Invisible characters that Unicode 3.2 files under other categories.
_HIDDEN_CHARS = frozenset("\u00ad\u034f\u115f\u1160\u3164\uffa0\u180e")


def _hidden(ch: str) -> bool:
    """``ch`` shows nothing or is not in Unicode 3.2 (an ASCII space counts as visible)."""
    return ch != " " and (ch in _HIDDEN_CHARS or _UCD.category(ch) in _HIDDEN_CATEGORIES)


_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds an unpaired surrogate (U+D800-U+DFFF; a JSON escape such as
    ``"\\ud800"`` decodes to one): not Unicode text, and UTF-8 cannot write it."""
    return _SURROGATE.search(text) is not None


def json_text(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text with non-ASCII characters as themselves, or, where a string in
    it holds an unpaired surrogate (a record committed before the node refused them), all
    escaped (``\\ud800``): text any UTF-8 stream can write."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return json.dumps(value, indent=indent) if lone_surrogate(text) else text


def hidden_char(text: str) -> str:
    """The first character of ``text`` that ``_hidden`` finds, or ""."""
    return next((ch for ch in text if _hidden(ch)), "")


#: What breaks or rewrites a line where it stands: controls (a newline, an escape sequence),
#: format characters (a right-to-left override), line and paragraph separators, surrogates.
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def control_char(text: str) -> str:
    """The first control or format character of ``text`` (Unicode 3.2), or "". Unlike
    ``hidden_char`` it lets spaces and characters newer than Unicode 3.2 pass: for names
    shown to people, not identifiers."""
    if text.isascii() and text.isprintable():  # (no ASCII control: the common case)
        return ""
    return next((ch for ch in text if _UCD.category(ch) in _CONTROL_CATEGORIES), "")


def plain(text: str) -> str:
    """``text`` without its hidden characters, NFKC-normalised under Unicode 3.2 (full-width
    and compatibility forms become their plain characters)."""
    return _UCD.normalize("NFKC", "".join(c for c in text if not _hidden(c)))


__all__ = ["control_char", "hidden_char", "plain"]
