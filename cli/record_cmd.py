"""`suyuan record`: sign, countersign and verify trace records offline; submit and fetch them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    WaitOpt,
    WaitTimeoutOpt,
    console,
    err_console,
    interrupted_submit,
    positive_seconds,
    print_json,
    quorum_lost,
    record_get_hint,
    safe,
    write_text_atomic,
)
from cli.draft import attachment_entry, build_envelope, load_envelope, open_all
from cli.nodeaddr import NodeOpt, NodeTarget, find_testnet, resolve_node
from cli.trace_cmd import declaration_dict, state_line
from node.client import LedgerClient, RemoteRuleError, never_connected
from node.convert import envelope_from_proto
from node.custody import check_commission_prefixes
from node.envelope import Envelope
from node.errors import (
    InputError,
    LedgerError,
    NodeUnavailableError,
    ReplayError,
    VerificationError,
)
from node.genesis import Genesis
from node.keys import KeyPair, load_key_file
from node.permissions import bare_disposition
from node.records import (
    CATEGORIES,
    TraceRecord,
    cosign,
    make_record,
    sign_record,
    verify_envelope,
)
from proto import services_pb2

app = typer.Typer(help="Sign, countersign, verify and submit trace records.", no_args_is_help=True)


CategoryOpt = Annotated[
    str | None, typer.Option("--category", help="Product family: " + ", ".join(CATEGORIES))
]
AttachOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--attach",
        metavar="FILE",
        help="Name FILE in the record by its SHA-256 (a certificate, a lab report); repeatable.",
    ),
]


SignGenesisOpt = Annotated[
    Path | None,
    typer.Option(
        "--genesis",
        help="genesis.json to sign against (default: the testnet's for its own nodes, else "
        "./genesis.json).",
    ),
]
GenesisOpt = Annotated[
    Path | None,
    typer.Option(
        "--genesis",
        help="The consortium's genesis.json (default: ./genesis.json, else the testnet's).",
    ),
]


@app.command("sign")
def sign(
    event_file: Annotated[
        Path,
        typer.Argument(metavar="EVENT.json", help="EPCIS 2.0 event JSON (or a draft)."),
    ],
    key: Annotated[Path, typer.Option("--key", help="Author's key file.")],
    out: Annotated[Path, typer.Option("--out", help="Envelope file to write.")],
    genesis: GenesisOpt = None,
    category: CategoryOpt = None,
    attach: AttachOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Sign an EPCIS event as a trace record; writes a DSSE envelope. Nothing is submitted."""
    env = build_envelope(event_file, key, _default_genesis(genesis), category, attach or ())
    write_text_atomic(out, env.to_json())
    if as_json:
        print_json({"record_id": env.record_id.hex(), "file": str(out)})
    else:
        console.print(f"record {env.record_id.hex()} -> {out}")


def _default_genesis(path: Path | None) -> Genesis:
    """``--genesis``; else ``./genesis.json``; else the local testnet's genesis."""
    if path is not None:
        return Genesis.load(path)
    here = Path("genesis.json")
    if here.exists():
        return Genesis.load(here)
    testnet = find_testnet()
    if testnet is not None:
        return Genesis.load(testnet / "genesis.json")
    raise InputError(
        "--genesis is required (no ./genesis.json and no local testnet): records are signed "
        "and checked against a consortium's genesis"
    )


@app.command("cosign")
def cosign_cmd(
    envelope: Annotated[
        Path,
        typer.Argument(metavar="ENV.json", help="Envelope to countersign."),
    ],
    key: Annotated[Path, typer.Option("--key", help="Countersigner's key file.")],
    out: Annotated[Path, typer.Option("--out", help="Envelope file to write (may be the same).")],
    genesis: GenesisOpt = None,
) -> None:
    """Countersign a handoff as its named receiver.

    The envelope is verified first (every signature present must be a valid member
    signature); a tampered or invalid envelope, or a key that is not the receiver's, is
    refused and nothing is written.
    """
    g = _default_genesis(genesis)
    env = load_envelope(envelope)
    v = verify_envelope(env, g, require_all_signers=False)
    if not v.record.is_handoff:
        raise InputError(f"{envelope}: not a handoff; only a handoff's receiver countersigns")
    k = load_key_file(key)
    if k.name != v.record.handoff_to:
        raise InputError(
            f"{envelope}: the handoff names {v.record.handoff_to!r} as receiver, not {k.name!r}"
        )
    both = cosign(env, k)
    verify_envelope(both, g)  # the countersigner's key is the receiver's key in the genesis
    write_text_atomic(out, both.to_json())
    console.print(f"record {env.record_id.hex()} countersigned by {k.name} -> {out}")


