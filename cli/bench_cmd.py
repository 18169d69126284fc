"""`suyuan bench`: throughput and latency of a fresh local testnet (issue #8).

A thin layer over ``testnet.bench`` (see its docstring for what one run does). A rich
progress bar on stderr while it runs; a summary table, or ``--json``, at the end. Ctrl-C
or SIGTERM stops every process the run started.
"""

from __future__ import annotations

import signal
import types
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import console, err_console, print_json

if TYPE_CHECKING:
    from rich.table import Table


def _sigterm(signum: int, frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt


def bench(
    nodes: Annotated[int, typer.Option("--nodes", min=1, help="Validators in the testnet.")] = 4,
    records: Annotated[
        int, typer.Option("--records", min=1, help="Records to pre-sign and send.")
    ] = 20_000,
    rate: Annotated[
        float, typer.Option("--rate", min=0, help="Offered records/s; 0 = open loop.")
    ] = 0.0,
    batch: Annotated[
        int,
        typer.Option(
            "--batch", min=1, max=1000, help="Records per SubmitBatch (a node takes 1,000 at most)."
        ),
    ] = 200,
    window: Annotated[
        int, typer.Option("--window", min=1, help="Batches in flight at most (all nodes).")
    ] = 40,
    record_bytes: Annotated[
        int, typer.Option("--record-bytes", min=1, help="Signed record (payload) size.")
    ] = 400,
    seconds: Annotated[
        float | None,
        typer.Option(
            "--seconds", min=0.1, help="Stop sending after this (steady window: middle 80%)."
        ),
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Testnet folder (default: a temporary one).")
    ] = None,
    reuse: Annotated[
        bool, typer.Option("--reuse", help="Run on the (stopped) testnet already in --dir.")
    ] = False,
    base_port: Annotated[
        int | None,
        typer.Option(
            "--base-port", min=1024, max=65535, help="First node port (default: a free one)."
        ),
    ] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the testnet running.")] = False,
    prefill: Annotated[
        int, typer.Option("--prefill", min=0, help="First fill the log to N records.")
    ] = 0,
    catchup: Annotated[
        int,
        typer.Option(
            "--catchup", min=0, help="Then kill the last node, commit K, time its catch-up."
        ),
    ] = 0,
    mempool: Annotated[
        int | None, typer.Option("--mempool", min=1, help="Nodes' [mempool] max_records.")
    ] = None,
    proposal_wait_ms: Annotated[
        int | None, typer.Option("--proposal-wait-ms", min=0, help="Nodes' proposal_wait_ms.")
    ] = None,
    verify_seconds: Annotated[
        float, typer.Option("--verify-seconds", min=0.1, help="Seconds per verify repetition.")
    ] = 1.0,
    drain: Annotated[
        float, typer.Option("--drain", min=1, help="Seconds to wait for the last commits.")
    ] = 120.0,
    sign_procs: Annotated[
        int, typer.Option("--sign-procs", min=0, help="Signing processes (0: one per CPU).")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Start a fresh N-node testnet, drive pre-signed records through it, report the figures."""
    # imported here: every other command starts without them
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from testnet.bench import BenchOptions, run

    opts = BenchOptions(
        nodes=nodes,
        records=records,
        rate=rate,
        batch=batch,
        window=window,
        record_bytes=record_bytes,
        seconds=seconds,
        directory=directory,
        reuse=reuse,
        base_port=base_port,
        keep=keep,
        prefill=prefill,
        catchup=catchup,
        mempool_records=mempool,
        proposal_wait_ms=proposal_wait_ms,
        verify_seconds=verify_seconds,
        drain_s=drain,
        sign_procs=sign_procs,
    )
    old = signal.signal(signal.SIGTERM, _sigterm)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[text]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("starting", total=1, text="")

    def progress(phase: str, done: float, total: float, text: str) -> None:
        bar.update(task, description=phase, completed=done, total=max(total, 1), text=text)

    try:
        with bar:
            report = run(opts, progress).to_dict()
    finally:
        signal.signal(signal.SIGTERM, old)
    if as_json:
        print_json(report)
    else:
        console.print(_summary(report))
    if report.get("warning"):
        err_console.print(f"warning: {report['warning']}", markup=False)


def _fmt(v: Any, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def _summary(r: dict[str, Any]) -> Table:
    from rich import box
    from rich.table import Table

    t = Table(title=f"suyuan bench: {r['nodes']} nodes", box=box.SIMPLE_HEAD, show_header=False)
    t.add_column("what")
    t.add_column("value")
    lat = r["latency_ms"]
    rows = [
        (
            "committed records/s (steady window)"
            if r.get("steady", True)
            else "committed records/s (whole run: too short for a steady window)",
            _fmt(r["committed_rps"]),
        ),
        ("commit latency p50/p95/p99 ms", " / ".join(_fmt(lat[k]) for k in ("p50", "p95", "p99"))),
        ("committed / accepted / sent", f"{r['committed']:,} / {r['accepted']:,} / {r['sent']:,}"),
        ("RESOURCE_EXHAUSTED", f"{r['resource_exhausted']:,}"),
        ("accepted but lost", f"{r['lost']:,}"),
        ("Ed25519 verify / core / s (same run)", _fmt(r["verify_per_core_per_s"])),
        (f"ceiling ({r['cores']} cores, {r['nodes']} validators)", _fmt(r["ceiling_rps"])),
        ("ratio committed / ceiling", _fmt(r["ratio"], ".2f")),
        ("Status max latency ms", _fmt(r["status_max_ms"])),
        ("record / envelope bytes", f"{r['record_bytes']} / {r['envelope_bytes']}"),
    ]
    b = r["blocks"]["non_empty"]
    rows.append(
        (
            "block records (count min/med/p90/max)",
            f"{b['count']}: {b['min']} / {b['median']:.0f} / {b['p90']:.0f} / {b['max']}",
        )
    )
    for n in r["per_node"]:
        rows.append(
            (
                f"node {n['index']} CPU s (window) / peak RSS MiB",
                f"{_fmt(n['cpu_s_window'], '.1f')} / {_fmt(n['peak_rss_mib'], '.0f')}",
            )
        )
    if r.get("catchup"):
        c = r["catchup"]
        rows.append(("catch-up records/s", _fmt(c["catchup_rps"])))
        rows.append(
            (
                "catch-up CPU us/record (node / with its helper)",
                f"{_fmt(c.get('node_cpu_us_per_record'), '.1f')} / "
                f"{_fmt(c.get('cpu_us_per_record'), '.1f')}",
            )
        )
    for k, v in rows:
        t.add_row(k, v)
    return t
