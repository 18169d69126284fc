"""Shared CLI helpers: output, file I/O with clear errors, atomic writes."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import sys
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from node import payload_json
from node.errors import InputError, LedgerError, OutputError
from node.inputfile import read_input
from node.payload_json import RepeatedKeyError, unique_keys
from node.textrules import json_text, lone_surrogate

if TYPE_CHECKING:  # (grpc is imported by the commands that talk to a node)
    from node.client import LedgerClient
    from node.genesis import Genesis
    from proto import services_pb2

# Data (trace codes, member ids, messages) is printed as given: no console markup and no
# ``:name:`` emoji codes, so ``farm:pig:lot7`` stays itself and ``a[/]b`` is no markup
# error. Styled lines are built as ``rich.text.Text`` (``Text.assemble``) from plain parts.
# Piped or redirected, lines are never cut to fit (rich assumes 80 columns, and a trace
# tree's lines are cropped, not wrapped): the width is then wider than any line we print.
_WIDTH = None if sys.stdout.isatty() else 10_000

#: Characters data may not print as themselves: controls (an escape sequence restyles or
#: clears a terminal), format characters (a right-to-left override reorders a line), line
#: separators, surrogates and private use.
_ESCAPED = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})


def unicode_text(value: Any) -> Any:
    """Argument callback: text (or each of a list) is Unicode, not an argument byte that is
    not UTF-8, which Python keeps as an unpaired surrogate (QA: ``trace history
    $'...\\xff'`` ended in a traceback when the request was encoded)."""
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, str) and lone_surrogate(v):
            raise typer.BadParameter(f"{safe(v)[:80]} is not UTF-8 text")
    return value


def safe(text: str, *, newlines: bool = False) -> str:
    """``text`` with each control or format character written as ``\\uXXXX``, so printed
    data cannot restyle the terminal or forge a line; ``newlines`` keeps newlines and tabs
    (for a whole line of our own that holds data)."""
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        if (newlines and ch in "\n\t") or unicodedata.category(ch) not in _ESCAPED:
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


class _SafeConsole(Console):
    """A console whose plain-string arguments pass through ``safe`` (newlines kept)."""

    def print(self, *objects: Any, **kw: Any) -> None:
        super().print(*(safe(o, newlines=True) if isinstance(o, str) else o for o in objects), **kw)


console = _SafeConsole(highlight=False, soft_wrap=True, markup=False, emoji=False, width=_WIDTH)
err_console = _SafeConsole(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)


UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1


MAX_SECONDS = 1e7  # about 115 days: past it, gRPC and threading overflow their clocks


def positive_seconds(value: float) -> float:
    """Option callback: a finite number of seconds above zero (``--timeout``)."""
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise typer.BadParameter(f"{value} is not a number of seconds in (0, {MAX_SECONDS:g}]")
    return value


def print_json(obj: Any) -> None:
    """Machine output: one JSON document on stdout."""
    sys.stdout.write(json_text(obj, indent=2) + "\n")
    sys.stdout.flush()


def _finite_float(path: Path, what: str) -> Callable[[str], float]:
    """``parse_float`` for ``json.loads``: a number a 64-bit float cannot hold is refused by
    name (QA-R: 1e-400 was signed as 0.0 and 1e400 refused as "Infinity")."""

    def parse(text: str) -> float:
        value = float(text)
        mantissa = text.lower().partition("e")[0]
        if not math.isfinite(value):
            raise InputError(f"{path}: {what} has the number {text[:40]}, too large to record")
        if value == 0.0 and any(c in "123456789" for c in mantissa):
            raise InputError(
                f"{path}: {what} has the number {text[:40]}, too small to record (it would "
                "read as 0)"
            )
        return value

    return parse


def read_json_file(path: Path, what: str) -> Any:
    data = read_input(path, what)
    try:
        return json.loads(  # (a repeated key: the last value would win)
            data, object_pairs_hook=unique_keys, parse_float=_finite_float(path, what)
        )
    except RepeatedKeyError as e:
        raise InputError(f"{path}: {what} repeats the key {e.key!r} in one object") from e
    except RecursionError as e:  # (QA-R: Python's own words, "maximum recursion depth")
        raise InputError(
            f"{path}: {what} nests arrays and objects too deeply to read (a record may nest "
            f"at most {payload_json.MAX_DEPTH} levels)"
        ) from e
    except (ValueError, UnicodeDecodeError) as e:
        if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):  # (QA: EPCIS XML)
            raise InputError(
                f"{path}: {what} is XML, and JSON is read here (EPCIS 2.0 JSON-LD: convert an "
                "EPCIS XML document to JSON first, e.g. with GS1's EPCIS document converter)"
            ) from e
        raise InputError(f"{path}: {what} is not valid JSON ({e})") from e


_FD_PATH = re.compile(r"/dev/(stdout|stderr)|/dev/fd/(\d+)|/proc/self/fd/(\d+)")


Named = tuple[str, Path | None]  # (what the path is to the user, e.g. "--out"; the path)


def distinct_outputs(outputs: Sequence[Named], inputs: Sequence[Named] = ()) -> None:
    """Before anything is written: refuse (``InputError``) two of the files naming one
    (QA: ``--note-out`` equal to ``--out`` replaced the checkpoint with its note; ``prove
    --since cp.json --out cp.json`` replaced the auditor's checkpoint with the bundle), and
    (``OutputError``) an output whose folder is missing (QA: a checkpoint was written, then
    its note failed). Descriptor paths (``/dev/stdout``) are left alone."""
    files = [(n, p) for n, p in (*inputs, *outputs) if p is not None]
    given = [(n, p) for n, p in files if _open_descriptor(str(p)) is None]
    for i, (name, p) in enumerate(given):
        for other, q in given[i + 1 :]:
            if _same_file(p, q):
                raise InputError(f"{name} and {other} name the same file {p}: give two files")
    for _, o in outputs:
        if o is not None and _open_descriptor(str(o)) is None and not o.parent.is_dir():
            raise OutputError(f"cannot write {o}: no folder {o.parent} (create it first)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # (a symlink loop: the write will say so)
        return False


def _open_descriptor(path: str) -> int | None:
    """The descriptor a path such as ``/dev/stdout`` names, or None."""
    m = _FD_PATH.fullmatch(path)
    if m is None:
        return None
    if m.group(1):
        return 1 if m.group(1) == "stdout" else 2
    return int(m.group(2) or m.group(3))


def write_text_atomic(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename: never half-written.

    ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` and ``/proc/self/fd/N`` are written to
    the open descriptor (whatever it is: a pipe, a terminal, a file opened for appending).
    A missing folder is not created (a mistyped path is an error, as for ``cp``). A
    symbolic link is followed (its target is replaced, the link kept). A path that is not
    a regular file (a FIFO, a device) is written into, since there is no file to replace
    (renaming over it would replace the device itself).

    Raises:
        OutputError: the file cannot be written ("cannot write PATH: reason"); ``path`` is
            left as it was and no temporary file remains.
    """
    fd = _open_descriptor(str(path))
    if fd is not None:
        try:
            if fd in (1, 2):  # what was printed before comes first
                (sys.stdout if fd == 1 else sys.stderr).flush()
            data = memoryview(text.encode("utf-8"))
            for _ in range(len(data) + 1):  # each write takes at least one byte
                if not data:
                    break
                data = data[os.write(fd, data) :]
        except OSError as e:
            raise OutputError.writing(path, e) from e
        return
    real = Path(os.path.realpath(path))
    if real.exists() and not real.is_file() and not real.is_dir():
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise OutputError.writing(path, e) from e
        return
    tmp = real.with_name(f".{real.name}.tmp{os.getpid()}")
    _remove_stale_temps(real)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except OSError as e:
        raise OutputError.writing(path, e) from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _remove_stale_temps(real: Path) -> None:
    """Delete the temporary files an earlier write of ``real`` left when it was killed
    (``.NAME.tmpPID`` whose process no longer runs); a live writer's file is kept."""
    prefix = f".{real.name}.tmp"
    try:
        names = [n for n in os.listdir(real.parent) if n.startswith(prefix)]
    except OSError:
        return
    for name in names[:100]:
        pid = name[len(prefix) :]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            (real.parent / name).unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (someone else's process: alive)
        return True
    return True


WaitOpt = Annotated[bool, typer.Option("--wait", help="Return once committed.")]
WaitTimeoutOpt = Annotated[
    float, typer.Option("--timeout", callback=positive_seconds, help="Seconds to wait.")
]


_signalled: list[int] = []  # the exit code of the first SIGINT or SIGTERM of this run


def _on_sigterm(signum: int, frame: object) -> None:
    _signalled.append(143)
    _interrupt()


def _on_sigint(signum: int, frame: object) -> None:
    _signalled.append(130)
    _interrupt()


def _interrupt() -> None:
    """Stop the command: a call to a node in flight is cancelled, and its caller raises
    ``KeyboardInterrupt`` (raised here, inside gRPC's locks, it could hang the CLI);
    otherwise it is raised here."""
    client = sys.modules.get("node.client")  # (not loaded: no call to a node is made)
    if client is None or not client.interrupt_calls():
        raise KeyboardInterrupt


def catch_signals() -> None:
    """Stop on SIGTERM as on Ctrl-C (a ``KeyboardInterrupt``: the command says what it did
    or what is in flight) and note which signal it was, for this CLI run (``cli.main.run``):
    a call that gRPC or typer ends on the signal (a timeout, or typer's exit 130) is still
    reported as interrupted, with the signal's exit code (``interrupt_exit_code``)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigint)


def signalled() -> int:
    """143 or 130 if a SIGTERM or SIGINT arrived in this run, else 0."""
    return _signalled[0] if _signalled else 0


def interrupt_exit_code() -> int:
    """143 after SIGTERM, else 130 (Ctrl-C)."""
    return signalled() or 130


_reported: list[bool] = []


def interruption_reported() -> bool:
    """Whether a command already said what an interruption left (``note_interruption``)."""
    return bool(_reported)


def note_interruption() -> None:
    """A command has reported its interruption itself (the record in flight, an import's
    events): ``cli.main`` adds nothing."""
    _reported.append(True)


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless one: "1 code", "3 codes"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def gs1_prefix_option(help_text: str) -> Any:
    """The repeatable ``--gs1-prefix MEMBER=PREFIX`` option (rule gs1-prefix)."""
    return typer.Option("--gs1-prefix", metavar="MEMBER=PREFIX", help=help_text)


def quorum_lost(client: LedgerClient) -> str:
    """Why nothing commits, when the node sees fewer validators answering than the quorum
    (QA: a submit, an import and a recall waited and said only "not committed in time" or
    "Deadline Exceeded"); else "" (also when the node does not answer)."""
    try:
        st = client.status(timeout=5)
    except LedgerError:
        return ""
    if st.validators and st.validators_answering < st.quorum:
        return (
            f": the node sees {st.validators_answering} of {st.validators} validators "
            f"answering, under the quorum of {st.quorum}, so no block can commit"
        )
    return ""


def other_chain(client: LedgerClient, address: str, genesis: Path | None) -> str:
    """Why ``client``'s node cannot answer for the chain of ``genesis`` (the one a command
    would use: ``--genesis``, the testnet's, ``./genesis.json``): it serves another chain;
    else "" (also when there is no genesis, or the node does not answer). QA-Q: trace and
    recall asked of another chain's node answered "not known", a believable "no such
    batch"."""
    if genesis is None:
        return ""
    from node.genesis import Genesis

    try:
        g = Genesis.load(genesis)
        st = client.status(timeout=5)
    except LedgerError:
        return ""
    return serves_other_chain(address, st, g, f" of {genesis}")


def serves_other_chain(
    address: str, status: services_pb2.StatusResponse, genesis: Genesis, named: str = ""
) -> str:
    """Why the node at ``address``, answering ``status``, is not of ``genesis``'s chain,
    or "" (``named``: how the command found the genesis, for the message)."""
    if bytes(status.genesis_hash) == genesis.hash:
        return ""
    return (
        f"node {address} serves chain {status.chain_id!r} (genesis "
        f"{bytes(status.genesis_hash).hex()[:16]}...), not {genesis.chain_id!r}{named} "
        f"(genesis {genesis.hash.hex()[:16]}...): its answers are that chain's; ask a node "
        "of this one (--node)"
    )


def record_get_hint(record_id: str, address: str) -> str:
    """The command that tells what became of a record (``--node`` named: QA, the hint
    without it failed outside a local testnet)."""
    return f"`suyuan record get {record_id} --node {address}`"


def interrupted_submit(record_id: str, address: str) -> typer.Exit:
    """Ctrl-C (or SIGTERM) while a record was being submitted: say which record and how
    to find out what became of it (it may have been admitted, and committed)."""
    note_interruption()
    err_console.print(
        f"interrupted: record {record_id} was sent to {address}; its outcome is unknown: "
        f"{record_get_hint(record_id, address)} tells",
        markup=False,
        soft_wrap=True,
    )
    return typer.Exit(interrupt_exit_code())
