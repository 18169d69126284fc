"""A regulator's recall: the forward trace of a code, recalled in as few records as fit.

``run_recall`` reads the scope from a node (``Ledger.TraceForward``, every page), signs
recall records (ObjectEvent OBSERVE, bizStep holding, disposition recalled) naming every
affected code not yet recalled, submits them and waits for commit. Codes that are lots or
classes go into the event's quantityList, instances into its epcList, as EPCIS requires.
``find_containers`` then names the containers (cases, pallets: aggregation parents) that
hold affected codes now, outward to the outermost: the labels a holder looks for.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from node.client import LedgerClient, RemoteRuleError
from node.custody import RULE_RECALL, TERMINAL_DISPOSITIONS
from node.envelope import Envelope
from node.epcis import company_digits, is_lot_code, normalize_code
from node.errors import LedgerError, NodeUnavailableError, RulePermissionError
from node.genesis import Genesis
from node.keys import KeyPair
from node.permissions import bare_disposition
from node.records import make_record, sign_record
from proto import services_pb2

CODES_PER_RECORD = 400  # keeps each recall record well under the 64 KiB record limit
_MAX_PAGES = 10_000
MAX_CONTAINER_LOOKUPS = 10_000  # containers looked up outside the scope, at most
#: eventIDs tried for one recall record before a random one (``recall_event_id``)
MAX_EVENT_ID_TRIES = 8
_RECALL_ID_NAMESPACE = uuid.UUID("0c6f2d4e-93a1-4b7e-8f55-2d1b6a9e7c31")
#: how rule event-id names the record holding an eventID: pending, or committed
_HOLDER = re.compile(r"is (on a pending record|already on the chain) \(record ([0-9a-f]{64})\)")
_POLL_S = 0.2
#: how rule event-id refuses a record whose block held another record of its eventID
_IN_BLOCK = "is named by an earlier record of this block"


@dataclass
class RecallResult:
    root: str
    scope: list[services_pb2.TraceNode]
    records: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    containers: list[dict[str, Any]] = field(default_factory=list)  # ``find_containers``
    others: dict[str, list[str]] = field(default_factory=dict)  # producer -> codes left

    def left(self) -> list[str]:
        """Codes of the scope this recall left to their own producer or a regulator."""
        return sorted(c for codes in self.others.values() for c in codes)

    def frontier(self) -> list[str]:
        """The deepest codes reached: where a depth-limited scope stopped."""
        deepest = max((n.depth for n in self.scope), default=0)
        return sorted(n.code for n in self.scope if n.depth == deepest)

    def closed(self) -> list[str]:
        """Codes that were closed before the recall (sold, destroyed or consumed): they are
        recalled too, but no longer in their last custodian's hands."""
        return sorted(n.code for n in self.scope if n.status == "closed")

    def closed_as(self) -> dict[str, str]:
        """The closed codes of ``closed`` and how each went: its last disposition when that
        is a closing one (retail_sold, destroyed...; QA, sold and destroyed read alike),
        else "" (consumed by a transformation, or closed by its bizStep alone: the last
        disposition, in_transit say, tells nothing of how)."""
        out = {}
        for n in self.scope:
            if n.status == "closed":
                how = bare_disposition(n.disposition)
                out[n.code] = how if how in TERMINAL_DISPOSITIONS else ""
        return out

    def earlier(self) -> list[dict[str, Any]]:
        """The recalls already in force on codes of the scope: by whom, the record's log
        index, how many codes (QA: a re-run, the retry after exit 5, named no record)."""
        seen = Counter(
            (n.recalled_by, n.recalled_at)
            for n in self.scope
            if n.recalled and n.HasField("recalled_at")
        )
        return [{"by": by, "log_index": at, "codes": k} for (by, at), k in sorted(seen.items())]

    def by_custodian(self) -> dict[str, list[str]]:
        """The scope's codes this recall covers, by current custodian (those it left to
        their own producers are in ``others``, not here; QA)."""
        left = set(self.left())
        out: dict[str, list[str]] = defaultdict(list)
        for n in self.scope:
            if n.code not in left:
                out[n.custodian or _no_custodian(n)].append(n.code)
        return {k: sorted(v) for k, v in sorted(out.items())}


