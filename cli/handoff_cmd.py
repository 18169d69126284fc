"""`suyuan handoff offer|accept|withdraw`: a custody handoff signed by both enterprises."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    WaitOpt,
    WaitTimeoutOpt,
    console,
    counted,
    err_console,
    print_json,
    safe,
    unicode_text,
    write_text_atomic,
)
from cli.draft import load_envelope
from cli.nodeaddr import NodeOpt, local_genesis, resolve_node
from cli.record_cmd import submit_tracked
from cli.trace_cmd import via_text
from node.client import LedgerClient
from node.custody import (
    CONTENTS_ATTRIBUTE,
    EXPIRED_DISPOSITION,
    RULE_AGGREGATED,
    RULE_EVENT_TIME,
    RULE_EXPIRED,
    RULE_HANDOFF_CONTENTS,
    RULE_HELD,
    SALE_MARKS,
    SALE_STEPS,
    contents_change,
    dated_before,
    recalled_may_leave,
)
from node.envelope import Envelope
from node.epcis import is_class_code, normalize_code
from node.errors import (
    InputError,
    LedgerError,
    NodeUnavailableError,
    NotFoundError,
    ReplayError,
    RuleError,
    RulePermissionError,
)
from node.genesis import Genesis
from node.keys import KeyPair, load_key_file
from node.permissions import bare_disposition, bare_step
from node.records import (
    CATEGORIES,
    TraceRecord,
    VerifiedRecord,
    ahead_problem,
    cosign,
    header_time,
    is_date_time,
    make_record,
    offset_ok,
    sign_record,
    verify_envelope,
)
from proto import services_pb2

app = typer.Typer(
    help="Hand custody of codes to another member: offer, then accept (or withdraw).",
    no_args_is_help=True,
)

#: the bizStep of a withdrawal (CBV: objects of a prior outbound process were not shipped)
WITHDRAW_STEP = "void_shipping"
#: the record attribute of a withdrawal naming the offer's record id
WITHDRAWS_ATTRIBUTE = "withdraws_offer"


def _genesis(path: Path | None, node: str | None) -> Genesis:
    if path is not None:
        return Genesis.load(path)
    try:
        target = resolve_node(node)
    except InputError:
        if node is not None:
            raise
        target = None  # (QA: it asked for a node, though --genesis alone makes the offer)
    gpath = target.genesis if target is not None else local_genesis()
    if gpath is None:
        raise InputError(
            "--genesis is required outside a local testnet (with it, an offer is made "
            "offline; --node also checks the codes with a node)"
        )
    return Genesis.load(gpath)


def handoff_event(
    codes: list[str],
    classes: list[str],
    when: str,
    biz_step: str,
    disposition: str,
    read_point: str,
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": f"urn:uuid:{uuid.uuid4()}",  # (so that it can be declared in error)
        "eventTime": when,
        "eventTimeZoneOffset": "+00:00" if when.endswith("Z") else when[-6:],
        "action": "OBSERVE",
        "bizStep": biz_step,
    }
    if disposition:
        ev["disposition"] = disposition
    # a lot or product class given as a CODE goes where EPCIS puts classes
    instances = [c for c in codes if not is_class_code(c)]
    classes = [*[c for c in codes if is_class_code(c)], *classes]
    if instances:
        ev["epcList"] = instances
    if classes:
        ev["quantityList"] = [{"epcClass": c} for c in classes]
    if read_point:
        ev["readPoint"] = {"id": read_point}
    return ev


@app.command("offer")
def offer(
    key: Annotated[Path, typer.Option("--key", help="Sender's key file (the custodian).")],
    to: Annotated[str, typer.Option("--to", help="Receiving member id.")],
    out: Annotated[Path, typer.Option("--out", help="Offer file to write (an envelope).")],
    codes: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="CODE",
            help="Codes to hand over (EPCs, Digital Links); lots may also be given by --lot.",
            callback=unicode_text,
        ),
    ] = None,
    lot: Annotated[list[str] | None, typer.Option("--lot", help="Lot/class code (repeat).")] = None,
    genesis: Annotated[Path | None, typer.Option("--genesis", help="genesis.json.")] = None,
    category: Annotated[
        str | None,
        typer.Option(
            "--category",
            help=", ".join(CATEGORIES) + " (default: the first code's, asked of the node; "
            "offline, other)",
        ),
    ] = None,
    biz_step: Annotated[str, typer.Option("--biz-step", help="CBV bizStep.")] = "shipping",
    disposition: Annotated[str, typer.Option("--disposition")] = "in_transit",
    read_point: Annotated[str, typer.Option("--read-point", help="SGLN of the place.")] = "",
    event_time: Annotated[
        str | None,
        typer.Option(
            "--time",
            help="When the goods left (RFC 3339 with a UTC offset, e.g. "
            "2026-03-02T09:00:00+08:00; default: now, UTC).",
        ),
    ] = None,
    node: NodeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The sender signs a handoff record naming the receiver. Nothing is submitted."""
    g = _genesis(genesis, node)
    k = load_key_file(key)
    if g.member(to) is None:
        raise InputError(f"--to {to!r} is not a member of {g.chain_id!r}")
    if not codes and not lot:
        raise InputError("name at least one code (CODE or --lot) to hand over")
    when = event_time or dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    if not is_date_time(when):
        raise InputError(
            f"--time {when[:40]!r} is not an RFC 3339 date-time with a UTC offset "
            "(e.g. 2026-03-02T09:00:00+08:00)"
        )
    if not (when[-1:] in ("Z", "z") or offset_ok(when[-6:])):
        raise InputError(
            f"--time {when[:40]!r}: its UTC offset must be Z or from -14:00 to +14:00 (EPCIS)"
        )
    event = handoff_event(
        list(codes or []), list(lot or []), when, biz_step, disposition, read_point
    )
    if category is None:
        category = _category_of(node, [*(codes or []), *(lot or [])][0]) or "other"
    rec = make_record(g, k.name, event, category=category, handoff_to=to)
    ahead = ahead_problem(rec, int(dt.datetime.now(dt.UTC).timestamp() * 1000))
    if ahead:  # (the node would refuse the accepted handoff: rule event-time)
        raise RuleError("event-time", f"--time: {ahead}")
    exit_ok = recalled_may_leave(bare_step(biz_step), bare_disposition(disposition))
    selling = bare_step(biz_step) in SALE_STEPS or bare_disposition(disposition) in SALE_MARKS
    contents = _check_held(
        node,
        k.name,
        [*(codes or []), *(lot or [])],
        recalled_ok=exit_ok,
        time_ms=rec.time_ms,
        selling=selling,
    )
    if contents:  # (QA-R: the sender could empty a case between its offer and the accept)
        rec = make_record(
            g, k.name, event, category=category, handoff_to=to,
            attributes={CONTENTS_ATTRIBUTE: contents},
        )  # fmt: skip
    env = sign_record(rec, k)
    write_text_atomic(out, env.to_json())
    if as_json:  # (DESIGN.md: a command that reads a node takes --json; QA)
        print_json({"record_id": env.record_id.hex(), "from": k.name, "to": to,
                    "codes": rec.codes(), "contents": contents, "file": str(out)})  # fmt: skip
    else:
        console.print(f"offer {env.record_id.hex()} from {k.name} to {to} -> {out}")
        for container, inside in contents.items():
            console.print(f"  {safe(container)} holds {counted(len(inside), 'code')}",
                          markup=False)  # fmt: skip


