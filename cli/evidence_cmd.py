"""`suyuan evidence list|verify`: equivocation evidence nodes observed, checked offline.

``list`` prints what a node kept (``Ledger.ListEvidence``); ``--json`` (or ``--out``) gives
the ``ListEvidenceResponse`` JSON mapping, which ``verify`` accepts as is, as does a single
``Evidence`` JSON object. ``verify`` needs only the genesis file
(``consensus.evidence.check_evidence``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf import json_format

from cli.common import console, print_json, write_text_atomic
from cli.nodeaddr import NodeOpt
from cli.proof_cmd import JsonOpt
from consensus.evidence import check_evidence, evidence_key
from consensus.validators import ValidatorSet
from node import strictjson
from node.errors import InputError, VerificationError, first_line
from node.genesis import Genesis
from node.inputfile import read_input
from proto import consensus_pb2, services_pb2

app = typer.Typer(
    help="Equivocation evidence: list a node's, verify offline.", no_args_is_help=True
)


def _describe(ev: consensus_pb2.Evidence) -> dict[str, Any]:
    kind, validator, height, round_, vtype = evidence_key(ev)
    return {"kind": kind, "validator": validator, "height": height, "round": round_, "type": vtype}


def parse_evidence_json(text: bytes) -> list[consensus_pb2.Evidence]:
    """One ``Evidence`` object, or a ``ListEvidenceResponse`` ({"evidence": [...]})."""
    doc = strictjson.loads(text, "evidence")
    if not isinstance(doc, dict):
        raise InputError(
            f'evidence: expected a JSON object (one Evidence, or {{"evidence": [...]}}), '
            f"not {type(doc).__name__}"
        )
    try:
        if isinstance(doc, dict) and set(doc) <= {"evidence"}:
            strictjson.one_spelling(doc, services_pb2.ListEvidenceResponse.DESCRIPTOR, "evidence")
            resp = services_pb2.ListEvidenceResponse()
            json_format.ParseDict(doc, resp, ignore_unknown_fields=False)
            return list(resp.evidence)
        ev = consensus_pb2.Evidence()
        strictjson.one_spelling(doc, consensus_pb2.Evidence.DESCRIPTOR, "evidence")
        json_format.ParseDict(doc, ev, ignore_unknown_fields=False)
    except (json_format.ParseError, ValueError, TypeError) as e:
        raise InputError(f"evidence: not an Evidence JSON document ({first_line(e)})") from e
    return [ev]


@app.command("list")
def list_(
    node: NodeOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also save as JSON here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the equivocation evidence a node has observed."""
    from cli.nodeaddr import resolve_node
    from node.client import LedgerClient

    target = resolve_node(node)
    with LedgerClient(target.address) as client:
        evs = client.list_evidence()
    resp = services_pb2.ListEvidenceResponse(evidence=evs)
    doc = json_format.MessageToDict(resp, preserving_proto_field_name=True)
    doc.setdefault("evidence", [])  # an empty listing says so: {"evidence": []}, not {}
    if out is not None:
        write_text_atomic(out, json.dumps(doc, indent=2) + "\n")
    if as_json:
        print_json(doc)
        return
    if not evs:
        console.print(f"no evidence on node {target.address}")
    for ev in evs:
        d = _describe(ev)
        console.print(
            f"{d['kind']} equivocation by {d['validator']} at height {d['height']} "
            f"round {d['round']}",
            markup=False,
        )


@app.command("verify")
def verify(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="EVIDENCE.json",
            help="Evidence JSON (from `evidence list --json`).",
        ),
    ],
    genesis: Annotated[Path, typer.Option("--genesis", help="The consortium's genesis.json.")],
    as_json: JsonOpt = False,
) -> None:
    """Verify equivocation evidence offline; exit 0 only if every item proves one."""
    g = Genesis.load(genesis)
    data = read_input(file, "evidence")  # its errors name the file
    try:
        evs = parse_evidence_json(data)
    except InputError as e:
        raise InputError(f"{file}: {e}") from e
    if not evs:  # nothing proven: not a success (an honest chain's listing is empty)
        if as_json:
            print_json({"valid": False, "evidence": []})
        raise InputError(f"{file}: holds no evidence (nothing to verify)")
    vs = ValidatorSet.from_pairs(g.validator_keys())
    results = []
    for ev in evs:
        reason = check_evidence(ev, vs, g.hash, g.chain_id)
        results.append({**_describe(ev), "valid": not reason, "reason": reason})
    if as_json:
        print_json({"valid": all(r["valid"] for r in results), "evidence": results})
    else:
        for r in results:
            status = "valid" if r["valid"] else f"INVALID ({r['reason']})"
            console.print(
                f"{r['kind']} equivocation by {r['validator']} at height {r['height']} "
                f"round {r['round']}: {status}",
                markup=False,
            )
    bad = [r for r in results if not r["valid"]]
    if bad:
        raise VerificationError(f"{file}: evidence {results.index(bad[0])}: {bad[0]['reason']}")