def forward_scope(
    client: LedgerClient, code: str, *, lot_root: bool = False
) -> tuple[str, list[services_pb2.TraceNode], bool]:
    """(canonical root, every forward node, depth-limited?) following all pages. Codes the
    node does not know are left out, but with ``lot_root`` (a regulator's recall) a root
    lot known only by its items (``_lot_root``)."""
    nodes: list[services_pb2.TraceNode] = []
    page, root, truncated = "", code, False
    for _ in range(_MAX_PAGES):
        resp = client.trace_forward(code, page_token=page)
        root = resp.code
        nodes.extend(resp.nodes)
        truncated = truncated or resp.truncated
        page = resp.next_page_token
        if not page:
            break
    if lot_root:
        nodes = [_lot_root(n) for n in nodes]
    return root, [n for n in nodes if n.status != "unknown" or n.is_class], truncated


def _lot_root(n: services_pb2.TraceNode) -> services_pb2.TraceNode:
    """A lot never commissioned itself (known by the items made in it) as a class to recall:
    recalled, it holds the items made in it later (born recalled; QA: they were not)."""
    if n.status != "unknown" or n.depth != 0 or not is_lot_code(n.code):
        return n
    lot = services_pb2.TraceNode()
    lot.CopyFrom(n)
    lot.is_class = True
    return lot


def _no_custodian(n: services_pb2.TraceNode) -> str:
    """How a code with no custodian is listed: a lot a regulator's recall made has none
    (QA re-check: it read "(unknown)", as a code the node does not know)."""
    known = n.is_class or n.status not in ("", "unknown")  # (``_lot_root``: a lot it names)
    return "(no custodian)" if known else "(unknown)"


def relation_shown(n: services_pb2.TraceNode, by_code: dict[str, services_pb2.TraceNode]) -> str:
    """``n.relation``, marked "(former)" for a container link that no longer holds (QA: a
    case unpacked from a pallet still showed the pallet as its parent): a parent that the
    code reached from is no longer in, or a child no longer in the code reached from."""
    if n.relation == "parent":
        inner = by_code.get(n.parent_code)
        if inner is not None and inner.container != n.code:
            return "parent (former)"
    elif n.relation == "child" and n.container != n.parent_code:
        return "child (former)"
    return n.relation


def find_containers(
    client: LedgerClient, scope: list[services_pb2.TraceNode]
) -> list[dict[str, Any]]:
    """The containers that hold codes of ``scope`` now, and the containers holding those,
    outward: ``{"code", "custodian", "holds": [codes], "container": outer or ""}`` sorted
    by code; ``holds`` lists the scope's codes and inner containers directly inside. A
    container that is in the scope itself is not repeated. Each one outside the scope costs
    one ``TraceBack`` (its own node); at most ``MAX_CONTAINER_LOOKUPS``."""
    in_scope = {n.code: n for n in scope}
    holds: dict[str, list[str]] = defaultdict(list)
    for n in scope:
        if n.container:
            holds[n.container].append(n.code)
    found: dict[str, services_pb2.TraceNode] = {}
    todo = [c for c in holds if c not in in_scope]
    for _ in range(MAX_CONTAINER_LOOKUPS):
        if not todo:
            break
        code = todo.pop()
        if code in found:
            continue
        nodes = client.trace_back(code, max_depth=1, limit=1).nodes
        me = nodes[0] if nodes else services_pb2.TraceNode(code=code)
        found[code] = me
        if me.container:
            holds[me.container].append(code)
            if me.container not in in_scope and me.container not in found:
                todo.append(me.container)
    out = []
    for code in sorted(holds):
        n = in_scope.get(code) or found.get(code) or services_pb2.TraceNode(code=code)
        if code in in_scope:
            continue  # (recalled with the scope: listed under its custodian)
        out.append(
            {
                "code": code,
                "custodian": n.custodian,
                "holds": sorted(holds[code]),
                "container": n.container,
            }
        )
    return out


def _holds(n: services_pb2.TraceNode, member: str) -> bool:
    """Whether a recall of ``member``'s is in force on ``n`` (the one shown, or another)."""
    return n.recalled_by == member or any(r.partition(":")[2] == member for r in n.other_recalls)


