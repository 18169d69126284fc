"""`suyuan checkpoint`: export the latest certified header, and its C2SP signed note.

The Checkpoint JSON (protobuf JSON mapping of ``Checkpoint``) holds the header bytes and
commit certificate. Its ``note`` field (also written alone to ``--note-out``, default
``<out>.note``) is a C2SP tlog-checkpoint signed by >= 2f+1 validators: the command asks the
node and every peer its Status lists for ``Ledger.SignCheckpoint(height)``, checks each
signature against the genesis keys, and keeps the valid ones (``node.note``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from cli.common import UINT64_MAX, console, distinct_outputs, print_json, write_text_atomic
from cli.nodeaddr import NodeOpt
from cli.proof_cmd import JsonOpt
from node.errors import InputError, LedgerError, NodeUnavailableError, VerificationError
from node.genesis import Genesis
from node.note import NoteSignature, SignedNote, checkpoint_text, key_id, key_name, origin
from node.records import verify_signature
from proto import types_pb2


def collect_note(
    addresses: list[str], genesis: Genesis, height: int, log_size: int, log_root: bytes
) -> tuple[str, list[str], int]:
    """The signed note for ``height`` from the validators at ``addresses``; returns the note
    text, the addresses that did not contribute a valid signature (with why), and the
    number of validators that signed."""
    from node.client import LedgerClient

    org = origin(genesis.chain_id, genesis.hash)
    text = checkpoint_text(org, log_size, log_root)
    keys = dict(genesis.validator_keys())
    sigs: dict[str, NoteSignature] = {}
    problems: list[str] = []
    for addr in addresses:
        try:
            with LedgerClient(addr, timeout=5.0) as c:
                resp = c.sign_checkpoint(height)
        except LedgerError as e:
            problems.append(f"{addr}: {e}")
            continue
        pub = keys.get(resp.validator)
        if resp.note != text or pub is None:
            problems.append(f"{addr}: signed another note or is not a validator")
            continue
        if not verify_signature(pub, text.encode(), bytes(resp.signature)):
            problems.append(f"{addr}: invalid note signature from {resp.validator!r}")
            continue
        name = key_name(org, resp.validator)
        sigs.setdefault(resp.validator, NoteSignature(name, key_id(name, pub), resp.signature))
    order = [v for v in genesis.validators if v in sigs]
    return SignedNote(text, tuple(sigs[v] for v in order)).to_text(), problems, len(order)


def checkpoint(
    out: Annotated[Path, typer.Option("--out", help="Checkpoint file to write (JSON).")],
    node: NodeOpt = None,
    genesis: Annotated[
        Path | None, typer.Option("--genesis", help="genesis.json (default: the testnet's).")
    ] = None,
    height: Annotated[
        int, typer.Option("--height", min=0, max=UINT64_MAX, help="0: the latest block.")
    ] = 0,
    note: Annotated[
        bool, typer.Option("--note/--no-note", help="Collect the validators' signed note.")
    ] = True,
    note_out: Annotated[
        Path | None,
        typer.Option(
            "--note-out", help="Signed note file (default: the --out path with suffix .note)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a certified header as a checkpoint, with its C2SP signed note."""
    from cli.nodeaddr import resolve_node
    from node.client import LedgerClient
    from node.verify import checkpoint_to_json, require_checkpoint  # (not at start-up)

    if not out.name or out.is_dir():  # (QA: --out . raised ValueError, after the node's work)
        raise InputError(f"--out {out}: name a file to write the checkpoint to, not a folder")
    target = resolve_node(node)
    gpath = genesis or target.genesis
    if gpath is None:
        raise InputError(f"--genesis is required: node {target.address} is not in a testnet")
    g = Genesis.load(gpath)
    with LedgerClient(target.address) as client:
        cp: types_pb2.Checkpoint = client.get_checkpoint(height)
        peers = [p.address for p in client.status().peers] if note else []
    cp.note = ""
    res = require_checkpoint(cp, g)
    problems: list[str] = []
    if note:
        text, problems, signed = collect_note(
            [target.address, *peers], g, res.height, res.log_size, res.log_root
        )
        cp.note = text
        need = 2 * ((len(g.validators) - 1) // 3) + 1
        unreachable = [p for p in problems if "unreachable" in p or "timed out" in p]
        if signed < need and unreachable:  # (QA: "2/2 valid signatures, need 3", exit 3)
            raise NodeUnavailableError(
                f"checkpoint note: {len(problems)} of {1 + len(peers)} nodes did not sign, and "
                f"{need} validator signatures are needed: {'; '.join(unreachable[:3])} "
                "(--no-note saves the checkpoint of the certified header alone)"
            )
        res = require_checkpoint(cp, g)  # raises unless >= 2f+1 note signatures
    npath = note_out or out.with_suffix(".note")
    distinct_outputs(
        [("--out", out), ("--note-out" if note_out else "the note", npath if note else None)]
    )
    _write_both(out, checkpoint_to_json(cp), npath if note else None, cp.note)
    info = {
        "height": res.height,
        "log_size": res.log_size,
        "log_root": res.log_root.hex(),
        "block_hash": res.block_hash.hex(),
        "file": str(out),
        "note_file": str(npath) if note else None,
        "note_signers": sorted(res.note_signers),
        "unavailable": problems,
    }
    if as_json:
        print_json(info)
    else:
        by = f"; note signed by {', '.join(sorted(res.note_signers))} -> {npath}" if note else ""
        console.print(
            f"checkpoint at height {res.height} (log size {res.log_size}) -> {out}{by}",
            markup=False,
        )
    if note and not res.note_signers:
        raise VerificationError("no validator signed the checkpoint note")


def _write_both(out: Path, text: str, npath: Path | None, note: str) -> None:
    """Write the checkpoint, then its note: if the note cannot be written, the checkpoint
    file is put back as it was (QA-V: a full disk left cp.json and no cp.note)."""
    before: str | None = None
    if str(out).startswith(("/dev/", "/proc/")):  # (a descriptor: nothing to put back)
        write_text_atomic(out, text)
        if npath is not None:
            write_text_atomic(npath, note)
        return
    if npath is not None and out.is_file():
        try:
            before = out.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            before = None
    existed = out.exists()
    write_text_atomic(out, text)
    if npath is None:
        return
    try:
        write_text_atomic(npath, note)
    except LedgerError:
        with contextlib.suppress(OSError, LedgerError):
            if before is not None:
                write_text_atomic(out, before)
            elif not existed:
                out.unlink()
        raise
