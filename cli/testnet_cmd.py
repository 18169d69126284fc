"""`suyuan testnet`: a local N-node consortium in one folder, with fault injection.

A thin layer over ``testnet.net``; see that module for what each command guarantees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from cli.common import console, err_console, gs1_prefix_option, positive_seconds, print_json
from cli.nodeaddr import TESTNET_ENV
from node.errors import NodeUnavailableError
from testnet import net
from testnet.manifest import DEFAULT_CHAIN_ID

app = typer.Typer(
    help="Run a local N-node consortium: up, status, down, and faults by node index.",
    no_args_is_help=True,
)


def _default_dir() -> Path:
    return Path(os.environ.get(TESTNET_ENV) or "testnet")


DirOpt = Annotated[
    Path | None,
    typer.Option("--dir", help=f"Testnet folder (default: ${TESTNET_ENV} or ./testnet)."),
]
IndexArg = Annotated[int, typer.Argument(metavar="I", help="Node index (0..N-1).", min=0)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", callback=positive_seconds, help="Seconds to wait for nodes to become healthy."
    ),
]


def _state(s: net.NodeStatus) -> str:
    """running (and answering), paused, stopped, or "not answering" (running, no Status)."""
    if s.paused:
        return "paused"
    if not s.running:
        return "stopped"
    return "running" if s.height is not None else "not answering"


def _table(directory: Path, nodes: list[net.NodeStatus] | None = None) -> Table:
    t = Table(title=f"testnet {directory}", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("node", "member", "address", "pid", "state", "height", "head"):
        t.add_column(col, no_wrap=True)
    for s in net.status(directory) if nodes is None else nodes:
        t.add_row(
            str(s.index),
            s.member,
            s.address,
            str(s.pid or "-"),
            _state(s),
            "-" if s.height is None else str(s.height),
            (s.head_hash or "-")[:12],
        )
    return t


@app.command("up")
def up(
    nodes: Annotated[
        int | None, typer.Option("--nodes", help="Number of validator nodes (default 4).", min=1)
    ] = None,
    directory: DirOpt = None,
    base_port: Annotated[
        int | None,
        typer.Option(
            "--base-port",
            min=1024,
            max=65535,
            help="Node i listens on 127.0.0.1:(P+i) (default 26650).",
        ),
    ] = None,
    chain_id: Annotated[
        str | None,
        typer.Option("--chain-id", help=f"Chain id of a new testnet (default {DEFAULT_CHAIN_ID})."),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Replace a stopped testnet in DIR (deletes its data).")
    ] = False,
    gs1_prefix: Annotated[
        list[str] | None,
        gs1_prefix_option(
            "Repeatable, for a new testnet: a GS1 company prefix bound to a "
            "member (e.g. processor=6903456); codes under it are commissioned by that "
            "member only (rule gs1-prefix)."
        ),
    ] = None,
    timeout: TimeoutOpt = net.DEFAULT_UP_TIMEOUT_S,
    as_json: JsonOpt = False,
) -> None:
    """Create (or restart) the testnet in DIR, start every node and wait until all are healthy.

    A stopped testnet in DIR is started again with its data; --fresh replaces it.

    Its members' keys are in DIR/keys: validator0..N-1 and the demo's (farm ... regulator).
    """
    d = directory or _default_dir()
    try:
        net.up(
            d,
            nodes,
            base_port,
            chain_id=chain_id,
            fresh=fresh,
            timeout=timeout,
            gs1_prefixes=gs1_prefix,
        )
    except net.TestnetStartError as e:
        if e.log_tail:
            err_console.print(f"--- last lines of node {e.index}'s log:", markup=False)
            err_console.print(e.log_tail, markup=False, highlight=False)
        raise
    try:
        if as_json:
            print_json({"dir": str(d.resolve()), "nodes": [s.to_dict() for s in net.status(d)]})
            return
        table = _table(d)
    except KeyboardInterrupt:  # (QA: a Ctrl-C before the table left every node running)
        net.down(d)
        raise
    console.print(table)
    console.print(f"keys and genesis in {d.resolve()}; stop with: suyuan testnet down --dir {d}")


@app.command("status")
def status(directory: DirOpt = None, as_json: JsonOpt = False) -> None:
    """Every node's process state, height and head hash; exit 5 unless every node answers.

    The table (or JSON) is printed first in every case; a node that is stopped, paused or
    did not answer in time is then named on stderr, so scripts can test the exit status.
    """
    d = directory or _default_dir()
    nodes = net.status(d)
    if as_json:
        print_json([s.to_dict() for s in nodes])
    else:
        console.print(_table(d, nodes))
    unhealthy = [f"node {s.index} {_state(s)}" for s in nodes if _state(s) != "running"]
    if unhealthy:
        raise NodeUnavailableError(f"testnet {d}: {', '.join(unhealthy)}")


@app.command("down")
def down(
    directory: DirOpt = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", callback=positive_seconds, help="Seconds between SIGTERM and SIGKILL."
        ),
    ] = net.DEFAULT_STOP_TIMEOUT_S,
) -> None:
    """Stop every node of the testnet (SIGTERM, then SIGKILL after --timeout)."""
    d = directory or _default_dir()
    pids = net.down(d, timeout)
    console.print(f"stopped {len(pids)} node(s)" + (f": pids {pids}" if pids else ""))


@app.command("kill")
def kill(index: IndexArg, directory: DirOpt = None) -> None:
    """SIGKILL node I (a crash)."""
    pid = net.kill(directory or _default_dir(), index)
    console.print(f"node {index} (pid {pid}) killed")


@app.command("pause")
def pause(index: IndexArg, directory: DirOpt = None) -> None:
    """SIGSTOP node I (it hangs: connections stay open, nothing answers)."""
    pid = net.pause(directory or _default_dir(), index)
    console.print(f"node {index} (pid {pid}) paused")


@app.command("resume")
def resume(index: IndexArg, directory: DirOpt = None) -> None:
    """SIGCONT node I."""
    pid, was_paused = net.resume(directory or _default_dir(), index)
    if was_paused:
        console.print(f"node {index} (pid {pid}) resumed")
    else:  # (QA: "resumed" was said of a node that was running)
        console.print(f"node {index} (pid {pid}) was not paused: it runs")


@app.command("restart")
def restart(
    index: IndexArg,
    directory: DirOpt = None,
    timeout: TimeoutOpt = net.DEFAULT_UP_TIMEOUT_S,
    resync: Annotated[
        bool,
        typer.Option(
            "--resync",
            help="Node I's store was removed on purpose (its process stopped): sync the log "
            "again and sign (suyuan node start --resync).",
        ),
    ] = False,
) -> None:
    """Stop node I if it runs, start it again with its data, and wait until healthy."""
    d = directory or _default_dir()
    try:
        pid = net.restart(d, index, timeout, resync=resync)
    except net.TestnetStartError as e:
        if e.log_tail:
            err_console.print(f"--- last lines of node {e.index}'s log:", markup=False)
            err_console.print(e.log_tail, markup=False, highlight=False)
        if "start it with --resync" in str(e) and not resync:  # (its store was removed)
            raise net.TestnetStartError(
                f"{e} (here: suyuan testnet restart {index} --resync)", e.index, ""
            ) from e
        raise
    console.print(f"node {index} restarted (pid {pid}) and healthy")