def recall_event_id(chain_id: str, author: str, codes: list[str], reason: str, attempt: int) -> str:
    """The eventID of ``author``'s recall record of ``codes``: a name-based UUID of what the
    record recalls and why, so that the same recall run again while its record is pending
    names the same event and rule event-id refuses a second record of it (QA-V: a re-run
    committed a duplicate). ``attempt`` counts up from 0 when the eventID is already on a
    committed record (that recall was declared in error and the codes are recalled again)."""
    name = json.dumps([chain_id, author, "recall", sorted(codes), reason, attempt])
    return f"urn:uuid:{uuid.uuid5(_RECALL_ID_NAMESPACE, name)}"


def recall_event(codes: list[str], classes: set[str], when: str) -> dict[str, Any]:
    """A recall event of ``codes`` (``classes`` in its quantityList), with an eventID so
    that it can be declared in error (QA); ``_commit_chunk`` replaces it by a derived one."""
    ev: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": f"urn:uuid:{uuid.uuid4()}",
        "eventTime": when,
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "holding",
        "disposition": "recalled",
    }
    epcs = [c for c in codes if c not in classes]
    lots = [c for c in codes if c in classes]
    if epcs:
        ev["epcList"] = epcs
    if lots:
        ev["quantityList"] = [{"epcClass": c} for c in lots]
    return ev


def run_recall(
    client: LedgerClient,
    genesis: Genesis,
    key: KeyPair,
    code: str,
    reason: str,
    *,
    category: str = "other",
    timeout: float = 60.0,
) -> RecallResult:
    member = genesis.member(key.name)
    if member is None:
        raise RulePermissionError(
            RULE_RECALL, f"{key.name!r} is not a member of {genesis.chain_id!r}"
        )
    regulator = member.has_role("regulator")
    when = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def made(n: services_pb2.TraceNode) -> bool:
        """``key``'s own to recall: it commissioned it, or the code's GS1 company prefix is
        bound to it (``custody._producer``)."""
        owners = genesis.prefix_owners(company_digits(n.code)) if genesis.binds_prefixes else ()
        return n.commissioned_by == key.name or key.name in owners[1:]

    root, scope, truncated = forward_scope(
        client, code, lot_root=regulator or made(services_pb2.TraceNode(code=normalize_code(code)))
    )
    if not regulator and (not scope or not made(scope[0])):
        raise RulePermissionError(
            RULE_RECALL,
            f"only a regulator, or the code's producer (who commissioned it, or a member its "
            f"GS1 company prefix is bound to), may recall {root}; {key.name!r} is neither",
        )
    result = RecallResult(root, scope, truncated=truncated)
    # a producer recalls what it made; what others made from it is theirs or a regulator's
    mine = [n for n in scope if regulator or made(n)]
    # written too for codes only another member's recall holds: each recall stays in
    # force until its own record is declared in error (a regulator's retraction does not
    # lift a producer's recall, QA-U; a producer's, nothing a regulator ordered, QA); a
    # code a recall of this member's holds is left out (a re-run writes nothing new)
    for n in scope:
        if not n.recalled and not (regulator or made(n)):
            result.others.setdefault(n.commissioned_by or "(unknown)", []).append(n.code)
    todo = [n.code for n in mine if not n.recalled or not _holds(n, key.name)]
    classes = {n.code for n in scope if n.is_class}
    for i in range(0, len(todo), CODES_PER_RECORD):
        chunk = todo[i : i + CODES_PER_RECORD]
        done = f"{len(result.records)} of {-(-len(todo) // CODES_PER_RECORD)} committed before it"
        resp = _commit_chunk(client, genesis, key, recall_event(chunk, classes, when),
                             reason, category, done, timeout)  # fmt: skip
        result.records.append(
            {
                "record_id": resp.record_id.hex(),
                "height": resp.height,
                "log_index": resp.log_index,
                "codes": chunk,
            }
        )
    left = set(result.left())  # (QA: a producer's recall named a case holding only those)
    result.containers = find_containers(client, [n for n in scope if n.code not in left])
    return result


