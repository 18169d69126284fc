"""The README's main job: a local 4-node consortium and the farm-to-table story.

``python -m testnet.demo`` (what ``make demo`` runs):

1. starts a fresh 4-validator testnet on 127.0.0.1 (keys, genesis, one process per node);
2. runs the pig batch's way from farm to table (``testnet.scenario``): commissioning at the
   farm, veterinary inspection, a handoff signed by both enterprises, slaughter and cutting
   (transformations), QR-coded packages (their GS1 Digital Link URIs are printed), cases,
   handoffs to a distributor and a supermarket, retail sales — each record signed by its
   author's own key and submitted to a different node;
   the distributor then commissions a QR code under the plant's GTIN (a counterfeit label):
   refused, rule gs1-prefix (each enterprise's GS1 company prefix is bound to it in the
   genesis, ``scenario.gs1_bindings``);
3. an inspector finds contamination in one package (non_conformant: the shop's attempt to
   sell it is refused, rule held): trace back to the farm batch, trace forward from that
   batch to every affected package, and a regulator's recall;
4. proves one record and verifies the proof offline with only the genesis file;
5. stops every node it started (``--keep`` leaves the testnet running for you to explore).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.tree import Tree

from node.client import LedgerClient
from node.errors import InputError, LedgerError, VerificationError
from node.genesis import Genesis
from node.keys import KeyPair, load_key_file
from node.recall import relation_shown, run_recall
from node.records import TraceRecord, cosign, make_record, sign_record
from node.sealed import binding, open_sealed, private_key, seal_attributes
from node.verify import verify_bundle
from proto import services_pb2
from testnet import manifest as mf
from testnet import net
from testnet.scenario import Draft, counterfeit_code, farm_to_table, gs1_bindings

console = Console(
    highlight=False, soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else 160
)


def _tree(title: str, root: str, nodes: list[services_pb2.TraceNode]) -> Tree:
    tree = Tree(f"[bold]{title}[/] {root}")
    where = {root: tree}
    by_code = {n.code: n for n in nodes}
    for n in nodes:  # (a container it left shows as former: QA, the demo showed it current)
        status = n.status + (", recalled" if n.recalled and n.status != "recalled" else "")
        status += ", held" if n.HasField("held_at") else ""  # (QA: the held package showed
        # as plain "active" in the demo, "active, held" in the CLI)
        desc = f"[dim]{relation_shown(n, by_code)} · {n.custodian or '?'} · {status}[/]"
        if n.depth == 0:
            tree.label = f"[bold]{title}[/] {root}  {desc}"
            continue
        where[n.code] = where.get(n.parent_code, tree).add(f"{n.code}  {desc}")
    return tree


def _at_height(client: LedgerClient, height: int) -> Callable[[], bool]:
    """Whether the node behind ``client`` has applied block ``height``."""
    return lambda: int(client.status().height) >= height


def run(directory: Path, base_port: int, keep: bool, *, fresh: bool = False) -> None:
    """Run the demo on a new testnet in ``directory``; ``fresh``: one there is replaced.

    Raises:
        InputError: ``directory`` holds a testnet and ``fresh`` is false (QA: the demo
            replaced a stopped testnet, its chain, keys and data, without a word).
    """
    if mf.is_testnet_dir(directory) and not fresh:
        raise InputError(
            f"{directory} holds a testnet (its chain, keys and data); the demo makes a new "
            "one: pass --fresh to replace it, or another --dir"
        )
    man = net.up(directory, 4, base_port, fresh=True, gs1_prefixes=gs1_bindings())
    console.rule("[bold]Suyuan 溯源 — a 4-node consortium on this machine")
    try:
        _story(directory, [n.address for n in man.nodes])
    finally:
        if keep:
            console.print(
                f"testnet left running in {directory}; stop it with: "
                f"suyuan testnet down --dir {directory}"
            )
        else:
            stopped = net.down(directory)
            console.print(f"stopped {len(stopped)} node processes")


def _story(directory: Path, addresses: list[str]) -> None:
    genesis = Genesis.load(directory / "genesis.json")
    keys: dict[str, KeyPair] = {}

    def key(name: str) -> KeyPair:
        if name not in keys:
            keys[name] = load_key_file(directory / "keys" / f"{name}.key")
        return keys[name]

    clients = [LedgerClient(a, timeout=30, plain=True) for a in addresses]
    try:
        console.print(f"chain [bold]{genesis.chain_id}[/], identity {genesis.hash.hex()}")
        console.print(f"validators: {', '.join(genesis.validators)} at {', '.join(addresses)}\n")
        sc = farm_to_table()
        console.rule("farm to table")
        committed: list[tuple[str, bytes]] = []
        sealed_record: tuple[Draft, bytes] | None = None
        height = 0
        for i, d in enumerate(sc.drafts):
            rec = make_record(
                genesis,
                d.author,
                d.event,
                category=d.category,
                handoff_to=d.handoff_to,
                attributes=dict(d.attributes) or None,
                sealed=seal_attributes(genesis, d.author, d.sealed_to, d.sealed)
                if d.sealed
                else None,
            )
            env = sign_record(rec, key(d.author))
            if d.handoff_to:
                env = cosign(env, key(d.handoff_to))
            client = clients[i % len(clients)]
            # each step names codes an earlier one committed, via another node: that node
            # must have applied the earlier block before it checks the custody rules
            net.wait_until(
                _at_height(client, height),
                30.0,
                f"{client.address} did not reach height {height}",
            )
            resp = client.submit(env, wait=True)
            height = resp.height
            signers = " + ".join(env.signers())
            console.print(
                f"  [green]✓[/] h{resp.height:<4} #{resp.log_index:<3} {d.note}  "
                f"[dim]({signers} via {client.address})[/]"
            )
            committed.append((d.note, env.record_id))
            if d.sealed:
                sealed_record = (d, env.record_id)
        console.print("\nQR codes on the packages (GS1 Digital Link):")
        for p in sc.packages:
            sold = " (sold)" if p in sc.sold else ""
            console.print(f"  {p}{sold}")

        if sealed_record is not None:
            _open_sealed(clients[0], key, *sealed_record)

        console.rule("a counterfeit label")
        _try_to_counterfeit(clients[1], genesis, key("distributor"), sc.drafts[-1])

        console.rule("contamination found in one package")
        c0 = clients[0]
        _try_to_sell(c0, genesis, key("retailer"), sc.contaminated, sc.drafts[-1])
        back = c0.trace_back(sc.contaminated)
        console.print(_tree("trace back from", back.code, list(back.nodes)))
        fwd = c0.trace_forward(sc.farm_batch)
        console.print(_tree("trace forward from", fwd.code, list(fwd.nodes)))

        console.rule("recall")
        recall = run_recall(
            c0,
            genesis,
            key("regulator"),
            sc.farm_batch,
            "Salmonella found in a sampled package",
            category="meat-products",
        )
        closed = recall.closed_as()
        for custodian, codes in recall.by_custodian().items():
            console.print(f"  [bold]{custodian}[/] holds {len(codes)} affected code(s)")
            for code in codes:  # (how each closed one went: sold, destroyed; else consumed)
                how = closed.get(code)
                gone = (
                    f"  (closed before the recall: {how or 'consumed'})" if code in closed else ""
                )
                console.print(f"    {code}{gone}")
        rid = recall.records[0]["record_id"] if recall.records else ""
        console.print(
            f"recall record {rid[:16]}… committed at height "
            f"{recall.records[0]['height'] if recall.records else '-'}"
        )

        console.rule("proof for an auditor")
        note, record_id = committed[2]
        _prove(c0, genesis, record_id, note, directory)
    finally:
        for c in clients:
            c.close()


def _try_to_sell(
    client: LedgerClient, genesis: Genesis, retailer: KeyPair, code: str, sampled: Draft
) -> None:
    """The shop tries to sell the package the inspector found non_conformant: rule held
    refuses it (per-batch inspection: what an inspection fails stays off the shelf)."""
    event = _event_like(sampled, "OBSERVE", "retail_selling", "retail_sold", code)
    _refused(client, genesis, retailer, event, "the supermarket tries to sell it")


def _try_to_counterfeit(
    client: LedgerClient, genesis: Genesis, forger: KeyPair, last: Draft
) -> None:
    """The distributor prints a QR code under the meat-product plant's GTIN and commissions
    it: rule gs1-prefix refuses it (the plant's GS1 company prefix is bound to the plant in
    the genesis, so only the plant makes codes under it)."""
    event = _event_like(last, "ADD", "commissioning", "active", counterfeit_code())
    said = "the distributor commissions a QR code under the plant's GTIN"
    _refused(client, genesis, forger, event, said)


def _event_like(
    draft: Draft, action: str, step: str, disposition: str, code: str
) -> dict[str, object]:
    """An ObjectEvent on ``code``, at ``draft``'s time."""
    return {
        "type": "ObjectEvent",
        "eventTime": draft.event["eventTime"],
        "eventTimeZoneOffset": draft.event.get("eventTimeZoneOffset", "+08:00"),
        "action": action,
        "bizStep": step,
        "disposition": disposition,
        "epcList": [code],
    }


