"""`suyuan prove` (fetch a proof bundle from a node) and `suyuan verify` (check it offline).

``verify`` needs only the bundle and the genesis file: no node, no network. It prints every
numbered step of ``node.verify.verify_bundle``; on failure the one error line (printed by
``cli.main``) names the first failed step.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import console, distinct_outputs, err_console, print_json, write_text_atomic
from cli.nodeaddr import NodeOpt
from node.errors import InputError, LedgerError, VerificationError
from node.genesis import Genesis
from node.inputfile import read_input

if TYPE_CHECKING:  # (node.verify is imported where it is used: other commands start faster)
    from node.verify import BundleResult, SavedCheckpoint

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def load_checkpoint(path: Path) -> SavedCheckpoint:
    from node.verify import parse_checkpoint_json

    data = read_input(path, "checkpoint")  # its errors name the file
    try:
        return parse_checkpoint_json(data)
    except InputError as e:
        raise InputError(f"{path}: {e}") from e


def parse_record_id(text: str) -> bytes:
    try:
        rid = bytes.fromhex(text)
    except ValueError:
        rid = b""
    if len(rid) != 32:
        raise InputError(f"record id must be 64 hex characters, got {text!r}")
    return rid


def prove(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="Record id (64 hex characters).")],
    out: Annotated[Path, typer.Option("--out", help="Bundle file to write (JSON).")],
    node: NodeOpt = None,
    since: Annotated[
        Path | None,
        typer.Option("--since", help="Also prove consistency with this checkpoint (JSON)."),
    ] = None,
    genesis: Annotated[
        Path | None,
        typer.Option(
            "--genesis",
            help="genesis.json, to verify the --since checkpoint and the bundle "
            "(default: the testnet's; without it only the roots are compared).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch the proof bundle of a committed record and write it as JSON.

    With ``--since``, the node's log must hold the checkpoint's log (root for root) as a
    prefix, or the reverse; with the genesis file (``--genesis``, or the testnet's) the
    checkpoint's certificate and the whole bundle are verified as well. Otherwise nothing
    is written and the exit status is 3."""
    from cli.nodeaddr import resolve_node
    from node.client import LedgerClient
    from node.verify import bundle_to_json, parse_header, verify_bundle, verify_checkpoint

    rid = parse_record_id(record_id)
    distinct_outputs([("--out", out)], inputs=[("--since", since)])
    target = resolve_node(node)
    since_size = 0
    cp = g = header = None
    if since is not None:
        cp = load_checkpoint(since).checkpoint
        header = parse_header(bytes(cp.header))
        if header is None:
            raise VerificationError(  # (exit 3, as verify and audit say it: QA-P)
                f"{since}: checkpoint: header is empty, cut short or does not parse"
            )
        since_size = header.log_size  # 0: an empty log, a prefix of every log (no proof)
        gpath = genesis or target.genesis
        if gpath is not None:
            g = Genesis.load(gpath)
            checked = verify_checkpoint(cp, g)
            if not checked:
                raise VerificationError(f"{since}: {checked.reason}")
        else:  # (QA: a forged checkpoint was taken without a word)
            err_console.print(
                f"warning: {since}'s certificate is not checked (no --genesis and no local "
                "testnet): the bundle links to its root; `suyuan verify --checkpoint` checks it"
            )
    with LedgerClient(target.address) as client:
        bundle = client.prove(rid, since_size=since_size)
        # (QA-U: a proof of a record declared in error verifies, as it should: it proves the
        # record was committed; whoever is shown it must be told it no longer stands)
        declared_by = bytes(client.get_record(rid).info.declared_by)
    if cp is not None and g is not None:
        result = verify_bundle(bundle, g, cp)
        if not result:
            raise VerificationError(
                f"node {target.address}: its proof does not hold against {since}: "
                f"{result.describe()}"
            )
    elif header is not None:  # the checkpoint's (size, root) is one the bundle links to
        own = parse_header(bytes(bundle.header))
        linked = {(bundle.consistency.old_size, bytes(bundle.consistency.old_root))}
        if own is not None:
            linked.add((own.log_size, bytes(own.log_root)))
        if (header.log_size, bytes(header.log_root)) not in linked:
            raise VerificationError(
                f"node {target.address}: its log of {since_size} records has another root "
                f"than {since}'s: the log was rewritten, or the checkpoint is another chain's"
            )
    write_text_atomic(out, bundle_to_json(bundle))
    info = {
        "record_id": rid.hex(),
        "log_index": bundle.log_index,
        "height": bundle.record_height,
        "file": str(out),
        "consistency_from": since_size or None,
        "declared_by": declared_by.hex() or None,
    }
    if as_json:
        print_json(info)
    else:
        console.print(
            f"bundle for record {rid.hex()} (log index {bundle.log_index}, "
            f"height {bundle.record_height}) -> {out}"
        )
    if declared_by:
        err_console.print(
            f"warning: record {rid.hex()} was declared in error by record "
            f"{declared_by.hex()}: this bundle proves it was committed, not that it stands; "
            f"`suyuan prove {declared_by.hex()}` proves the declaration"
        )


def _print_steps(result: BundleResult) -> None:
    for s in result.steps:
        status = "skip" if s.ok is None else ("pass" if s.ok else "FAIL")
        console.print(f"({s.number}) {s.name:<11} {status}  {s.message}", markup=False)


def verify(
    bundle_file: Annotated[
        Path,
        typer.Argument(
            metavar="BUNDLE.json",
            help="Proof bundle (JSON) from `suyuan prove`.",
        ),
    ],
    genesis: Annotated[Path, typer.Option("--genesis", help="The consortium's genesis.json.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="An older checkpoint the log must be consistent with."),
    ] = None,
    record: Annotated[
        str | None,
        typer.Option(
            "--record",
            metavar="ID",
            help="The record id the bundle must prove (64 hex characters): exit 3 if it "
            "proves another.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a proof bundle offline; exit 0 only if every step passes (and, with
    ``--record``, it proves that record: a bundle names no record id of its own, so a valid
    proof of another record passes without it; QA-U)."""
    from node.verify import parse_bundle_json, verify_bundle

    try:
        expected = parse_record_id(record) if record is not None else None
        g = Genesis.load(genesis)
        data = read_input(bundle_file, "bundle")  # its errors name the file
        try:
            bundle = parse_bundle_json(data)
        except InputError as e:
            raise InputError(f"{bundle_file}: {e}") from e
        cp = load_checkpoint(checkpoint).checkpoint if checkpoint is not None else None
    except LedgerError as e:
        if as_json:  # machines get their answer on stdout, as for every other failure
            print_json({"valid": False, "steps": [], "message": str(e)})
        raise
    result = verify_bundle(bundle, g, cp)
    other = (
        f"it proves record {result.record_id.hex()}, not {expected.hex()} (--record)"
        if result and expected is not None and result.record_id != expected
        else ""
    )
    if as_json:
        print_json(
            {**result.to_dict(), "valid": False, "message": other} if other else result.to_dict()
        )
    else:
        _print_steps(result)
    if not result:
        raise VerificationError(f"{bundle_file}: {result.describe()}")
    if other:
        raise VerificationError(f"{bundle_file}: {other}")
    if not as_json:
        console.print(f"valid: {result.describe()}", markup=False)