def _category_of(node: str | None, code: str) -> str:
    """The category of ``code``'s first record (its commissioning), asked of the node; ""
    with no node to ask (QA: every handoff was "other", so a regulator filtering by sector
    lost its custody changes)."""
    try:
        target = resolve_node(node)
    except InputError:
        if node is not None:
            raise
        return ""
    try:
        with LedgerClient(target.address, timeout=10) as client:
            first = client.trace_history(code, limit=1).records
    except (NotFoundError, NodeUnavailableError):
        return ""  # (``_check_held`` says which, or warns)
    return str(first[0].category) if first and first[0].category in CATEGORIES else ""


def _check_held(
    node: str | None,
    sender: str,
    codes: list[str],
    *,
    recalled_ok: bool = False,
    time_ms: int | None = None,
    selling: bool = False,
) -> dict[str, list[str]]:
    """Refuse (exit 1) an offer of a code the sender does not hold now (rule custody), that
    is closed, or that is recalled unless the offer is a return or for destruction (rule
    recalled), or dated (``time_ms``) before the sender came to hold it (rule event-time;
    QA re-check: refused only at accept), asked of the node; an offer signed with no node
    to ask (offline, or a local testnet that is down) is not checked, and a warning says
    so. The node judges the accepted handoff again when it is submitted.

    Returns what each offered container holds (``_contents``' form: the offer lists it),
    read in the same pass; {} offline."""
    try:
        target = resolve_node(node)
    except InputError:
        if node is not None:
            raise
        return {}  # (offline signing: no --node and no local testnet)
    offered = {normalize_code(c) for c in codes}
    contents: dict[str, list[str]] = {}
    try:
        with LedgerClient(target.address, timeout=10) as client:
            for code in codes:
                try:
                    me = client.trace_back(code, max_depth=1, limit=1).nodes[0]
                except NotFoundError as e:
                    canon = normalize_code(code)  # (as every custody refusal names it; QA)
                    raise RulePermissionError(
                        "custody", f"offer: {canon} is not known to the node ({e})", canon
                    ) from e
                if not me.custodian:  # (QA re-check: "held by no one")
                    raise RulePermissionError(
                        "custody",
                        f"offer: {me.code} has no custodian (a lot known from a regulator's "
                        "recall or an inspection, never commissioned itself): no one can offer it",
                        code,
                    )
                if me.custodian != sender:
                    raise RulePermissionError(
                        "custody",
                        f"offer: {me.code} is held by {me.custodian or 'no one'}, not {sender}: "
                        "only its custodian can offer it",
                        code,
                    )
                if me.status == "closed" and me.HasField("void_at"):  # (QA: "closed (sold...")
                    raise RuleError(
                        "closed",
                        f"offer: {me.code} is void: the record that made it (log index "
                        f"{me.void_at}) is declared in error; {me.commissioned_by!r} may make "
                        "it again (a corrective event)",
                        code,
                    )
                if me.status == "closed":
                    raise RulePermissionError(
                        "custody", f"offer: {me.code} is closed (sold, consumed or destroyed)", code
                    )
                if me.container and not _moves_with(client, me.container, offered):
                    raise RuleError(
                        RULE_AGGREGATED,
                        f"offer: {me.code} is inside container {me.container}; disaggregate "
                        "it first or offer the container",
                        code,
                    )
                if dated_before(time_ms, me.since_ms):
                    raise RuleError(
                        RULE_EVENT_TIME,
                        f"offer: --time is before {sender} came to hold {me.code} "
                        f"({header_time(me.since_ms)}: its commissioning, or the handoff to "
                        "it); goods leave after they arrive",
                        code,
                    )
                if selling and me.HasField("held_at"):  # (QA: refused only at accept)
                    what = f"{via_text(me.held_via)} was" if me.held_via else "it was"
                    raise RuleError(
                        RULE_HELD,
                        f"offer: {me.code} is held: {what} found non_conformant by "
                        f"{me.held_by} (the record at log index {me.held_at}): it may not be "
                        "sold or dispensed until found conformant",
                        code,
                    )
                if me.disposition == EXPIRED_DISPOSITION and (selling or not recalled_ok):
                    raise RuleError(  # (rule expired, as the node judges it; QA-T)
                        RULE_EXPIRED,
                        f"offer: {me.code}'s disposition is expired: it may only be handed "
                        "off as a return (--disposition returned) or for destruction "
                        "(--biz-step destroying), and not sold or dispensed",
                        code,
                    )
                packed = _packed(client, me.code)
                listed = sorted(n.code for n in packed)
                if listed and len(listed) < _CONTENTS_MAX:
                    contents[me.code] = listed
                held = next((n.code for n in packed if selling and n.HasField("held_at")), "")
                if held:
                    raise RuleError(
                        RULE_HELD,
                        f"offer: {me.code} holds {held}, which is held (found non_conformant): "
                        "it may not be sold or dispensed until found conformant",
                        code,
                    )
                inside = "" if recalled_ok or me.recalled else _recalled_in(packed)
                if (me.recalled or inside) and not recalled_ok:
                    what = f"{me.code} holds {inside}, which is" if inside else f"{me.code} is"
                    raise RulePermissionError(
                        "recalled",
                        f"offer: {what} recalled: it may only be handed off as a return "
                        "(--disposition returned) or for destruction (--biz-step destroying)",
                        code,
                    )
    except NodeUnavailableError:
        if node is not None:
            raise
        err_console.print(
            f"warning: node {target.address} did not answer: the offer's codes were not "
            "checked against the chain (the node judges the handoff when it is submitted)"
        )
        return {}
    return contents


