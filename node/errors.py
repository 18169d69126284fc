"""One error hierarchy for the whole ledger (STYLE.md §7).

Every failure a user can cause or meet is a ``LedgerError``. Lower layers raise the most
specific subclass; the boundaries translate exactly once: ``cli.main`` turns a
``LedgerError`` into one line on stderr and a non-zero exit, ``node.grpc_errors`` turns it
into a gRPC status code. Nothing else catches broadly.

Each class carries ``grpc_code``: the name of the ``grpc.StatusCode`` it maps to, kept as a
string so that this module imports nothing but the standard library.
"""

from __future__ import annotations

from pathlib import Path

_REPEATED_PREFIX = "Failed to load JSON: "  # protobuf's json_format can say it twice
MAX_QUOTED = 300  # characters of a library's message quoted in ours (some echo the input)


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s text, at most ``MAX_QUOTED`` characters: enough to act on,
    and error messages stay one line (protobuf's JSON parse errors go on to list every field
    of the message, or echo the whole document)."""
    text = str(err).strip()
    line = text.splitlines()[0].strip() if text else type(err).__name__
    while line.startswith(_REPEATED_PREFIX * 2):
        line = line[len(_REPEATED_PREFIX) :]
    return line if len(line) <= MAX_QUOTED else line[: MAX_QUOTED - 3] + "..."


class LedgerError(Exception):
    """Base of every Suyuan error. ``str(err)`` is a one-line, user-facing reason."""

    grpc_code = "INTERNAL"
    exit_code = 1


class InputError(LedgerError):
    """Malformed input: unparsable JSON or protobuf, missing or unknown fields, bad values."""

    grpc_code = "INVALID_ARGUMENT"
    exit_code = 2


class TooLargeError(InputError):
    """An envelope, block or field exceeds a configured size limit."""


class ConfigError(InputError):
    """A configuration or genesis file is invalid; the message names the field."""


class OutputError(InputError):
    """An output file cannot be written (bad path, a directory, no permission, disk full)."""

    @classmethod
    def writing(cls, path: Path, e: OSError) -> OutputError:
        """``cannot write PATH: reason`` for an ``OSError`` met while writing ``path``."""
        reason = e.strerror or str(e)
        if isinstance(e, FileExistsError | NotADirectoryError):
            files = [p for p in reversed(path.parents) if p.exists() and not p.is_dir()]
            if files:
                reason = f"{files[0]} is not a directory"
        elif isinstance(e, FileNotFoundError) and not path.parent.exists():
            reason = f"no folder {path.parent} (create it first)"
        return cls(f"cannot write {path}: {reason}")


class KeyFileError(LedgerError):
    """A key file cannot be read: wrong passphrase, loose permissions, bad format."""

    grpc_code = "FAILED_PRECONDITION"
    exit_code = 2


class VerificationError(LedgerError):
    """A signature, proof, certificate or hash does not verify."""

    grpc_code = "UNAUTHENTICATED"
    exit_code = 3


class ChainMismatchError(VerificationError):
    """Data belongs to another chain (chain id or genesis hash differ)."""

    grpc_code = "INVALID_ARGUMENT"


class MembershipError(VerificationError):
    """A signer is not a member of the consortium, or lacks the role required."""

    grpc_code = "PERMISSION_DENIED"


class ReplayError(LedgerError):
    """A record id or an author nonce was seen before."""

    grpc_code = "ALREADY_EXISTS"


class RuleError(LedgerError):
    """A record breaks a traceability rule (custody, commissioning, recall...).

    ``rule`` names the rule and ``code`` the trace code concerned, so callers can act.
    """

    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, rule: str, message: str, code: str = "") -> None:
        self.rule = rule
        self.code = code
        where = f" (code {code})" if code else ""
        super().__init__(f"rule {rule}: {message}{where}")


class RulePermissionError(RuleError):
    """A rule refuses the author's role or identity for this action."""

    grpc_code = "PERMISSION_DENIED"


class OverloadError(LedgerError):
    """The node is at capacity (mempool full, rate limit); retry later."""

    grpc_code = "RESOURCE_EXHAUSTED"


class NotFoundError(LedgerError):
    """A record, block or code is not known to this node."""

    grpc_code = "NOT_FOUND"


class StorageError(LedgerError):
    """The store cannot be opened or written (disk full, other chain, unknown version)."""

    grpc_code = "INTERNAL"
    exit_code = 4


class DamagedStoreError(StorageError):
    """A committed block or envelope read back does not match what was committed (a changed
    byte in the data file): the node must not answer with it."""

    grpc_code = "DATA_LOSS"


class ReplicationError(LedgerError):
    """A peer is unreachable or served data that does not verify."""

    grpc_code = "UNAVAILABLE"
    exit_code = 5


class NodeUnavailableError(LedgerError):
    """The node a command talks to cannot be reached or timed out."""

    grpc_code = "UNAVAILABLE"
    exit_code = 5
