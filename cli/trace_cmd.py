"""`suyuan trace history|back|forward CODE`: where a code has been, came from, went to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.text import Text
from rich.tree import Tree

from cli.common import (
    UINT32_MAX,
    console,
    counted,
    other_chain,
    print_json,
    safe,
    unicode_text,
)
from cli.nodeaddr import NodeOpt, NodeTarget, resolve_node
from node.client import LedgerClient
from node.epcis import is_lot_code
from node.errors import ChainMismatchError, NotFoundError
from node.permissions import bare_disposition, bare_step
from node.recall import relation_shown
from node.trace import MAX_DEPTH
from proto import services_pb2

app = typer.Typer(
    help="Trace a code: its history, its sources, everything downstream.", no_args_is_help=True
)

DepthOpt = Annotated[
    int,
    typer.Option(
        "--max-depth", min=0, max=MAX_DEPTH, help=f"Depth limit (0: the most, {MAX_DEPTH})."
    ),
]
LimitOpt = Annotated[
    int, typer.Option("--limit", min=0, max=UINT32_MAX, help="Page size (0: server default).")
]
PageOpt = Annotated[str, typer.Option("--page", help="Page token from a previous answer.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Follow page tokens to the end.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def node_dict(n: services_pb2.TraceNode) -> dict[str, Any]:
    return {
        "code": n.code,
        "relation": n.relation,
        "depth": n.depth,
        "via": n.parent_code,
        "custodian": n.custodian,
        "status": n.status,
        "commissioned_by": n.commissioned_by,
        "is_class": n.is_class,
        "recalled": n.recalled,
        "recalled_by": n.recalled_by or None,
        "recalled_at": n.recalled_at if n.HasField("recalled_at") else None,
        "disposition": n.disposition or None,
        "container": n.container,
        "held_at": n.held_at if n.HasField("held_at") else None,
        "held_by": n.held_by or None,
        "held_via": n.held_via or None,
        "void_at": n.void_at if n.HasField("void_at") else None,
        "other_recalls": [{"by": by, "log_index": i} for i, by in _other_recalls(n)],
    }


def record_dict(r: Any) -> dict[str, Any]:
    return {
        "record_id": r.record_id.hex(),
        "log_index": r.log_index,
        "height": r.height,
        "author": r.author,
        "event_type": r.event_type,
        "biz_step": r.biz_step,
        "event_time": r.event_time,
        "codes": list(r.codes),
        "event_id": r.event_id or None,
        "handoff_to": r.handoff_to or None,
        "signers": list(r.signers),
        "action": r.action or None,
        "disposition": r.disposition or None,
        "error_declaration": declaration_dict(r.error_declaration),
        "declared_by": r.declared_by.hex() or None,
    }


def declaration_dict(field: str) -> dict[str, Any] | None:
    """``RecordInfo.error_declaration`` for --json: None, or ``{"reason": ...}`` (the
    wire's "-" is a declaration that gives no reason)."""
    if not field:
        return None
    return {"reason": None if field == "-" else field}


def fetch_graph(
    client: LedgerClient,
    code: str,
    forward: bool,
    max_depth: int,
    limit: int,
    page: str,
    follow: bool,
) -> tuple[str, list[services_pb2.TraceNode], str, bool]:
    """Trace nodes, following page tokens when ``follow`` (bounded by the server's limits)."""
    nodes: list[services_pb2.TraceNode] = []
    fn = client.trace_forward if forward else client.trace_back
    root, truncated = code, False
    for _ in range(10_000):
        resp = fn(code, max_depth=max_depth, limit=limit, page_token=page)
        root = resp.code
        nodes.extend(resp.nodes)
        truncated = truncated or resp.truncated
        page = resp.next_page_token
        if not follow or not page:
            break
    return root, nodes, page, truncated


def render_tree(root: str, nodes: list[services_pb2.TraceNode], title: str) -> Tree:
    """A rich tree: every node under the code it was reached from."""
    by_code = {n.code: n for n in nodes}
    tree = Tree(Text.assemble((title, "bold"), " ", root))
    where: dict[str, Tree] = {root: tree}
    for n in nodes:
        if n.code == root and n.depth == 0:
            tree.label = Text.assemble((title, "bold"), " ", root, "  ", (_desc(n), "dim"))
            continue
        parent = where.get(n.parent_code, tree)
        where[n.code] = parent.add(
            Text.assemble(n.code, "  ", (f"{relation_shown(n, by_code)} · {_desc(n)}", "dim"))
        )
    return tree


def _desc(n: services_pb2.TraceNode) -> str:
    if n.status == "unknown" and is_lot_code(n.code):  # (QA-Q: "lot · unknown, unknown")
        return "known by the items made in it"
    status = n.status + (", recalled" if n.recalled and n.status != "recalled" else "")  # (QA:
    # "closed (was recalled)" read as recalled first, then closed; the order is not known here)
    if n.HasField("held_at"):
        status += ", held"
    if n.HasField("void_at"):
        status += ", void"
    if n.disposition == "expired":  # (QA-T: an expired item's history ended "active")
        status += ", expired"
    who = (
        f"custodian {n.custodian}"
        if n.custodian
        else ("unknown" if n.status in ("", "unknown") else "no custodian")
    )
    return f"{who}, {status}"


def _other_recalls(n: services_pb2.TraceNode) -> list[tuple[int, str]]:
    """(log index, author) of the other recalls in force on ``n`` (each holds it too)."""
    out = []
    for e in n.other_recalls:
        at, _, by = e.partition(":")
        if at.isdigit():
            out.append((int(at), by))
    return out


def _recall_note(state: services_pb2.TraceNode, records: list[Any], paged: bool) -> str:
    """Who recalled the code, and where, when it is recalled; a code born recalled (made
    in a recalled lot, from recalled inputs) is recalled by a record of its origin's
    history, not its own (QA: its history showed no recall)."""
    if not state.recalled:
        return ""
    by = f" by {state.recalled_by}" if state.recalled_by else ""
    if not state.HasField("recalled_at"):
        return f" (recalled{by})"
    at = state.recalled_at
    own = any(r.log_index == at for r in records)
    origin = "" if own or paged else "; the recall of what it came from: `suyuan trace back`"
    also = "".join(f"; also by {by}, log #{i}" for i, by in _other_recalls(state))
    return f" (recalled{by}, record at log #{at}{origin}{also})"


def via_text(code: str) -> str:
    """How a hold's source is named: a lot (``node.epcis.is_lot_code``) or a container."""
    return f"its lot {code}" if is_lot_code(code) else f"its container {code}"


def state_line(state: services_pb2.TraceNode, recall: str = "") -> str:
    """A code's state in words: custodian, status, ``recall`` (``_recall_note``), and why
    it is held or void."""
    return f"{_desc(state)}{recall}{_hold_note(state)}{_void_note(state)}"


def _void_note(state: services_pb2.TraceNode) -> str:
    """That the code was never made: the record that made it is declared in error."""
    if not state.HasField("void_at"):
        return ""
    return (
        f" (void: the record that made it, log #{state.void_at}, is declared in error; "
        f"{state.commissioned_by} may make it again in a corrective event)"
    )


def _hold_note(state: services_pb2.TraceNode) -> str:
    """Who found the code (or its lot) non_conformant, and where, when that holds it from
    sale (rule held)."""
    if not state.HasField("held_at"):
        return ""
    what = f"{via_text(state.held_via)} " if state.held_via else ""
    return (
        f" (held: {what}found non_conformant by {state.held_by}, record at log "
        f"#{state.held_at}; not for sale until found conformant)"
    )


@contextlib.contextmanager
def _this_chain(client: LedgerClient, target: NodeTarget) -> Iterator[None]:
    """A code "not known" to a node of another chain than the command's genesis is told
    as that mismatch (``cli.common.other_chain``)."""
    try:
        yield
    except NotFoundError as e:
        why = other_chain(client, target.address, target.genesis)
        if why:
            raise ChainMismatchError(why) from e
        raise


def _graph(
    code: str,
    forward: bool,
    node: str | None,
    max_depth: int,
    limit: int,
    page: str,
    follow: bool,
    as_json: bool,
) -> None:
    target = resolve_node(node)
    with LedgerClient(target.address) as client, _this_chain(client, target):
        root, nodes, nxt, truncated = fetch_graph(
            client, code, forward, max_depth, limit, page, follow
        )
    if as_json:
        print_json(
            {
                "code": root,
                "direction": "forward" if forward else "back",
                "nodes": [node_dict(n) for n in nodes],
                "next_page_token": nxt,
                "truncated": truncated,
            }
        )
        return
    console.print(render_tree(root, nodes, "forward from" if forward else "back from"))
    if truncated:
        console.print(_truncated_hint(nodes, forward, max_depth), style="yellow")
    if nxt:
        console.print(f"more: --page {nxt}  (or --all)")


def _truncated_hint(nodes: list[services_pb2.TraceNode], forward: bool, max_depth: int) -> str:
    """What to do when the walk stopped at its depth limit: raise it, or (at the most the
    node walks, ``MAX_DEPTH``) go on from the deepest codes shown."""
    depth = max_depth or MAX_DEPTH
    if depth < MAX_DEPTH:
        return f"depth limit reached: raise --max-depth (at most {MAX_DEPTH}) to see further"
    deepest = [n.code for n in nodes if n.depth >= depth]
    shown = ", ".join(deepest[:3]) + (f" and {len(deepest) - 3} more" if len(deepest) > 3 else "")
    verb = "forward" if forward else "back"
    return (
        f"depth limit reached ({MAX_DEPTH}, the most one walk goes): to see further, run "
        f"`suyuan trace {verb}` from the deepest codes shown ({shown})"
    )


@app.command("back")
def back(
    code: Annotated[
        str,
        typer.Argument(
            metavar="CODE",
            help="Trace code (EPC URN, GS1 Digital Link, ...).",
            callback=unicode_text,
        ),
    ],
    node: NodeOpt = None,
    max_depth: DepthOpt = 0,
    limit: LimitOpt = 0,
    page: PageOpt = "",
    follow: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Where CODE came from: transformation inputs and containers, back to commissioning."""
    _graph(code, False, node, max_depth, limit, page, follow, as_json)


@app.command("forward")
def forward(
    code: Annotated[str, typer.Argument(metavar="CODE", help="Trace code.", callback=unicode_text)],
    node: NodeOpt = None,
    max_depth: DepthOpt = 0,
    limit: LimitOpt = 0,
    page: PageOpt = "",
    follow: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Everything made from or packed with CODE, with its custodian: the recall scope."""
    _graph(code, True, node, max_depth, limit, page, follow, as_json)


@app.command("history")
def history(
    code: Annotated[str, typer.Argument(metavar="CODE", help="Trace code.", callback=unicode_text)],
    node: NodeOpt = None,
    limit: LimitOpt = 0,
    page: PageOpt = "",
    follow: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Every committed event naming CODE, in log order."""
    target = resolve_node(node)
    records: list[Any] = []
    root = code
    mid = bool(page)  # (records before the given page are not listed)
    with LedgerClient(target.address) as client, _this_chain(client, target):
        for _ in range(10_000):
            resp = client.trace_history(code, limit=limit, page_token=page)
            root = resp.code
            records.extend(resp.records)
            page = resp.next_page_token
            if not follow or not page:
                break
    state = resp.nodes[0] if resp.nodes else None  # (a node of an earlier version sends none)
    if as_json:
        print_json(
            {"code": root, "records": [record_dict(r) for r in records], "next_page_token": page}
            | ({"state": node_dict(state)} if state is not None else {})
        )
        return
    shown = counted(len(records), "event")
    more = " (the first page)" if page else ""
    console.print(Text.assemble(("history of", "bold"), f" {root}: {shown}{more}"))
    # columns as wide as the page's longest (QA: eventTimes with fractions and authors of
    # more than 16 characters pushed the columns out of line)
    tw = max((len(safe(r.event_time)) for r in records), default=0)
    aw = max((len(r.author) for r in records), default=0)
    for r in records:
        step = safe(bare_step(r.biz_step) or "-")  # CBV's word; a custom step as written
        how = " ".join(safe(x) for x in (r.action, bare_disposition(r.disposition)) if x)
        to = f"  -> {r.handoff_to} (countersigned)" if r.handoff_to else ""
        marks = ""
        if r.error_declaration:  # (QA: a declaration looked like the event happening again)
            why = "" if r.error_declaration == "-" else f" ({safe(r.error_declaration)})"
            marks = f"  ERROR DECLARATION{why} of eventID {safe(r.event_id)}"
        elif r.declared_by:
            marks = f"  [declared in error by record {r.declared_by.hex()[:16]}]"
        console.print(  # (data escaped: a newline in a field must not start a line)
            f"  #{r.log_index:<6} {safe(r.event_time):<{max(tw, 28)}} {r.author:<{max(aw, 16)}} "
            f"{safe(r.event_type):<20} {step}{f' ({how})' if how else ''}{to}{marks}"
        )
    if page:
        console.print(f"more: --page {page}  (or --all)")
    if state is not None and state.status == "unknown":  # (a lot known by its items)
        console.print(
            f"no record names {root} itself: a lot known by the items made in it "
            f"(`suyuan trace forward {root}` lists them)",
            markup=False,
            soft_wrap=True,
        )
    elif state is not None:
        recall = _recall_note(state, records, mid or bool(page))
        console.print(f"now: {state_line(state, recall)}")
