"""`suyuan node`: run a node, and ask a running node how it is doing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import console, positive_seconds, print_json
from cli.nodeaddr import NodeOpt, resolve_node
from node.client import LedgerClient
from node.genesis import Genesis
from proto import services_pb2

if TYPE_CHECKING:  # (imported where a command runs: other commands start faster)
    from node.store import Store

app = typer.Typer(
    help="Run a node; show a node's status; check a stopped node's store.", no_args_is_help=True
)

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
                "problem": p.problem,
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


def _syncing(info: dict[str, Any]) -> str:
    """ ", syncing", with how far the peers are (QA-S: only --json told)."""
    top = max((p["height"] for p in info["peers"] if p["connected"]), default=0)
    if top > info["height"]:
        return f", syncing (peers at height {top}, {top - info['height']} blocks ahead)"
    return ", syncing"


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
        + (_syncing(info) if info["syncing"] else "")
        + (
            f", idle (height {info['idle_height']} waits for records)"
            if info["idle_height"]
            else ""
        )
    )
    refused = [p for p in info["peers"] if p["problem"]]
    for p in refused:  # (QA-S: only the node's log said why it linked to no peer)
        how = (  # (QA-V: a peer unheard, yet linked; a paused one, linked)
            "not linked"
            if not p["connected"]
            else "one-way"
            if "has sent this node nothing" in p["problem"]
            else "warning"
        )
        console.print(f"{how}: {p['problem']}", markup=False, soft_wrap=True)
    if (
        refused
        and len(refused) == len(info["peers"])
        and all("another chain" in p["problem"] for p in refused)
    ):
        console.print(
            "every peer is on another chain: is this node's genesis file the consortium's?",
            markup=False,
        )
    if info["validators"]:  # (QA: nothing said the chain had lost its quorum)
        n, up, need = info["validators"], info["validators_answering"], info["quorum"]
        stalled = f", under the quorum of {need}: no block can commit" if up < need else ""
        console.print(f"validators answering, as this node sees them: {up} of {n}{stalled}")


def _check_owner(store: Store, member: str, g: Genesis) -> None:
    """Refuse (exit 2) a store another member's node kept, as ``node start`` does (QA-T:
    another member's store 'checked' clean)."""
    from node.errors import ConfigError
    from node.main import store_owner_problem

    m = g.member(member)
    problem = store_owner_problem(store, member, m.public_key, g) if m is not None else ""
    if problem:
        raise ConfigError(f"data_dir: {problem}; move it away and start this node with --resync")


@app.command("check")
def check(
    config: Annotated[Path, typer.Option("--config", help="The stopped node's TOML config file.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Differences to show at most.")] = 20,
    scratch: Annotated[
        Path | None,
        typer.Option(
            "--scratch",
            help="Folder for the replayed store (as large as the store; default: the data "
            "folder). Removed after.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check a stopped node's store: replay its log and compare every index with the replay.

    Every block's certificate is checked against the genesis and its records, chain link and
    log root are checked again; the code states, trace links, code histories, record ids,
    nonces, eventIDs and Merkle nodes of the store must equal those of the replay (made in
    a scratch folder in the data folder, or --scratch, removed after). Exit 4 if they
    differ or a block is damaged: resync the node (README: Design notes, upgrading the
    rules). The node must be stopped.
    """
    import os
    import sys

    from node.chain import EXTRA_DBS
    from node.config import NodeConfig
    from node.errors import ConfigError, DamagedStoreError
    from node.main import CHECK_PID, lock_data_dir
    from node.node import data_path
    from node.statecheck import check_in_child, remove_stale_scratch
    from node.store import Store

    cfg = NodeConfig.load(config)
    try:
        g = Genesis.load(cfg.genesis)
    except ConfigError as e:
        raise ConfigError(f"genesis: {e}") from e
    if not (data_path(cfg) / "data.mdb").is_file():
        raise ConfigError(f"data_dir: {cfg.data_dir} holds no store to check")
    parent = scratch if scratch is not None else cfg.data_dir
    if not parent.is_dir():
        raise ConfigError(f"--scratch: {parent} is not a folder")
    lock = lock_data_dir(cfg.data_dir, checking=True)  # (a running node holds it)
    pid_file = cfg.data_dir / CHECK_PID
    try:
        pid_file.write_text(f"{os.getpid()}\n")
        remove_stale_scratch(parent)
        with Store.open(data_path(cfg), g.hash, create=False, extra_dbs=EXTRA_DBS) as store:
            _check_owner(store, cfg.member, g)  # (QA-T: another member's store passed)
            top = store.head().height
        # (in a child process: LMDB ends the process on some damaged pages; QA-T)
        if as_json or not sys.stdout.isatty():
            report = check_in_child(data_path(cfg), g, scratch_parent=parent, limit=limit)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            with Progress(
                TextColumn("check"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("blocks  {task.fields[records]} records"),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("check", total=top, records=0)

                def tick(height: int, records: int) -> None:
                    bar.update(task, completed=height, records=records)

                report = check_in_child(
                    data_path(cfg), g, scratch_parent=parent, limit=limit, on_block=tick
                )
    finally:
        pid_file.unlink(missing_ok=True)
        lock.close()
    if as_json:
        print_json({"data_dir": str(cfg.data_dir.resolve()), **report.to_dict()})
    summary = f"{report.blocks} blocks, {report.records} records, {report.seconds:.2f} s"
    if report.ok:
        if not as_json:
            console.print(
                f"store checked: {summary}; every index matches a replay of the log",
                markup=False,
            )
        return
    if not as_json:
        for d in report.differences:
            console.print(f"differs: {d.describe()}", markup=False)
    counts = ", ".join(f"{n} in {db}" for db, n in sorted(report.differing.items()))
    raise DamagedStoreError(
        f"store at {data_path(cfg).resolve()} differs from a replay of its own log ({counts}; "
        f"{summary}): its indexes are damaged or were written by other rules; resync this "
        "node (README: Design notes, upgrading the rules: resync each validator)"
    )