def _moves_with(client: LedgerClient, container: str, offered: set[str]) -> bool:
    """Whether ``container`` or a container it is in is offered too: an item moves only with
    its container (rule aggregated; QA-R: refused only at accept)."""
    for _ in range(64):  # (containment is a forest; bounded all the same)
        if not container or container in offered:
            return bool(container)
        try:
            container = client.trace_back(container, max_depth=1, limit=1).nodes[0].container
        except NotFoundError:
            return False
    return False


def _recalled_in(packed: list[services_pb2.TraceNode]) -> str:
    """A recalled code of ``packed`` (``_packed``), or "": the node refuses a handoff that
    moves it (QA: a case of recalled cans was offered)."""
    return next((n.code for n in packed if n.recalled and n.status != "closed"), "")


_CONTENTS_MAX = 1000  # codes read per container (``_packed``): larger contents go unlisted


def _contents(node: str | None, codes: list[str]) -> dict[str, list[str]]:
    """{container: the codes it holds now, sorted} for each offered code holding any (asked
    of the node; {} offline, or for a container holding more than ``_CONTENTS_MAX``)."""
    try:
        target = resolve_node(node)
    except InputError:
        return {}
    out: dict[str, list[str]] = {}
    try:
        with LedgerClient(target.address, timeout=10) as client:
            for code in map(normalize_code, codes):  # (as the trace names them)
                inside = sorted(n.code for n in _packed(client, code))
                if inside and len(inside) < _CONTENTS_MAX:
                    out[code] = inside
    except (NodeUnavailableError, NotFoundError):
        return {}
    return out