@app.command("verify")
def verify(
    envelope: Annotated[Path, typer.Argument(metavar="ENV.json", help="Envelope to verify.")],
    genesis: GenesisOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Verify an envelope offline as a node would admit it today: every signature a valid
    member signature, the record's schema, role and new-record rules. Exit 0 only if so.
    (A record committed before a rule was added is checked by `suyuan verify` on its
    proof bundle, which applies the rules of a committed record.)"""
    g = _default_genesis(genesis)
    try:
        v = verify_envelope(load_envelope(envelope), g)
        check_commission_prefixes(v.record, g)  # (QA: it said valid; the node refused it)
    except LedgerError as e:
        if as_json:
            print_json({"valid": False, "error": str(e)})
        raise
    info: dict[str, Any] = {
        "valid": True,
        "record_id": v.record_id.hex(),
        "author": v.record.author,
        "signers": list(v.envelope.signers()),
        "event_type": v.record.event_type,
        "biz_step": v.record.biz_step,
        "codes": v.record.codes(),
        "chain_id": g.chain_id,
    }
    if as_json:
        print_json(info)
    else:
        console.print(
            f"valid: record {info['record_id']} by {v.record.author}, "
            f"signed by {', '.join(info['signers'])}"
        )


def _genesis_for(target: NodeTarget, genesis: Path | None) -> Genesis:
    """``--genesis``; else the testnet's, when the node is one of its nodes; else
    ``./genesis.json``, as ``record sign`` reads it (QA: submit asked for --genesis beside
    one). A record signed for another chain is refused by the node, naming both."""
    if genesis is not None:
        return Genesis.load(genesis)
    if target.genesis is not None:
        return Genesis.load(target.genesis)
    raise InputError(
        f"--genesis is required: no ./genesis.json, and node {target.address} is not a node "
        "of the local testnet ($SUYUAN_TESTNET, else ./testnet), whose genesis would be used"
    )


@app.command("submit")
def submit(
    event_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="EVENT.json", help="EPCIS 2.0 event JSON (or a draft) to sign and submit."
        ),
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Author's key file.")] = None,
    envelope: Annotated[
        Path | None,
        typer.Option("--envelope", help="Submit an envelope signed elsewhere, as it is."),
    ] = None,
    genesis: SignGenesisOpt = None,
    node: NodeOpt = None,
    category: CategoryOpt = None,
    attach: AttachOpt = None,
    wait: WaitOpt = False,
    timeout: WaitTimeoutOpt = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Sign EVENT.json with --key and submit it, or submit --envelope ENV.json as signed.

    Prints the record id; with --wait also the height and log index once committed.
    """
    if (event_file is None) == (envelope is None):
        raise InputError("give either EVENT.json (with --key) or --envelope ENV.json")
    target = resolve_node(node)
    if envelope is not None:
        if key is not None or category is not None or genesis is not None or attach:
            raise InputError(
                "--envelope is submitted as signed: --key, --category, --genesis and --attach "
                "do not apply"
            )
        env = load_envelope(envelope)
    else:
        assert event_file is not None
        if key is None:
            raise InputError("--key is required to sign EVENT.json")
        env = build_envelope(event_file, key, _genesis_for(target, genesis), category, attach or ())
    _submit_and_report(env, target, wait=wait, timeout=timeout, as_json=as_json)


@app.command("declare")
def declare(
    record_id: Annotated[
        str, typer.Argument(metavar="ID", help="The committed record whose event was wrong.")
    ],
    key: Annotated[
        Path, typer.Option("--key", help="Your key file (the author's, or a regulator's).")
    ],
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="CBV error reason: did_not_occur, incorrect_data (or a URI)."
        ),
    ] = "incorrect_data",
    corrective: Annotated[
        list[str] | None,
        typer.Option("--corrective", help="eventID of an event that corrects it (repeat)."),
    ] = None,
    genesis: SignGenesisOpt = None,
    node: NodeOpt = None,
    wait: WaitOpt = False,
    timeout: WaitTimeoutOpt = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Declare a committed record's event in error (EPCIS 2.0): sign and submit the event
    again, same eventID, with an errorDeclaration (now, --reason, --corrective).

    A closing event (destroyed, sold) is undone on codes nothing happened to since; a
    recall is lifted where that record recalled; a commissioning or a transformation makes
    the codes it made void where nothing acted on them since (closed; their maker may make
    them again once, in a corrective event, keeping any finding or recall on them); the
    rest stays, corrected by new events (README, Design notes). It prints each named
    code's state after.
    """
    rid = parse_record_id(record_id)
    target = resolve_node(node)
    g = _genesis_for(target, genesis)
    k = load_key_file(key)
    with LedgerClient(target.address, timeout=timeout) as client:
        resp = client.get_record(rid)
    if resp.info.height == 0:
        raise InputError(
            f"record {rid.hex()} is not committed yet: only a committed event is declared"
        )
    record = TraceRecord.from_payload(resp.envelope.payload, strict=False)
    if not isinstance(record.event.get("eventID"), str):
        raise InputError(
            f"record {rid.hex()} has no eventID: EPCIS declares an event by its eventID, so "
            "this one cannot be declared in error (record a corrective event)"
        )
    when = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    decl: dict[str, Any] = {"declarationTime": when, "reason": reason}
    if corrective:
        decl["correctiveEventIDs"] = list(corrective)
    event = {k2: v for k2, v in record.event.items() if k2 != "errorDeclaration"}
    event["errorDeclaration"] = decl
    env = sign_record(make_record(g, k.name, event, category=record.category), k)
    committed = _submit_and_report(env, target, wait=wait, timeout=timeout, as_json=as_json)
    if not committed:
        return
    recall = bare_disposition(str(record.event.get("disposition", ""))) == "recalled"
    with LedgerClient(target.address, timeout=timeout) as client:
        freed = []  # (a recall's: every code it named, --json too; QA-Z, review)
        for i, code in enumerate(record.codes()):
            shown = not as_json and i < _SHOWN_CODES
            if not (shown or recall):
                break
            try:
                nodes = client.trace_history(code, limit=1).nodes
            except LedgerError:
                continue
            if nodes and shown:  # (QA: which codes went void, which stayed, was not said)
                console.print(f"  {safe(code)}: {state_line(nodes[0])}")
            if nodes and recall and not nodes[0].recalled:
                freed.append(code)
        if recall:
            _warn_upstream_recalls(client, freed)


def _warn_upstream_recalls(client: LedgerClient, freed: list[str]) -> None:
    """After a recall's declaration: name each code it freed that came from a code another
    recall still holds (QA-X: a producer's and a regulator's recalls of a formula lot were
    declared in error, and its cans were on sale again while the raw-milk lot they were made
    from stayed recalled; no one was told)."""
    for code in freed:
        try:
            back = client.trace_back(code, max_depth=64, limit=1000).nodes
        except LedgerError:
            continue
        held = next((n for n in back[1:] if n.recalled), None)
        if held is not None:
            at = f", log #{held.recalled_at}" if held.HasField("recalled_at") else ""
            err_console.print(
                f"warning: {safe(code)} is no longer recalled, but it came from "
                f"{safe(held.code)} ({held.relation}), still recalled by "
                f"{held.recalled_by or '(unknown)'}{at}: if it is unsafe too, recall it again "
                f"(suyuan recall {safe(code)} --key ..., its producer or a regulator)",
                markup=False,
            )


#: codes whose state ``record declare`` prints after the declaration
_SHOWN_CODES = 20


def submit_tracked(
    env: Envelope, target: NodeTarget, *, wait: bool, timeout: float, as_json: bool
) -> tuple[services_pb2.SubmitResponse, bool]:
    """Submit a signed record; returns the node's answer and whether the record was
    committed already (a retry). Every outcome that leaves the record's fate unknown (no
    answer, an interruption, ``wait`` timing out) names the record on stderr and, with
    ``as_json``, on stdout, then raises (exit codes: README). ``record submit``, ``record
    declare`` and ``handoff accept`` report through here."""
    rid = env.record_id.hex()

    def unknown(err: str, sent: bool = True) -> None:  # (a program reads stdout, as on success)
        if as_json:
            print_json({"record_id": rid, "node": target.address, "committed": False,
                        "sent": sent, "error": err})  # fmt: skip

    already = False
    with LedgerClient(target.address, timeout=timeout) as client:
        try:
            resp = client.submit(env, wait=wait)
        except ReplayError as refusal:
            # this very record committed already (a retry after an uncertain outcome): the
            # answer a retry wants is where, with exit 0; a nonce reused by another record
            # is still the refusal it is
            resp = client.committed_already(env.record_id, refusal)
            already = True
        except RemoteRuleError as refusal:
            # the same event by the same author, signed anew (a re-run of `record submit
            # EVENT.json`: its eventID is derived, its nonce is not) and committed already
            resp = client.committed_same_event(env, refusal)
            already = True
        except NodeUnavailableError as e:  # the record may have reached the node: name it
            sent = not never_connected(e)
            if sent:
                err = NodeUnavailableError(
                    f"{e} (record {rid}: its outcome is unknown; "
                    f"{record_get_hint(rid, target.address)} tells)"
                )
            else:
                err = NodeUnavailableError(f"{e} (record {rid} was not sent: no connection)")
            unknown(str(err), sent)
            raise err from e
        except KeyboardInterrupt:
            unknown("interrupted")
            raise interrupted_submit(rid, target.address) from None
        stalled = quorum_lost(client) if not resp.committed else ""
    if stalled and not wait:  # (QA-P: "accepted (not yet committed)" and no word of it)
        err_console.print(
            f"warning: record {rid} is accepted, not committed{stalled}; it commits when "
            "the quorum is back",
            markup=False,
        )
    if wait and not resp.committed:
        err = NodeUnavailableError(
            f"record {rid} was accepted by {target.address} but not committed in time"
            f"{stalled}; it may still commit: {record_get_hint(rid, target.address)} tells "
            "(a new signing of the event would be another record)"
        )
        unknown(str(err))
        raise err
    return resp, already


def _submit_and_report(
    env: Envelope, target: NodeTarget, *, wait: bool, timeout: float, as_json: bool
) -> bool:
    """Submit a signed record and report where it is; whether it is committed."""
    resp, already = submit_tracked(env, target, wait=wait, timeout=timeout, as_json=as_json)
    record_id = (resp.record_id or env.record_id).hex()
    info: dict[str, Any] = {
        "record_id": record_id,
        "node": target.address,
        "committed": resp.committed,
    }
    if resp.committed:
        info["height"] = resp.height
        info["log_index"] = resp.log_index
    if already:
        info["already_committed"] = True
    signed = env.record_id.hex()
    if signed != record_id:  # this signing's record was not needed: its event is committed
        info["signed_record_id"] = signed
    if as_json:
        print_json(info)
    elif resp.committed:
        was = " was already" if already else ""
        earlier = " (this event, by this author, from an earlier signing)"
        console.print(
            f"record {record_id}{was} committed at height {resp.height}, log index {resp.log_index}"
            + (earlier if signed != record_id else "")
        )
    else:
        console.print(f"record {record_id} accepted by {target.address} (not yet committed)")
    return bool(resp.committed)


def _check_member_key(
    key: KeyPair, record: TraceRecord, genesis: Path | None, testnet: Path | None
) -> None:
    """Refuse a key file that is not its member's key in the record's genesis (QA: another
    key under the name farm was told "not sealed for farm"): ``--genesis`` (which must be
    the record's chain), else ``./genesis.json``, else the testnet's, the first that is the
    record's chain; unchecked if none is."""
    if genesis is not None:
        g = Genesis.load(genesis)
        if g.hash.hex() != record.genesis:
            raise InputError(
                f"{genesis}: the record is of another chain ({record.genesis[:16]}...)"
            )
    else:
        here = Path("genesis.json")
        found = [c for c in (here if here.exists() else None, testnet) if c is not None]
        chains = (Genesis.load(c) for c in found)
        match = next((c for c in chains if c.hash.hex() == record.genesis), None)
        if match is None:
            return
        g = match
    member = g.member(key.name)
    if member is None or member.public_key != key.public_key:
        raise InputError(
            f"key file: its public key is not {key.name!r}'s key in the genesis of "
            f"{g.chain_id!r}, so it opens nothing sealed for {key.name!r}"
        )


def parse_record_id(text: str) -> bytes:
    """A record id as 64 hex characters (SHA-256 of the payload)."""
    try:
        rid = bytes.fromhex(text)
    except ValueError:
        rid = b""
    if len(rid) != 32:
        raise InputError(f"record id must be 64 hex characters, got {text!r}")
    return rid


@app.command("get")
def get(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="Record id (64 hex characters).")],
    node: NodeOpt = None,
    timeout: Annotated[
        float, typer.Option("--timeout", callback=positive_seconds, help="Seconds to wait.")
    ] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    key_file: Annotated[
        Path | None,
        typer.Option("--key", help="Open the sealed attributes sealed for this key's member."),
    ] = None,
    genesis: Annotated[
        Path | None,
        typer.Option(
            "--genesis",
            help="With --key: check the key is its member's (default: ./genesis.json, else "
            "the testnet's; unchecked without one).",
        ),
    ] = None,
    check: Annotated[
        list[Path] | None,
        typer.Option(
            "--attachment",
            metavar="FILE",
            help="Exit 3 unless FILE's SHA-256 is one the record names; repeatable.",
        ),
    ] = None,
) -> None:
    """Fetch a record: where it is in the log (or that it is still pending), and its envelope.

    A record the node holds in its mempool is "pending (not yet committed)"; with --json,
    ``committed`` is false and ``height`` and ``log_index`` are null. With --key, the
    record's sealed attributes that were sealed for that member are opened (``opened``);
    the others are listed by name (``sealed_for_others``). With --attachment, each FILE's
    SHA-256 must be among the record's attachments (exit 3 naming the first that is not).
    """
    rid = parse_record_id(record_id)
    key = load_key_file(key_file) if key_file is not None else None
    held = [attachment_entry(p) | {"file": str(p)} for p in check or ()]
    target = resolve_node(node)
    with LedgerClient(target.address, timeout=timeout) as client:
        resp = client.get_record(rid)
    i = resp.info
    committed = i.height > 0  # blocks start at height 1; a pending record has none
    info: dict[str, Any] = {
        "record_id": (i.record_id or rid).hex(),
        "committed": committed,
        "height": i.height if committed else None,
        "log_index": i.log_index if committed else None,
        "author": i.author,
        "event_type": i.event_type,
        "biz_step": i.biz_step,
        "event_time": i.event_time,
        "codes": list(i.codes),
        "category": i.category,
        "event_id": i.event_id or None,
        "handoff_to": i.handoff_to or None,
        "signers": list(i.signers),
        "error_declaration": declaration_dict(i.error_declaration),
        "declared_by": i.declared_by.hex() or None,
        "envelope": envelope_from_proto(resp.envelope).to_json_dict(),
    }
    record = TraceRecord.from_payload(resp.envelope.payload, strict=False)
    decl = record.error_declaration
    if decl is not None:  # all of it, as signed (QA: only the reason was shown)
        info["error_declaration"] = dict(decl)
    info["attributes"] = dict(record.attributes or {})
    info["sealed"] = sorted(record.sealed or {})  # names only; --key opens
    info["attachments"] = [dict(a) for a in record.attachments]
    digests = {a["sha256"] for a in record.attachments}
    for h in held:
        if h["sha256"] not in digests:
            raise VerificationError(
                f"{h['file']}: SHA-256 {h['sha256']} is not among the "
                f"{len(record.attachments)} attachment digest(s) of record {rid.hex()}"
            )
    if key is not None:
        _check_member_key(key, record, genesis, target.genesis)
        info["opened"], info["sealed_for_others"] = open_all(record, key)
    if as_json:
        print_json(info)
        return
    where = (
        f"at height {i.height}, log index {i.log_index}"
        if committed
        else "pending (not yet committed)"
    )
    console.print(
        f"record {info['record_id']} by {i.author} {where}: {safe(i.event_type)} "
        f"{safe(i.biz_step)} {safe(i.event_time)} codes {safe(', '.join(i.codes)) or '-'}"
    )
    if i.handoff_to:
        console.print(f"handoff to {i.handoff_to}, signed by {' and '.join(i.signers)}")
    if decl is not None:  # (QA: record get never said so)
        why = f" ({safe(str(decl['reason']))})" if decl.get("reason") else ""
        console.print(
            f"ERROR DECLARATION{why} of the event with eventID {safe(i.event_id)}, declared "
            f"{safe(str(decl.get('declarationTime', '-')))}"
        )
        for fix in decl.get("correctiveEventIDs") or ():
            console.print(f"corrective event {safe(str(fix))}")
    if i.declared_by:
        console.print(f"declared in error by record {i.declared_by.hex()}")
    for name, value in info["attributes"].items():
        console.print(f"attribute {safe(name)}: {safe(json.dumps(value, ensure_ascii=False))}")
    if key is None and info["sealed"]:
        names = ", ".join(safe(n) for n in info["sealed"])
        console.print(f"sealed {names} (a recipient opens them with --key)")
    for a in record.attachments:
        kind = f" ({safe(a['media_type'])})" if a.get("media_type") else ""
        console.print(f"attachment {safe(a['name'])}{kind} sha256 {safe(a['sha256'])}")
    for h in held:
        console.print(f"{h['file']} matches the record's attachment digest")
    if key is not None:
        for name, value in info["opened"].items():
            console.print(f"sealed {safe(name)}: {safe(json.dumps(value, ensure_ascii=False))}")
        for name in info["sealed_for_others"]:
            console.print(f"sealed {safe(name)}: (not sealed for {key.name})")