def _commit_chunk(
    client: LedgerClient,
    genesis: Genesis,
    key: KeyPair,
    event: dict[str, Any],
    reason: str,
    category: str,
    done: str,
    timeout: float,
) -> services_pb2.SubmitResponse:
    """Sign and commit one recall record of ``event`` under the eventID
    ``recall_event_id`` derives (the next one while a committed record holds it), or wait
    for an earlier run's pending record of it; the answer names the committed record."""
    codes = list(event.get("epcList", [])) + [q["epcClass"] for q in event.get("quantityList", [])]
    for attempt in range(MAX_EVENT_ID_TRIES + 1):
        if attempt < MAX_EVENT_ID_TRIES:
            event["eventID"] = recall_event_id(genesis.chain_id, key.name, codes, reason, attempt)
        else:
            event["eventID"] = f"urn:uuid:{uuid.uuid4()}"  # (every derived one was taken)
        attrs = {"recall_reason": reason} if reason.strip() else None
        rec = make_record(genesis, key.name, event, category=category, attributes=attrs)
        env = sign_record(rec, key)
        try:
            resp = _submit(client, env, done, timeout)
        except RemoteRuleError as e:
            held = _holder(e)
            if held is None:
                if _IN_BLOCK in str(e) and attempt < MAX_EVENT_ID_TRIES:
                    continue  # (a block held an earlier run's record of it too: see which)
                raise
            # an earlier run's record of ours, pending (waited for) or committed and not
            # declared in error (review: it committed between this run's scope and its
            # submit); else a declared recall of ours, or another author's eventID
            earlier = _earlier_run(client, held, key.name, done, timeout)
            if earlier is None:
                continue
            return earlier
        return services_pb2.SubmitResponse(
            record_id=env.record_id, committed=True, height=resp.height, log_index=resp.log_index
        )
    raise LedgerError(f"no free eventID for a recall record ({done})")


def _unknown(rid: str, done: str, address: str) -> str:
    return (
        f"recall record {rid} ({done}): its outcome is unknown; `suyuan record get {rid} "
        f"--node {address}` tells, and the same recall again recalls only what is not "
        "recalled yet"
    )


def _submit(
    client: LedgerClient, env: Envelope, done: str, timeout: float
) -> services_pb2.SubmitResponse:
    """Submit one recall record and wait for its commit; NodeUnavailableError naming it
    when its outcome is unknown, KeyboardInterrupt with its id as a note."""
    rid = env.record_id.hex()
    try:
        resp = client.submit(env, wait=True, timeout=timeout)
    except NodeUnavailableError as e:
        raise NodeUnavailableError(f"{e} ({_unknown(rid, done, client.address)})") from e
    except KeyboardInterrupt as e:  # (the CLI names the record in flight from the note; QA)
        e.add_note(rid)
        raise
    if not resp.committed:
        raise NodeUnavailableError(
            f"not committed in {timeout:g} s: {_unknown(rid, done, client.address)}"
        )
    return resp


def _holder(refusal: RemoteRuleError) -> bytes | None:
    """The id of the record holding a refused recall's eventID (pending or committed), or
    None when the refusal is of another kind."""
    m = _HOLDER.search(str(refusal)) if refusal.rule == "event-id" else None
    return None if m is None else bytes.fromhex(m.group(2))


def _earlier_run(
    client: LedgerClient, rid: bytes, author: str, done: str, timeout: float
) -> services_pb2.SubmitResponse | None:
    """The commit of a recall record of ``author``'s with this recall's eventID (an earlier
    run's, interrupted or timed out), waited for up to ``timeout`` while pending; None when
    the record is another author's or was declared in error (the next eventID is taken)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = client.get_record(rid, timeout=min(timeout, 10.0)).info
        except LedgerError as e:  # (dropped from the pool meanwhile: a new record is sent)
            if isinstance(e, NodeUnavailableError):
                raise
            return None
        if info.author != author or info.declared_by:
            return None
        if info.height > 0:
            return services_pb2.SubmitResponse(
                record_id=rid, committed=True, height=info.height, log_index=info.log_index
            )
        if time.monotonic() >= deadline:
            raise NodeUnavailableError(
                f"not committed in {timeout:g} s: an earlier run's "
                f"{_unknown(rid.hex(), done, client.address)}"
            )
        try:
            time.sleep(_POLL_S)
        except KeyboardInterrupt as e:  # (named as a record in flight, as ``_submit`` does)
            e.add_note(rid.hex())
            raise