def _check_contents(node: str | None, offered: Any) -> dict[str, list[str]]:
    """Refuse (rule handoff-contents, exit 1) an accept of a container whose contents
    changed since the offer listed them; returns them. Not checked offline (no node)."""
    if not isinstance(offered, dict):
        return {}
    listed = {c: sorted(v) for c, v in offered.items() if isinstance(c, str) and
              isinstance(v, list) and all(isinstance(x, str) for x in v)}  # fmt: skip
    now = _contents(node, list(listed))
    for container, was in listed.items():
        change = contents_change(was, now.get(container, []))
        if change:  # (the node judges it too: rule handoff-contents; said here before signing)
            raise RuleError(
                RULE_HANDOFF_CONTENTS,
                f"accept: {container} no longer holds what the offer listed: {change} since "
                "the offer was signed; ask the sender for a new offer",
                container,
            )
    return listed


def _committed(node: str | None, record_id: bytes) -> bool:
    try:
        with LedgerClient(resolve_node(node).address, timeout=10) as client:
            return client.get_record(record_id).info.height > 0
    except (InputError, NotFoundError, NodeUnavailableError):
        return False


def _packed(client: LedgerClient, container: str) -> list[services_pb2.TraceNode]:
    """The codes ``container`` holds now, at any depth of packing (read once for the held
    and the recalled checks; QA re-check: a sale offer of a case of held tins was signed).
    Only the first page of the forward trace is read (1,000 codes); the node judges the
    rest."""
    nodes = client.trace_forward(container, max_depth=8, limit=1000).nodes
    inside = {container}
    out: list[services_pb2.TraceNode] = []
    for n in nodes:
        if n.relation == "child" and n.parent_code in inside and n.container == n.parent_code:
            inside.add(n.code)
            out.append(n)
    return out


def _load_offer(
    offer_file: Path, key: Path, genesis: Path | None, node: str | None
) -> tuple[Genesis, Envelope, KeyPair, VerifiedRecord]:
    """The genesis, the offer (verified: the sender's signature), and the key file."""
    g = _genesis(genesis, node)
    env = load_envelope(offer_file)
    k = load_key_file(key)
    v = verify_envelope(env, g, require_all_signers=False)
    if not v.record.is_handoff:
        raise InputError(f"{offer_file}: not a handoff offer")
    return g, env, k, v


