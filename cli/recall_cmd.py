"""`suyuan recall CODE`: a regulator's recall of a code and everything downstream of it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from cli.common import (
    console,
    counted,
    interrupted_submit,
    other_chain,
    positive_seconds,
    print_json,
    quorum_lost,
    unicode_text,
)
from cli.nodeaddr import NodeOpt, resolve_node
from node.client import LedgerClient
from node.errors import ChainMismatchError, InputError, LedgerError, NodeUnavailableError
from node.genesis import Genesis
from node.keys import load_key_file
from node.recall import RecallResult, run_recall
from node.records import CATEGORIES


def recall(
    code: Annotated[
        str,
        typer.Argument(
            metavar="CODE",
            help="The code found unsafe (a lot, a package...).",
            callback=unicode_text,
        ),
    ],
    key: Annotated[
        Path,
        typer.Option(
            "--key", help="The recalling member's key file: a regulator, or the code's producer."
        ),
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why (recorded with the recall; say it when you can).")
    ] = "",
    node: NodeOpt = None,
    genesis: Annotated[Path | None, typer.Option("--genesis", help="genesis.json.")] = None,
    category: Annotated[str, typer.Option("--category", help=", ".join(CATEGORIES))] = "other",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", callback=positive_seconds, help="Seconds to wait per call."),
    ] = 60.0,
) -> None:
    """Commit a recall of CODE and every downstream code; print them by current custodian.

    A recalled code refuses further handoffs except a return or its destruction. A
    regulator recalls any code; a producer (not a regulator) recalls the codes it
    commissioned (its own recall): downstream codes other producers made are listed as not
    recalled, and the command fails (exit 1) naming them.

    If the forward trace stopped at the server's depth limit, the codes found are recalled
    and reported, then the command fails (exit 1) with one line naming the deepest codes
    reached: recall again from those to cover what lies further downstream.
    """
    target = resolve_node(node)
    gpath = genesis or target.genesis
    if gpath is None:
        raise InputError("--genesis is required outside a local testnet")
    g = Genesis.load(gpath)
    k = load_key_file(key)
    with LedgerClient(target.address, timeout=timeout) as client:
        mismatch = other_chain(client, target.address, gpath)  # (QA-Q: "not known")
        if mismatch:
            raise ChainMismatchError(mismatch)
        try:
            r = run_recall(client, g, k, code, reason, category=category, timeout=timeout)
        except NodeUnavailableError as e:  # (QA: --json said nothing)
            why = NodeUnavailableError(f"{e}{quorum_lost(client)}")  # (QA: it did not say)
            if as_json:
                print_json({"code": code, "error": str(why)})
            raise why from e
        except KeyboardInterrupt as e:  # a recall record in flight is named (QA)
            rid = next(iter(getattr(e, "__notes__", [])), "")
            if not rid:
                raise
            if as_json:
                print_json({"code": code, "record_id": rid, "committed": False,
                            "error": "interrupted"})  # fmt: skip
            raise interrupted_submit(rid, target.address) from None
    affected = r.by_custodian()
    if as_json:
        print_json(
            {
                "code": r.root,
                "reason": reason,
                "records": r.records,
                "affected": affected,
                "already_recalled": [n.code for n in r.scope if n.recalled],
                "recalled_before_by": r.earlier(),
                "closed": r.closed(),
                "closed_as": r.closed_as(),
                "containers": r.containers,
                "truncated": r.truncated,
                "frontier": r.frontier() if r.truncated else [],
                "left_to_their_producers": r.others,
            }
        )
        _fail_if_incomplete(r)
        return
    before = {n.code for n in r.scope if n.recalled}  # (a regulator restates a producer's)
    newly = sum(1 for x in r.records for c in x["codes"] if c not in before)
    console.print(
        Text.assemble(
            ("recall", "bold red"),
            f" of {r.root}: {counted(len(r.scope), 'code')} affected, "
            f"{newly} newly recalled in {len(r.records)} record(s)",
        )
    )
    for x in r.records:  # (QA: only --json named them; `record declare` and `prove` need them)
        console.print(
            f"  record {x['record_id']} at height {x['height']}, log index {x['log_index']}"
            f" ({counted(len(x['codes']), 'code')})"
        )
    for prior in r.earlier():  # (QA re-check: a re-run named no record)
        console.print(
            f"  recalled before: by {prior['by'] or '(unknown)'}, the record at log index "
            f"{prior['log_index']} ({counted(prior['codes'], 'code')})"
        )
    closed = r.closed_as()
    for custodian, codes in affected.items():
        gone = sum(1 for c in codes if c in closed)
        how = (
            f": {counted(len(codes), 'code')}, {len(codes) - gone} still in its custody, "
            f"{gone} closed before the "
            "recall (sold, destroyed or consumed):"
            if gone
            else f" holds {len(codes)}:"
        )
        console.print(Text.assemble("  ", (custodian, "bold"), how))
        for c in codes:
            how_closed = f"  (closed: {closed[c]})" if closed.get(c) else "  (closed)"
            console.print(f"    {c}" + (how_closed if c in closed else ""))
    if r.containers:
        console.print("containers holding recalled codes (the labels to look for):")
        for box in r.containers:
            inside = f"; inside {box['container']}" if box["container"] else ""
            held = box["holds"]
            more = f" and {len(held) - 3} more" if len(held) > 3 else ""
            console.print(
                f"  {box['code']} at {box['custodian'] or '(unknown)'}: holds "
                f"{', '.join(held[:3])}{more}{inside}"
            )
    for producer, codes in r.others.items():
        console.print(
            Text.assemble(("  not recalled", "bold"), f", made by {producer}: {len(codes)}")
        )
        for c in codes:
            console.print(f"    {c}")
    _fail_if_incomplete(r)


def _fail_if_incomplete(r: RecallResult) -> None:
    if r.others and not r.truncated:
        left = r.left()
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        raise LedgerError(
            f"recall of {r.root} is INCOMPLETE: {len(left)} affected code(s) were made by "
            f"other producers ({', '.join(sorted(r.others))}), who (or a regulator) must "
            f"recall them: {shown}"
        )
    if not r.truncated:
        return
    frontier = r.frontier()
    shown = ", ".join(frontier[:5]) + (
        f" and {len(frontier) - 5} more" if len(frontier) > 5 else ""
    )
    raise LedgerError(
        f"recall of {r.root} is INCOMPLETE: the forward trace stopped at the depth limit; "
        f"codes further downstream were not recalled. Recall again from the deepest codes "
        f"reached: {shown}"
    )