def _refused(
    client: LedgerClient, genesis: Genesis, author: KeyPair, event: dict[str, object], said: str
) -> None:
    """Submit ``event`` by ``author``, which a rule must refuse: print ``said`` and the
    refusal; raises ``LedgerError`` if it was committed."""
    env = sign_record(make_record(genesis, author.name, event, category="meat-products"), author)
    try:
        client.submit(env, wait=True)
    except LedgerError as e:
        console.print(f"  [red]✗[/] {said}: refused, {e}")
        return
    raise LedgerError(f"{said}: committed, where a rule should have refused it")


def _open_sealed(
    client: LedgerClient, key: Callable[[str], KeyPair], draft: Draft, record_id: bytes
) -> None:
    """Who can read a record's sealed attributes: its recipients, and no one else."""
    console.rule("confidential fields")
    payload = client.get_record(record_id).envelope.payload
    record = TraceRecord.from_payload(payload)
    sealed = record.sealed or {}
    console.print(f"record {record_id.hex()[:16]}… carries sealed {', '.join(sealed)}")
    for member in (*draft.sealed_to, "distributor"):
        for name, text in sealed.items():
            aad = binding(record.genesis, record.author, name)
            ok, value = open_sealed(text, private_key(key(member)), aad)
            shown = f"opens {name} = {value}" if ok else f"cannot open {name}"
            console.print(f"  [bold]{member}[/] {shown}")