@app.command("accept")
def accept(
    offer_file: Annotated[Path, typer.Argument(metavar="OFFER.json", help="The sender's offer.")],
    key: Annotated[Path, typer.Option("--key", help="Receiver's key file.")],
    genesis: Annotated[Path | None, typer.Option("--genesis", help="genesis.json.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also save the countersigned envelope.")
    ] = None,
    node: NodeOpt = None,
    wait: WaitOpt = False,
    timeout: WaitTimeoutOpt = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The receiver checks the offer, countersigns it and submits it."""
    g, env, k, v = _load_offer(offer_file, key, genesis, node)
    if v.record.handoff_to != k.name:
        raise InputError(
            f"{offer_file}: the offer names {v.record.handoff_to!r} as receiver, not {k.name!r}"
        )
    both = cosign(env, k) if k.name not in env.signers() else env
    verify_envelope(both, g)
    attrs = v.record.attributes or {}
    try:
        contents = _check_contents(node, attrs.get(CONTENTS_ATTRIBUTE))
    except RuleError:
        if not _committed(node, both.record_id):  # (a retry after it committed answers)
            raise
        contents = {}
    if out is not None:
        write_text_atomic(out, both.to_json())
    target = resolve_node(node)
    try:
        resp, already = submit_tracked(both, target, wait=wait, timeout=timeout, as_json=as_json)
    except ReplayError as e:  # (the offer's own id committed is answered, not raised)
        raise ReplayError(
            f"{e}: {v.record.author} withdrew this offer (suyuan handoff withdraw) or used "
            "its nonce in another record; ask the sender for a new offer"
        ) from None
    info = {
        "record_id": both.record_id.hex(),
        "from": v.record.author,
        "to": k.name,
        "codes": v.record.codes(),
        "contents": contents,
        "committed": resp.committed,
    }
    if resp.committed:
        info |= {"height": resp.height, "log_index": resp.log_index}
    if already:
        info["already_committed"] = True
    if as_json:
        print_json(info)
    else:
        was = "was already committed" if already else "committed"
        state = (
            f"{was} at height {resp.height}, log index {resp.log_index}"
            if resp.committed
            else "submitted"
        )
        console.print(
            f"handoff {info['record_id']} {v.record.author} -> {k.name} {state}", markup=False
        )
        codes = v.record.codes()  # (QA-B: what was countersigned went unsaid)
        shown = ", ".join(safe(c) for c in codes[:10])
        more = f" and {len(codes) - 10} more" if len(codes) > 10 else ""
        console.print(
            f"  {counted(len(codes), 'code')}: {shown}{more}", markup=False, soft_wrap=True
        )
        for container, inside in contents.items():
            console.print(f"  {safe(container)} holds {counted(len(inside), 'code')}, as "
                          "offered", markup=False)  # fmt: skip


@app.command("withdraw")
def withdraw(
    offer_file: Annotated[Path, typer.Argument(metavar="OFFER.json", help="Your offer.")],
    key: Annotated[Path, typer.Option("--key", help="Sender's key file (who made the offer).")],
    genesis: Annotated[Path | None, typer.Option("--genesis", help="genesis.json.")] = None,
    node: NodeOpt = None,
    wait: WaitOpt = False,
    timeout: WaitTimeoutOpt = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The sender withdraws an offer not yet accepted: it submits a record of its own with the
    offer's nonce (an ObjectEvent OBSERVE of the offer's codes, bizStep void_shipping,
    attribute withdraws_offer), so the offer, countersigned or not, can never commit. The
    sender must still hold the codes; a withdrawal that commits first wins over an accept."""
    g, _, k, v = _load_offer(offer_file, key, genesis, node)
    if v.record.author != k.name:
        raise InputError(
            f"{offer_file}: the offer is {v.record.author}'s: only its sender withdraws it, "
            f"not {k.name!r}"
        )
    offered = v.record.event
    instances = [str(c) for c in offered.get("epcList") or []]
    classes = [str(q["epcClass"]) for q in offered.get("quantityList") or [] if "epcClass" in q]
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event = handoff_event(instances, classes, now, WITHDRAW_STEP, "", "")
    offer_id = v.record_id.hex()
    rec = make_record(
        g,
        k.name,
        event,
        category=v.record.category,
        attributes={WITHDRAWS_ATTRIBUTE: offer_id},
        nonce=v.record.nonce,
    )
    out = sign_record(rec, k)
    target = resolve_node(node)
    try:
        resp, _ = submit_tracked(out, target, wait=wait, timeout=timeout, as_json=as_json)
    except ReplayError as e:
        done = _committed_withdrawal(target.address, offer_id, rec.codes(), k.name, rec.nonce)
        if done is None:
            raise ReplayError(_why_not_withdrawn(target.address, v.record_id, str(e))) from None
        out_id, height, index = done
        if as_json:  # (QA-Q: a retried withdraw failed; a retried accept did not)
            print_json({"record_id": out_id, "withdraws_offer": offer_id, "from": k.name,
                        "to": v.record.handoff_to, "codes": rec.codes(), "committed": True,
                        "height": height, "log_index": index, "already": True})  # fmt: skip
        else:
            console.print(
                f"offer {offer_id} was withdrawn already: withdrawal {out_id} committed at "
                f"height {height}, log index {index}",
                markup=False,
                soft_wrap=True,
            )
        return
    info: dict[str, Any] = {
        "record_id": out.record_id.hex(),
        "withdraws_offer": offer_id,
        "from": k.name,
        "to": v.record.handoff_to,
        "codes": rec.codes(),
        "committed": resp.committed,
    }
    if resp.committed:
        info |= {"height": resp.height, "log_index": resp.log_index}
    if as_json:
        print_json(info)
        return
    state = (
        f"committed at height {resp.height}, log index {resp.log_index}: the offer can no "
        "longer be accepted"
        if resp.committed
        else "submitted (the offer can no longer be accepted once it commits)"
    )
    console.print(
        f"withdrawal {info['record_id']} of offer {offer_id} ({k.name} -> "
        f"{v.record.handoff_to}) {state}",
        markup=False,
        soft_wrap=True,
    )


def _committed_withdrawal(
    address: str, offer_id: str, codes: Sequence[str], author: str, nonce: str
) -> tuple[str, int, int] | None:
    """(record id, height, log index) of ``author``'s committed withdrawal of the offer
    ``offer_id`` (hex), under the offer's ``nonce`` (so the offer can never be accepted),
    found in the history of the offer's first code; None if there is none (or the node
    does not answer)."""
    if not codes:
        return None
    try:
        with LedgerClient(address, timeout=10) as client:
            page = ""
            for _ in range(100):  # (pages of the code's history, oldest first)
                history = client.trace_history(codes[0], page_token=page)
                for info in history.records:
                    if info.author != author or bare_step(info.biz_step) != WITHDRAW_STEP:
                        continue
                    env = client.get_record(bytes(info.record_id)).envelope
                    rec = TraceRecord.from_payload(bytes(env.payload), strict=False)
                    withdraws = (rec.attributes or {}).get(WITHDRAWS_ATTRIBUTE)
                    if withdraws == offer_id and rec.nonce == nonce:  # (review: not another's)
                        return bytes(info.record_id).hex(), info.height, info.log_index
                page = history.next_page_token
                if not page:
                    break
    except LedgerError:
        return None
    return None


def _why_not_withdrawn(address: str, offer_id: bytes, refusal: str) -> str:
    """A withdrawal refused as a replay: the offer was accepted (committed, or pending at
    the node), or its nonce is used by another record (withdrawn already)."""
    try:
        with LedgerClient(address, timeout=10) as client:
            info = client.get_record(offer_id).info
    except NotFoundError:
        return f"{refusal}: the offer was withdrawn already, or its nonce used by another record"
    if info.height == 0:
        return (
            f"{refusal}: the offer was accepted and is pending at the node; it cannot be withdrawn"
        )
    return (
        f"the offer was accepted already (committed at height {info.height}, log index "
        f"{info.log_index}): it cannot be withdrawn; a handoff back returns the codes"
    )
