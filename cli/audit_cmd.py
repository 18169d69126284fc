"""`suyuan audit`: stream every block from a node and replay the whole chain offline-style.

The node is only a source of bytes: every check (``node.audit``: heights, links,
certificates, envelopes, replay, custody rules, log root, checkpoint) uses the genesis file
alone. A rich progress bar on a terminal; plain JSON with ``--json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import console, positive_seconds, print_json, serves_other_chain, write_text_atomic
from cli.nodeaddr import NodeOpt
from cli.proof_cmd import JsonOpt, load_checkpoint
from node.errors import ChainMismatchError
from node.genesis import Genesis

if TYPE_CHECKING:  # (node.audit is imported where it is used: other commands start faster)
    from node.audit import AuditReport


def _summary(r: AuditReport) -> str:
    return (
        f"{r.blocks} blocks, {r.records} records, log size {r.log_size}, "
        f"root {r.log_root.hex()[:16]}..., {r.seconds:.2f} s "
        f"({r.records_per_second:,.0f} records/s)"
    )


def audit(
    genesis: Annotated[Path, typer.Option("--genesis", help="The consortium's genesis.json.")],
    node: NodeOpt = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint saved by an earlier audit (or exported)."),
    ] = None,
    save_checkpoint: Annotated[
        Path | None,
        typer.Option("--save-checkpoint", help="Write the audited head as a checkpoint here."),
    ] = None,
    threads: Annotated[
        int,
        typer.Option("--threads", min=1, help="Threads (certificates; envelopes of small chains)."),
    ] = 4,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=0,
            help="Envelope-checking worker processes for chains past a few thousand records "
            "(default: one per CPU; 0: threads only).",
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            callback=positive_seconds,
            help="Seconds for the whole block stream; the first call (Status) waits at most "
            "10 s, or this if less.",
        ),
    ] = 3600.0,
    as_json: JsonOpt = False,
) -> None:
    """Verify every block, certificate, envelope, rule and log root of a node's chain."""
    from cli.nodeaddr import resolve_node
    from node.audit import AuditError, audit_blocks
    from node.client import DEFAULT_TIMEOUT_S, LedgerClient

    g = Genesis.load(genesis)
    saved = load_checkpoint(checkpoint) if checkpoint is not None else None
    target = resolve_node(node)
    with LedgerClient(target.address, timeout=min(timeout, DEFAULT_TIMEOUT_S)) as client:
        status = client.status()
        mismatch = serves_other_chain(target.address, status, g)
        if mismatch:
            raise ChainMismatchError(mismatch)
        head = status.height
        blocks = client.stream_blocks(1, head, timeout=timeout) if head else iter(())
        if as_json or not sys.stdout.isatty():
            report = audit_blocks(blocks, g, saved, threads=threads, processes=processes)
        else:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            with Progress(
                TextColumn("audit"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("blocks  {task.fields[records]} records"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("audit", total=head, records=0)

                def tick(r: AuditReport) -> None:
                    bar.update(task, completed=r.height, records=r.records)

                report = audit_blocks(
                    blocks, g, saved, threads=threads, processes=processes, on_block=tick
                )
    if report.ok and report.height < head:  # (QA: a node that streamed 10 of 563 passed)
        report.error = AuditError(
            report.height + 1,
            "completeness",
            f"node {target.address} reported height {head} but sent blocks only up to "
            f"height {report.height}: the chain after that is not audited",
        )
    if report.ok and save_checkpoint is not None and report.last is not None:
        write_text_atomic(save_checkpoint, report.saved_checkpoint().to_json())
    if as_json:
        doc = report.to_dict()
        doc["node"] = target.address
        if save_checkpoint is not None and report.ok and report.last is not None:
            doc["saved_checkpoint"] = str(save_checkpoint)
        print_json(doc)
    if report.error is not None:
        raise report.error
    if not as_json:
        console.print(f"audit passed: {_summary(report)}", markup=False)
        if saved is not None:
            console.print(
                f"consistent with the checkpoint at height {report.checkpoint_height}",
                markup=False,
            )
        if save_checkpoint is not None and report.last is None:  # (QA: it said it wrote one)
            console.print("no block yet: no checkpoint written", markup=False)
        elif save_checkpoint is not None:
            console.print(f"checkpoint at height {report.height} -> {save_checkpoint}")
