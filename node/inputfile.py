"""Reading a user's input file whole, with a bound on what is read.

Every file a command reads (an event, an envelope, a bundle, a checkpoint, a genesis or a
key file) goes through ``read_input``. Invariant: at most ``limit + 1`` bytes are read,
whatever the path names (a regular file, a FIFO, ``/dev/zero``), and every failure is one
``LedgerError`` of the caller's class whose message starts with the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from node.errors import InputError, LedgerError

#: The most any command reads from one input file. A larger EPCIS document can be split;
#: an envelope, bundle or key file is orders of magnitude smaller.
MAX_INPUT_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


def read_input(
    path: Path,
    what: str,
    *,
    limit: int = MAX_INPUT_BYTES,
    error: type[LedgerError] = InputError,
) -> bytes:
    """The bytes of ``path``, refused (``error``) if it is missing, unreadable (a folder) or
    longer than ``limit`` bytes (a regular file's size is checked before anything is read)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise error(_too_big(path, what, limit))
            chunks: list[bytes] = []
            total = 0
            while total <= limit:  # bounded: each pass reads at least one byte or stops
                chunk = f.read(min(_CHUNK, limit + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except FileNotFoundError as e:
        noun = what if what.endswith(" file") else f"{what} file"  # (QA: "event file file")
        raise error(f"{path}: no such {noun}") from e
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror})") from e
    if total > limit:
        raise error(_too_big(path, what, limit))
    return b"".join(chunks)


def _too_big(path: Path, what: str, limit: int) -> str:
    return f"{path}: {what} is larger than {limit:,} bytes, the most a command reads"


__all__ = ["MAX_INPUT_BYTES", "read_input"]