def _prove(
    client: LedgerClient, genesis: Genesis, record_id: bytes, note: str, directory: Path
) -> None:
    bundle = client.prove(record_id)
    from google.protobuf import json_format

    path = directory / "proof.json"
    path.write_text(json.dumps(json_format.MessageToDict(bundle), indent=2) + "\n")
    result = verify_bundle(bundle, genesis)
    if not result:
        raise VerificationError(f"the proof of '{note}' did not verify: {result.describe()}")
    console.print(f"[green]verified offline[/]: '{note}' — {result.describe()} — {path}")
    console.print(f"check it yourself: suyuan verify {path} --genesis {directory / 'genesis.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m testnet.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="testnet folder (default: a temp dir)"
    )
    env_port = os.environ.get("SUYUAN_DEMO_PORT", "26750")
    if not env_port.isascii() or not env_port.isdigit() or not 1024 <= int(env_port) <= 65532:
        parser.error(f"SUYUAN_DEMO_PORT={env_port!r} is not a port number in 1024-65532")
    parser.add_argument(
        "--base-port",
        type=int,
        default=int(env_port),
        help="node i listens on 127.0.0.1:(P+i) (default: $SUYUAN_DEMO_PORT or 26750)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the testnet running")
    parser.add_argument(
        "--fresh", action="store_true", help="replace a stopped testnet in --dir (deletes it)"
    )
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="suyuan-demo-"))
    try:
        run(directory, args.base_port, args.keep, fresh=args.fresh)
    except LedgerError as e:
        hint = " (make demo: SUYUAN_DEMO_PORT=P make demo)" if "--base-port" in str(e) else ""
        console.print(f"[red]error:[/] {e}{hint}", soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:  # (QA: a traceback; ``run`` has stopped its nodes by now)
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
