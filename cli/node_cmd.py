"""`suyuan node`: run a node, and ask a running node how it is doing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import console, positive_seconds, print_json
from cli.nodeaddr import NodeOpt, resolve_node
from node.client import LedgerClient
from proto import services_pb2

app = typer.Typer(help="Run a node; show a node's status.", no_args_is_help=True)

TimeoutOpt = Annotated[
    float,
    typer.Option("--timeout", callback=positive_seconds, help="Seconds to wait for the node."),
]


@app.command("start")
def start(
    config: Annotated[Path, typer.Option("--config", help="The node's TOML config file.")],
    resync: Annotated[
        bool,
        typer.Option(
            "--resync",
            help="This validator's store was moved away on purpose and its old process is "
            "stopped: sync the log again and sign. Without it, a validator whose store "
            "holds no sign state refuses to start (exit 2) if recent blocks carry its "
            "signature: another process may be signing with its key.",
        ),
    ] = False,
) -> None:
    """Run a node in the foreground until SIGTERM or Ctrl-C."""
    from node.main import run_node  # the server: imported only when a node is run

    run_node(config, resync=resync)


def status_dict(st: services_pb2.StatusResponse, address: str) -> dict[str, Any]:
    """The machine form of a node's StatusResponse (bytes as lowercase hex)."""
    return {
        "node": address,
        "chain_id": st.chain_id,
        "genesis_hash": st.genesis_hash.hex(),
        "member": st.member,
        "height": st.height,
        "log_size": st.log_size,
        "head_hash": st.head_hash.hex(),
        "log_root": st.log_root.hex(),
        "round": st.round,
        "mempool_size": st.mempool_size,
        "peers": [
            {
                "address": p.address,
                "member": p.member,
                "height": p.height,
                "connected": p.connected,
            }
            for p in st.peers
        ],
        "syncing": st.syncing,
        "idle_height": st.idle_height,
        "version": st.version,
        "validators": st.validators,
        "validators_answering": st.validators_answering,
        "quorum": st.quorum,
    }


@app.command("status")
def status(
    node: NodeOpt = None,
    timeout: TimeoutOpt = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Height, log size, head hash, round, mempool, peers and sync state of a node."""
    target = resolve_node(node)
    with LedgerClient(target.address, timeout=timeout) as client:
        st = client.status()
    info = status_dict(st, target.address)
    if as_json:
        print_json(info)
        return
    connected = sum(1 for p in info["peers"] if p["connected"])
    console.print(
        f"node {target.address} ({info['member']}, chain {info['chain_id']}): "
        f"height {info['height']}, log size {info['log_size']}, "
        f"head {info['head_hash'][:16] or '-'}, round {info['round']}, "
        f"mempool {info['mempool_size']}, peers {connected}/{len(info['peers'])} connected"
        + (", syncing" if info["syncing"] else "")
        + (
            f", idle (height {info['idle_height']} waits for records)"
            if info["idle_height"]
            else ""
        )
    )
    if info["validators"]:  # (QA: nothing said the chain had lost its quorum)
        n, up, need = info["validators"], info["validators_answering"], info["quorum"]
        stalled = f", under the quorum of {need}: no block can commit" if up < need else ""
        console.print(f"validators answering, as this node sees them: {up} of {n}{stalled}")
