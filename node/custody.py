"""The custody engine: pure, deterministic rules that turn committed records into custody state.

Every node derives the same state from the same log, because ``apply`` depends only on the
view it is given, the record, its signers, the genesis and the record's log index: no clock,
no randomness, no I/O, and iteration orders are those of the record (first-seen code order)
or sorted. Codes are compared in canonical form (``node.epcis.normalize_code``: the URN and
the Digital Link URI of one object are one code); epcClass quantities (lots, e.g.
``urn:epc:class:lgtin:...``) are codes like any other.

How an EPCIS event acts on custody (author = the record's author)
=================================================================

=====================================  ===================================================
event                                  effect (and what must hold first)
=====================================  ===================================================
ObjectEvent ADD (any bizStep)          commission: each code is new ("commission-once"),
                                       or void and its maker's to make again;
                                       author becomes commissioner and custodian; only
                                       enterprise/association members commission codes
                                       (also outputs, implicit parents: "commission-role")
ObjectEvent OBSERVE                    no custody change; author is the custodian
                                       ("custody"), except inspection (below)
ObjectEvent DELETE                     decommission: codes closed; author is custodian
TransactionEvent (any action)          like OBSERVE (business-transaction link only)
AggregationEvent / AssociationEvent    parent: new -> commissioned implicitly to the author;
ADD                                    existing -> in the author's custody and active.
                                       children: in the author's custody, active, not in
                                       another container ("aggregated"); they get the
                                       parent, the parent lists them
                                       (epcClass children, i.e. lots, move like
                                       instances: a lot is in one container at a time)
AggregationEvent / AssociationEvent    children listed (or all, if none listed) must be
DELETE                                 children of the parent ("aggregation"); detached
AggregationEvent / AssociationEvent    like OBSERVE for the parent and the children; the
OBSERVE                                children were seen inside the parent (EPCIS), so
                                       those the ledger does not have inside it are packed
                                       into it as by an ADD (the parent must exist; one in
                                       another container: refused, "aggregated"). Not in a
                                       handoff or a closing event
TransformationEvent                    inputs: in the author's custody, active, not inside
                                       a container. ``inputEPCList`` items are consumed
                                       (closed); ``inputQuantityList`` classes (lots) are
                                       partially consumed and stay active. outputs: new
                                       ("commission-once"), commissioned to the author with
                                       ``inputs`` = all inputs; each input lists the outputs
any event with ``record.handoff``      custody transfer to ``handoff.to`` of the named codes
                                       and everything inside them (children, recursively).
                                       Only ObjectEvent OBSERVE/DELETE, AggregationEvent or
                                       AssociationEvent OBSERVE, TransactionEvent ("handoff").
                                       Author is custodian of every named code; a code
                                       inside a container moves (or closes) only with it
                                       ("aggregated"; observing it alone is fine); both
                                       parties signed
                                       ("handoff-signatures")
terminal: bizStep destroying,          named codes and their contents are closed (after a
decommissioning, retail_selling,       handoff's transfer: handing over for destruction
scrapping, or disposition destroyed,   leaves the receiver as the custodian of a closed
disposed, retail_sold, dispensed       code)
error declaration of a committed      (``node.event_ids`` checked it restates the event and
event (``errorDeclaration``, the       who may declare it) a closing event is undone on each
event's eventID; ``declared``)         named code and its contents whose last record it is
                                       (reopened; a named code with a later record:
                                       refused, "error-declaration"), a recall on those it
                                       holds (``_unrecalled``: another recall in force on
                                       one, ``recalls``, holds it on) and the codes born
                                       recalled from those since:
                                       items made in a recalled lot, outputs of a recalled
                                       transformation (``heirs``); the codes a
                                       commissioning or a transformation made, if nothing
                                       acted on them since, are void (``_void``: closed,
                                       their made-from links ``unlinked``; their maker
                                       makes them again, a corrective event). Nothing
                                       else changes: aggregation, handoff, a commissioning
                                       acted on since are corrected by new events (DELETE,
                                       a handoff back, decommissioning)
an error declaration with no           no state change; author is the custodian or the
committed event (a log from before     commissioner of every code, or an inspector or
the rule)                              regulator ("custody")
inspection: ObjectEvent/Aggregation    an ``inspector`` or ``regulator`` member may record
OBSERVE, bizStep inspecting, sampling, it on codes it does not hold, also closed or
sensor_reporting, no handoff           recalled ones; custody unchanged
recall: disposition recalled or        a ``regulator`` ("recall", permission), or, OBSERVE
bizStep recalling                      without handoff, the producer that commissioned every
                                       named code (its own recall); needs
                                       not hold the codes; named codes and their contents
                                       get ``recalled``; status becomes recalled unless
                                       closed. Transformation outputs are NOT recalled
                                       implicitly: the recall record names every affected
                                       code (``node.trace.trace_forward`` gives the scope),
                                       so each one's history shows the recall. Re-stating
                                       disposition recalled on already recalled codes is
                                       allowed to anyone who may act on them
recalled codes                         may be observed and destroyed or scrapped;
                                       never sold or dispensed (bizStep retail_selling or
                                       dispensing, disposition retail_sold or dispensed, a
                                       persistentDisposition setting either: new records),
                                       nor closed otherwise (decommissioned, any DELETE:
                                       new records); a handoff only with
                                       disposition returned or as a terminal destruction
                                       ("recalled"); no transformation or aggregation
closed codes                           nothing but inspection and recall ("closed")
a close (new records)                  not dated before the latest inspection in force
                                       that named the code (an inspector's or a
                                       regulator's), 15 min allowed ("event-time";
                                       ``CodeState.seen``)
=====================================  ===================================================

Not supported (refused with a rule name): events naming no code ("codes"), a code in two
roles of one event ("duplicate-code"), TransformationEvents split across records by
``transformationID`` (each record stands alone).

Statuses: ``closed`` if closed; else ``recalled`` if recalled; else ``active``.

Invariants of a state reached from the empty state through ``apply``:
  * every code in ``children``/``inputs``/``outputs``/``parent`` has a state;
  * ``c.parent == p``  <=>  ``c in state(p).children``; children share their parent's custodian;
  * ``first_index <= last_index``; ``first_index`` is the commissioning record's log index.

Persistence: ``BlockUpdate.puts()`` yields ``(db, key, value)`` for the store's extra puts,
in the two sub-databases ``node.store`` pre-declares: ``custody``: code -> ``encode_state``;
``edges``: ``F`` upstream NUL downstream -> relation (``output`` | ``child``) and ``B``
downstream NUL upstream -> kind (``input`` | ``parent``). Keys are UTF-8; a prefix scan on
``edge_prefix(FWD|BACK, code)`` lists a code's neighbours in key order. History needs no
extra database: ``BlockUpdate.codes()`` is ``BlockWrite.codes`` and the store's code index
answers it (``puts(with_history=True)`` adds a ``history`` database for other stores).
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import struct
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring as _jstr
from typing import Any, Literal, Protocol

from node.epcis import (
    TRANSFORMATION_PREFIX,
    EventCodes,
    check_event_codes,
    company_digits,
    is_lot_code,
    lot_links,
    normalize_code,
)
from node.errors import DamagedStoreError, RuleError, RulePermissionError
from node.genesis import Genesis, Member
from node.permissions import bare_disposition, bare_step
from node.records import TraceRecord, header_time

Status = Literal["active", "closed", "recalled"]

DB_CUSTODY = "custody"  # code -> encode_state
DB_EDGES = "edges"  # FWD code NUL downstream -> relation; BACK code NUL upstream -> kind
DB_HISTORY = "history"  # optional: code NUL u64be(log index) -> b"" (see CustodyUpdate.puts)
FWD = b"F"
BACK = b"B"

# Rule names (RuleError.rule).
RULE_CODES = "codes"
RULE_DUPLICATE = "duplicate-code"
RULE_COMMISSION_ONCE = "commission-once"
RULE_UNKNOWN = "unknown-code"
RULE_CUSTODY = "custody"
RULE_CLOSED = "closed"
RULE_EVENT_TIME = "event-time"
#: how far a custodian's event may be dated before the moment it came to hold the code
#: (the clocks and habits of two companies' systems: a receipt booked on the hour)
BACKDATE_TOLERANCE_MS = 15 * 60 * 1000
RULE_INSPECTION = "inspection"
RULE_HELD = "held"
RULE_EXPIRED = "expired"
RULE_HANDOFF_CONTENTS = "handoff-contents"
#: a handoff's attribute listing what each offered container holds (``handoff offer``)
CONTENTS_ATTRIBUTE = "offered_contents"
#: the CBV disposition that keeps a code (or the items of a lot) from sale and dispensing
EXPIRED_DISPOSITION = "expired"
#: an inspection's finding that holds a code (and, for a lot, every item made in it) from
#: sale and dispensing (``CodeState.held_at``); "conformant" lifts it
HOLD_DISPOSITION = "non_conformant"
RELEASE_DISPOSITION = "conformant"
MAX_FINDINGS = 64  # findings kept per code (``CodeState.findings``)
MAX_RECALLS = 16  # other recalls in force kept per code (``CodeState.recalls``)
SEEN_KEEP = 4  # event times kept per code (``CodeState.seen``)
#: what sells or dispenses a code, for the rules of new records (rules held, recalled);
#: partially_dispensed leaves the code open
SALE_MARKS = frozenset({"retail_sold", "dispensed", "partially_dispensed"})
_RECALLED_SALE = (
    "a recalled code may not be sold or dispensed; return it (a handoff with disposition "
    "returned) or destroy it"
)
_RECALLED_RETIRED = (
    "a recalled code is closed only by its destruction (bizStep destroying or scrapping, "
    "disposition destroyed or disposed): decommissioning it would retire its identifier "
    "with the goods unaccounted for; return it or destroy it"
)
RULE_RECALLED = "recalled"
RULE_RECALL = "recall"
RULE_AGGREGATED = "aggregated"
RULE_AGGREGATION = "aggregation"
RULE_TRANSFORMATION = "transformation"
RULE_HANDOFF = "handoff"
RULE_HANDOFF_SIGNATURES = "handoff-signatures"
RULE_MEMBER = "member"
RULE_COMMISSION_ROLE = "commission-role"
RULE_GS1_PREFIX = "gs1-prefix"
RULE_DECLARATION = "error-declaration"  # (``node.event_ids`` checks who may declare what)

TERMINAL_STEPS = frozenset({"destroying", "decommissioning", "retail_selling", "scrapping"})
TERMINAL_DISPOSITIONS = frozenset({"destroyed", "disposed", "retail_sold", "dispensed"})
INSPECTION_STEPS = frozenset({"inspecting", "sampling", "sensor_reporting"})
INSPECTION_ROLES = ("inspector", "regulator")
RECALL_ROLES = ("regulator",)
COMMISSION_ROLES = ("enterprise", "association")
RECALL_STEP = "recalling"
RECALL_DISPOSITION = "recalled"
RETURN_DISPOSITIONS = frozenset({"returned"})
SALE_STEPS = frozenset({"retail_selling", "dispensing"})  # refused on recalled codes
SALE_DISPOSITIONS = frozenset({"retail_sold", "dispensed"})
#: dispositions that say a code is fit for sale or use: refused on a recalled code
CLEARING_DISPOSITIONS = frozenset(
    {"active", "available", "sellable_accessible", "sellable_not_accessible"}
)

_SEP = b"\x00"


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class CodeState:
    """Custody state of one canonical trace code.

    ``parent`` is the current container ("" if none) and ``children`` the current contents;
    ``inputs`` are the codes this one was made from (set once, at its transformation) and
    ``outputs`` the codes made from it (appended by later transformations).
    ``first_index``/``last_index``: log indexes of the commissioning and the latest record
    that named, moved, closed or recalled it.
    """

    code: str
    commissioned_by: str
    custodian: str
    status: Status = "active"
    parent: str = ""
    children: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    first_index: int = 0
    last_index: int = 0
    disposition: str = ""
    closed: bool = False
    recalled: bool = False
    is_class: bool = False  # an epcClass (lot / product class), not an instance
    recalled_at: int = -1  # log index of the record that recalled it (-1: not, or unknown)
    recalled_by: str = ""  # that record's author ("": not recalled, or unknown)
    #: the other recalls in force on it, oldest first, each "INDEX:AUTHOR": an earlier one
    #: that a regulator's took over, or a later one that restated it. When the recall at
    #: ``recalled_at`` is declared in error, the latest of these governs in its place, and
    #: the code stays recalled (QA-U: a regulator's retraction lifted the producer's own
    #: recall, and the recalled packs were sold); the last ``MAX_RECALLS`` are kept
    recalls: tuple[str, ...] = ()
    #: its disposition when it was first recalled (expired, in_transit...), given back when
    #: the last recall in force is lifted, unless a record changed it since (review: an
    #: expired tin whose recall was declared in error read "active", and could be sold)
    pre_recall: str = ""
    #: codes born recalled from this one's recall (items commissioned into this lot, outputs
    #: of this transformation, while it was recalled): that recall's lift lifts them too
    heirs: tuple[str, ...] = ()
    #: log index of the record that closed it (a terminal event, or a transformation that
    #: consumed it); -1: open, or closed by a node of an earlier version (then unknown)
    closed_at: int = -1
    #: eventTime (Unix ms) of the record from which its custodian holds it: its
    #: commissioning, or the handoff to it; 0: unknown (a state of an earlier version)
    since_ms: int = 0
    #: the lot an item was commissioned in ("": none, or made by an earlier version)
    lot: str = ""
    #: log index of the finding non_conformant that holds it from sale (-1: not held);
    #: ``held_by``, that record's author (who, or an inspector, may lift it: conformant)
    held_at: int = -1
    held_by: str = ""
    #: the findings in force on it (``_finding``), oldest first, each "INDEX!AUTHOR"
    #: (non_conformant) or "INDEX=AUTHOR" (conformant, one that lifted a hold): ``held_at``
    #: and ``held_by`` are worked out from them (``_standing``), again when one is declared
    #: in error; the last ``MAX_FINDINGS`` are kept
    findings: tuple[str, ...] = ()
    #: the container whose finding holds it ("": its own finding, or not held)
    held_from: str = ""
    #: codes a finding on this container was applied to (its contents then): a declaration
    #: of that finding reaches them after they are unpacked
    found_in: tuple[str, ...] = ()
    #: log index of the record that made it (commissioned it, or a transformation's output),
    #: declared in error: it was never made, so it is closed and may be made again, by its
    #: maker, in a corrective event (-1: not)
    void_at: int = -1
    #: codes it was made from by records declared in error (its lot, a transformation's
    #: inputs): the trace links between them, which the log keeps, no longer count
    unlinked: tuple[str, ...] = ()
    #: the latest inspections that named it (an inspector's or a regulator's; not a
    #: recall, not through its container or lot), each "INDEX@MS": log
    #: index and eventTime (Unix ms); at most ``SEEN_KEEP``, the latest by eventTime,
    #: worked out again when one is declared in error (``_unseen``). A close is not dated
    #: before them (``_check_close_time``); () for states of earlier versions
    seen: tuple[str, ...] = ()

    def with_flags(self, *, closed: bool | None = None, recalled: bool | None = None) -> CodeState:
        c = self.closed if closed is None else closed
        r = self.recalled if recalled is None else recalled
        status: Status = "closed" if c else ("recalled" if r else "active")
        return self.evolve(closed=c, recalled=r, status=status)

    def evolve(self, **changes: Any) -> CodeState:
        """``dataclasses.replace(self, **changes)`` without its walk over the fields and the
        frozen ``__init__`` (one ``object.__setattr__`` per field): the rules copy a state
        for every code a record touches. Unknown field names raise ``TypeError``."""
        if not changes.keys() <= _FIELD_NAMES:
            raise TypeError(f"CodeState has no field {sorted(changes.keys() - _FIELD_NAMES)}")
        new = object.__new__(CodeState)
        d = new.__dict__
        d.update(self.__dict__)
        d.update(changes)
        return new


_STATE_KEYS = {
    "code": "c",
    "commissioned_by": "by",
    "custodian": "cu",
    "status": "s",
    "parent": "p",
    "children": "ch",
    "inputs": "in",
    "outputs": "out",
    "first_index": "i0",
    "last_index": "i1",
    "disposition": "d",
    "closed": "x",
    "recalled": "r",
    "is_class": "k",
    "recalled_at": "ra",
    "recalled_by": "rb",
    "recalls": "rs",
    "pre_recall": "pr",
    "heirs": "h",
    "closed_at": "xa",
    "since_ms": "t",
    "lot": "l",
    "held_at": "ha",
    "held_by": "hb",
    "findings": "f",
    "held_from": "hm",
    "found_in": "fi",
    "void_at": "va",
    "unlinked": "ul",
    "seen": "sn",
}
_STATE_FIELDS = {v: k for k, v in _STATE_KEYS.items()}
_FIELD_NAMES = frozenset(_STATE_KEYS)
_BLANK = CodeState("", "", "")  # every default (``evolve`` starts new states from it)


_ALWAYS = ("code", "commissioned_by", "custodian")
_OPTIONAL = tuple(
    (name, short, getattr(_BLANK, name))
    for name, short in _STATE_KEYS.items()
    if name not in _ALWAYS
)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# encode_state's fields in key order, each with its JSON key prefix and its default
_BY_KEY = tuple(
    (name, f"{_jstr(short)}:", name in _ALWAYS, getattr(_BLANK, name))
    for name, short in sorted(_STATE_KEYS.items(), key=lambda kv: kv[1])
)


def encode_state(state: CodeState) -> bytes:
    """Compact, sorted-key JSON of ``state``; defaults are omitted. Inverse: ``decode_state``.

    Written field by field (the same bytes as ``json.dumps(..., sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` of the short-key dict, which
    ``tests/trace/test_custody_rules.py`` checks): a state is encoded for every code a
    block changes, and the generic encoder's set-up per call cost more than the encoding."""
    d = state.__dict__
    parts: list[str] = []
    try:
        for name, prefix, always, default in _BY_KEY:
            v = d[name]
            if always or v != default:
                if isinstance(v, str):
                    parts.append(prefix + _jstr(v))
                elif isinstance(v, bool):
                    parts.append(prefix + ("true" if v else "false"))
                elif isinstance(v, int):
                    parts.append(prefix + int.__repr__(v))
                elif isinstance(v, tuple) and all(isinstance(x, str) for x in v):
                    parts.append(prefix + "[" + ",".join(map(_jstr, v)) + "]")
                else:
                    raise TypeError(name)
    except TypeError:  # a value of another type (only from a corrupt store): the generic way
        return _encode_state_generic(state)
    return ("{" + ",".join(parts) + "}").encode()


def _encode_state_generic(state: CodeState) -> bytes:
    d: dict[str, Any] = {"c": state.code, "by": state.commissioned_by, "cu": state.custodian}
    for name, short, default in _OPTIONAL:
        v = getattr(state, name)
        if v != default:
            d[short] = list(v) if isinstance(v, tuple) else v
    return _ENCODER.encode(d).encode()


def decode_state(data: bytes) -> CodeState:
    """Parse ``encode_state`` output (a store's value); a corrupt value raises
    ``DamagedStoreError`` (exit 4, DATA_LOSS; QA-T: it was bad input, exit 2)."""
    try:
        d = json.loads(data)
        kw: dict[str, Any] = {
            _STATE_FIELDS[k]: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()
        }
        return CodeState(**kw)
    except (ValueError, KeyError, TypeError) as e:
        raise DamagedStoreError(
            f"store is damaged: a code state does not parse ({e}); stop this node, run "
            "`suyuan node check` and resync it (--resync)"
        ) from e


@dataclass(frozen=True)
class Edge:
    """A directed source edge: ``upstream`` is a source of ``downstream``.

    ``kind`` "input": upstream was an input of the transformation that made downstream;
    "parent": upstream is (or was) a container of downstream; "lot": upstream is the lot
    (LGTIN) that serialised item downstream was commissioned in.
    """

    upstream: str
    downstream: str
    kind: Literal["input", "parent", "lot"]
    log_index: int

    @property
    def forward_relation(self) -> str:
        return _FORWARD[self.kind]


_FORWARD = {"input": "output", "parent": "child", "lot": "item"}


def edge_key(tag: bytes, a: str, b: str) -> bytes:
    """``edges`` key: ``tag`` (FWD or BACK) + a + NUL + b (UTF-8)."""
    return tag + a.encode() + _SEP + b.encode()


def edge_prefix(tag: bytes, code: str) -> bytes:
    """Prefix of ``code``'s downstream (``FWD``) or upstream (``BACK``) entries in ``edges``."""
    return tag + code.encode() + _SEP


def edge_target(key: bytes) -> str:
    """The other code of an ``edges`` key."""
    return key.partition(_SEP)[2].decode()


def history_key(code: str, log_index: int) -> bytes:
    return code.encode() + _SEP + struct.pack(">Q", log_index)


def split_key(key: bytes) -> tuple[str, bytes]:
    """(code, rest) of a ``history`` key."""
    head, _, rest = key.partition(_SEP)
    return head.decode(), rest


# --------------------------------------------------------------------------- views


class CustodyView(Protocol):
    """Read access to committed custody state (the store adapter or ``InMemoryCustody``)."""

    def get(self, code: str) -> CodeState | None: ...


@dataclass(frozen=True)
class CustodyUpdate:
    """What one accepted record changes. ``states`` are complete new states (upserts)."""

    log_index: int
    states: Mapping[str, CodeState]
    edges: tuple[Edge, ...]
    touched: tuple[str, ...]  # codes whose history gains this record (named or moved)

    def puts(self, *, with_history: bool = False) -> Iterator[tuple[str, bytes, bytes]]:
        """(db, key, value) for the store's extra puts, in a deterministic order.

        History is normally kept by the store's own code index (``BlockWrite.codes`` =
        ``touched`` per record); ``with_history`` also emits ``history`` entries.
        """
        for code, st in self.states.items():
            yield DB_CUSTODY, code.encode(), encode_state(st)
        yield from self.edge_puts(with_history=with_history)

    def edge_puts(self, *, with_history: bool = False) -> Iterator[tuple[str, bytes, bytes]]:
        """The puts of ``puts`` other than the code states."""
        for e in self.edges:
            rel = e.forward_relation.encode()
            yield DB_EDGES, edge_key(FWD, e.upstream, e.downstream), rel
            yield DB_EDGES, edge_key(BACK, e.downstream, e.upstream), e.kind.encode()
        if with_history:
            for code in self.touched:
                yield DB_HISTORY, history_key(code, self.log_index), b""


class OverlayView:
    """``base`` plus uncommitted states laid over it (later records of a block see earlier)."""

    def __init__(self, base: CustodyView) -> None:
        self.base = base
        self.pending: dict[str, CodeState] = {}

    def get(self, code: str) -> CodeState | None:
        st = self.pending.get(code)
        return st if st is not None else self.base.get(code)

    def add(self, update: CustodyUpdate) -> None:
        self.pending.update(update.states)


# --------------------------------------------------------------------------- apply


_UNREAD = object()  # ``_Work.read``: not read from the view yet


class _Work:
    """Scratch state for one record: reads through ``changed`` to the view (a plain class
    with slots: one is made per record)."""

    __slots__ = (
        "author",
        "changed",
        "edges",
        "genesis",
        "index",
        "may_commission",
        "new",
        "read",
        "time_ms",
        "touched",
        "view",
    )

    def __init__(
        self,
        view: CustodyView,
        index: int,
        genesis: Genesis,
        author: Member,
        time_ms: int | None = None,
        *,
        new: bool = False,
    ) -> None:
        self.view = view
        self.index = index
        self.genesis = genesis
        self.author = author.id  # the record's author (looked up once, by ``apply``)
        self.may_commission = author.has_role(*COMMISSION_ROLES)
        self.time_ms = time_ms  # the record's eventTime (Unix ms; None if not a date-time)
        self.new = new  # a record not yet committed (``apply``'s ``new``)
        self.changed: dict[str, CodeState] = {}
        self.read: dict[str, CodeState | None] = {}  # the view's answers (it does not change)
        self.edges: list[Edge] = []
        self.touched: dict[str, None] = {}

    def holds_role(self, member: str, roles: tuple[str, ...]) -> bool:
        m = self.genesis.member(member)
        return m is not None and m.has_role(*roles)

    def inspector(self, member: str) -> bool:
        """Whether ``member`` may inspect (``INSPECTION_ROLES``): who may lift a hold."""
        return self.holds_role(member, INSPECTION_ROLES)

    def get(self, code: str) -> CodeState | None:
        st = self.changed.get(code)
        if st is not None:
            return st
        got = self.read.get(code, _UNREAD)  # (a rule reads a code's state more than once)
        if got is _UNREAD:
            got = self.read[code] = self.view.get(code)
        return got  # type: ignore[return-value]

    def need(self, code: str) -> CodeState:
        st = self.get(code)
        if st is None:
            raise RuleError(RULE_UNKNOWN, "code was never commissioned", code)
        return st

    def put(self, st: CodeState) -> None:
        """Record ``st`` as changed, with ``last_index`` raised to this record's index (a
        state already at or past it is kept as is: states are immutable)."""
        if st.last_index < self.index:
            st = st.evolve(last_index=self.index)
        self.changed[st.code] = st
        self.touched[st.code] = None

    def contents(self, code: str) -> list[str]:
        """Codes inside ``code`` (children, recursively), depth-first in child order."""
        out: list[str] = []
        stack = list(reversed(self.need(code).children))
        seen = {code}
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            out.append(c)
            stack.extend(reversed(self.need(c).children))
        return out


class _VoidCodeError(RuleError):
    """A record acts on a void code (``_check_open``; rule closed)."""


def apply(
    view: CustodyView,
    record: TraceRecord,
    signers: Sequence[str],
    genesis: Genesis,
    log_index: int,
    declared: int | None = None,
    *,
    new: bool = False,
) -> CustodyUpdate:
    """Check every custody rule for ``record`` against ``view``; return its effects
    (``_apply``). A logged record (``new`` false) that acts on a void code was committed by
    a version whose declared commissioning left its codes as they were, an annotation: the
    code is made whole again (``_revived``) and the record replays as it was, so that a log
    written before voiding still syncs. A version that voids never commits such a record,
    so a log it wrote replays to the state its validators reached."""
    if new:
        return _apply(view, record, signers, genesis, log_index, declared, new=True)
    revived: dict[str, CodeState] = {}
    base: CustodyView = view
    while True:  # (bounded: each round revives another code, or raises)
        try:
            update = _apply(base, record, signers, genesis, log_index, declared)
        except _VoidCodeError as e:
            st = base.get(e.code)
            if st is None or e.code in revived:
                raise
            revived[e.code] = _revived(st)
            base = OverlayView(view)
            base.pending.update(revived)
            continue
        if not revived:
            return update
        states = {**revived, **update.states}
        return CustodyUpdate(update.log_index, states, update.edges, update.touched)


def _revived(st: CodeState) -> CodeState:
    """``st``, void, as a declared commissioning left a code before voiding: open (unless
    its making closed it), its lot's link counting again."""
    whole = st if st.closed_at == st.void_at else st.with_flags(closed=False)
    unlinked = tuple(u for u in st.unlinked if u != st.lot)
    return whole.evolve(
        void_at=-1, unlinked=unlinked, closed_at=st.closed_at if whole.closed else -1
    )


def _apply(
    view: CustodyView,
    record: TraceRecord,
    signers: Sequence[str],
    genesis: Genesis,
    log_index: int,
    declared: int | None = None,
    *,
    new: bool = False,
) -> CustodyUpdate:
    """Check every custody rule for ``record`` against ``view``; return its effects.

    ``record`` is assumed verified (``node.records.verify_envelope``: signatures, membership,
    bizStep role); ``signers`` are the envelope's signer ids, rechecked for handoffs.
    ``log_index`` is the index the record gets in the log; ``declared``, for an error
    declaration, the log index of the committed record with its eventID. ``new``: a record
    not yet committed (admission, a proposal), which the rules for new records judge too
    (``_check_not_backdated``); a certified block replays without them.
    Raises ``RuleError`` (or its subclass ``RulePermissionError``) naming the rule and the
    code; never mutates ``view``.
    """
    author = genesis.member(record.author)
    if author is None:
        raise RulePermissionError(RULE_MEMBER, f"author {record.author!r} is not a member")
    ev = record.event
    etype = record.event_type
    action = str(ev.get("action", ""))
    step = bare_step(record.biz_step)
    disposition = bare_disposition(str(ev.get("disposition", "")))
    codes = record.roles
    check_event_codes(codes, etype)
    w = _Work(view, log_index, genesis, author, record.time_ms, new=new)

    is_recall = disposition == RECALL_DISPOSITION or step == RECALL_STEP
    terminal = step in TERMINAL_STEPS or disposition in TERMINAL_DISPOSITIONS
    is_regulator = author.has_role(*RECALL_ROLES)
    inspection = (
        author.has_role(*INSPECTION_ROLES)
        and step in INSPECTION_STEPS
        and action == "OBSERVE"
        and etype in ("ObjectEvent", "AggregationEvent", "AssociationEvent")
        and not record.is_handoff
    )

    if record.is_handoff:
        _check_handoff_shape(record, etype, action, signers, codes)
    if new and record.error_declaration is None and w.time_ms is not None:
        _check_not_backdated(w, record, codes)

    if record.error_declaration is not None and declared is not None:
        return _declare(
            w,
            codes,
            declared,
            closing=terminal,
            recall=is_recall,
            transformation=etype == "TransformationEvent",
            commissioning=etype == "ObjectEvent" and action == "ADD",
            tid=transformation_id(ev) if etype == "TransformationEvent" else "",
            new=new,
        )
    if record.error_declaration is not None:
        # An error declaration annotates an earlier event; records are immutable, so it
        # changes no state (corrections are new records). The codes' stakeholders may file it.
        for c in codes.all:
            st = w.need(c)
            if record.author not in (st.custodian, st.commissioned_by) and not author.has_role(
                *INSPECTION_ROLES
            ):
                raise RulePermissionError(
                    RULE_CUSTODY,
                    f"{record.author!r} may not declare an error on a code it neither holds "
                    "nor commissioned",
                    c,
                )
            w.put(st)
        return _done(w)

    # A producer's own recall (主动召回: a drug's marketing-authorisation holder, a food's
    # producer): every named code made by the author (``_producer``), observed, no handoff.
    own_recall = (
        is_recall
        and not is_regulator
        and not record.is_handoff
        and action == "OBSERVE"
        and all(_producer(w, c, record.author) for c in codes.all)
    )
    if is_recall and not is_regulator and not own_recall:
        fresh = [c for c in codes.all if (known := w.get(c)) is None or not known.recalled]
        if fresh:  # (named: the first code the author did not make, else the first)
            bad = [c for c in fresh if not _producer(w, c, record.author)]
            raise RulePermissionError(
                RULE_RECALL,
                f"only a regulator, or the code's producer (who commissioned it, or a member "
                f"its GS1 company prefix is bound to), may recall a code; {record.author!r} "
                "is neither",
                (bad or fresh)[0],
            )

    # Recall (a regulator's, or a producer's own): no custody needed, applies to named codes
    # and their contents.
    if is_recall and (is_regulator or own_recall) and not record.is_handoff and action != "ADD":
        for c in codes.all:  # (a regulator's recall takes over an earlier one: ``_recalled``)
            was = w.get(c) or _made_lot(w, c, c in codes.classes)  # (``_producer``: a lot)
            st = _recalled(was, w.index, record.author, take_over=is_regulator)
            if not st.closed:  # (a closed code keeps how it went: sold, destroyed; QA)
                st = st.evolve(disposition=disposition or st.disposition)
            w.put(st)
            for h in was.heirs:  # (born recalled from a recall of it that holds them still:
                hs = w.need(h)  # recalled alike; review: a restatement passed them by)
                if any(i in _recall_indexes(hs) for i in _recall_indexes(was)):
                    w.put(_recalled(hs, w.index, record.author, take_over=is_regulator))
            for inner in w.contents(c):
                w.put(_recalled(w.need(inner), w.index, record.author, take_over=is_regulator))
        return _done(w)

    if inspection:
        finding = _finding(ev, disposition)
        for c in codes.all:  # (a lot known only by its items is inspected too: ``_made_lot``)
            st = w.get(c) or _made_lot(w, c, c in codes.classes)
            if new:  # (a rule for new records: a logged inspection replays as it was)
                _check_inspection(st, ev, disposition, finding)
            w.put(st.evolve(disposition=disposition or st.disposition))
        _apply_finding(w, codes.all, finding)
        if w.time_ms is not None:
            _note_inspected(w, codes.all, w.time_ms)
        return _done(w)

    # (a persistentDisposition setting a sale too: QA-X, QA-Z, review)
    if new and (
        step in SALE_STEPS or disposition in SALE_MARKS or _persistent(ev, "set", SALE_MARKS)
    ):
        _check_sale(w, codes.all)
    if new and record.is_handoff and record.attributes and CONTENTS_ATTRIBUTE in record.attributes:
        _check_offered_contents(w, record.attributes[CONTENTS_ATTRIBUTE])
    if etype == "TransformationEvent":
        _transform(w, record.author, codes, disposition, transformation_id(ev))
        _link_lots(w, record.author, lot_links(ev, "outputEPCList"))  # outputs made in a lot
    elif etype in ("AggregationEvent", "AssociationEvent") and action in ("ADD", "DELETE"):
        if action == "ADD":
            _aggregate(w, record.author, codes, disposition)
        else:
            _disaggregate(w, record.author, codes)
    elif etype == "ObjectEvent" and action == "ADD":
        for c in codes.all:
            _commission(w, c, record.author, disposition, is_class=c in codes.classes)
        # an item commissioned in a lot is found from the lot (a recall of the lot)
        _link_lots(w, record.author, lot_links(ev))
    else:
        # OBSERVE-like acts (ObjectEvent OBSERVE/DELETE, Transaction, Aggregation OBSERVE).
        named = codes.all
        moving = _moving_set(w, named)
        if etype == "ObjectEvent" and action == "DELETE":
            terminal = True
        splits = record.is_handoff or terminal  # would take a code out of its container
        for c in named:
            st = w.need(c)
            _check_custodian(st, record.author, "act on")
            _check_open(st)
            if splits and st.parent and st.parent not in moving:
                raise RuleError(
                    RULE_AGGREGATED,
                    f"code is inside container {st.parent}; disaggregate it first or act on "
                    "the container",
                    c,
                )
        sale = step in SALE_STEPS or disposition in SALE_DISPOSITIONS
        if sale:
            for c in moving:
                if w.need(c).recalled:
                    raise RuleError(RULE_RECALLED, _RECALLED_SALE, c)
        cleared = _clears_recall(ev, disposition)
        if cleared:
            for c in moving:
                if w.need(c).recalled:
                    raise RuleError(
                        RULE_RECALLED,
                        f"a recalled code cannot be {cleared}: its recall stands until it is "
                        "declared in error (suyuan record declare)",
                        c,
                    )
        if record.is_handoff:
            exit_ok = recalled_may_leave(step, disposition, terminal=terminal)
            for c in moving:
                st = w.need(c)
                if st.recalled and not exit_ok:
                    raise RuleError(
                        RULE_RECALLED,
                        "a recalled code may only be handed off as a return (disposition "
                        "returned) or for destruction (bizStep destroying)",
                        c,
                    )
                if new and not exit_ok and st.disposition == EXPIRED_DISPOSITION:
                    # (QA-T: a handoff's in_transit overwrote expired, and the receiver sold
                    # the tin; a lot's expiry survives its items' handoffs already)
                    raise RuleError(
                        RULE_EXPIRED,
                        "an expired code may only be handed off as a return (disposition "
                        "returned) or for destruction (bizStep destroying); to ship it as "
                        "fit, record its disposition anew first",
                        c,
                    )
        for c in moving:
            st = w.need(c)
            if record.is_handoff:
                st = st.evolve(custodian=record.handoff_to, since_ms=w.time_ms or 0)
            if c in named and disposition:
                st = st.evolve(disposition=disposition)
            w.put(st)
        _apply_finding(w, named, _finding(ev, disposition))
        aggregation = etype in ("AggregationEvent", "AssociationEvent")
        if aggregation and action == "OBSERVE" and not (record.is_handoff or terminal):
            _observe_aggregation(w, record.author, codes, disposition)
    if terminal:
        closing = _moving_set(w, codes.all)
        if new and not record.is_handoff and not _destroys(step, disposition):
            # (QA-X: a recalled can was decommissioned, then read as consumed; QA-Z: by an
            # AggregationEvent DELETE too)
            for c in closing:
                if w.need(c).recalled:
                    raise RuleError(RULE_RECALLED, _RECALLED_RETIRED, c)
        for c in closing:
            w.put(w.need(c).with_flags(closed=True).evolve(closed_at=w.index))
    if new and w.time_ms is not None and (terminal or etype == "TransformationEvent"):
        _check_close_time(w, record, codes.all, w.time_ms)  # (what closes codes it names)
    return _done(w)


def _clears_recall(ev: Mapping[str, Any], disposition: str) -> str:
    """How ``ev`` would say a recalled code is fit for sale or use, or "": a disposition of
    ``CLEARING_DISPOSITIONS``, or EPCIS 2.0's ``persistentDisposition`` unsetting
    ``recalled`` (QA: the custodian of a recalled item published both)."""
    if disposition in CLEARING_DISPOSITIONS:
        return f"marked {disposition}"
    if _persistent(ev, "unset", {RECALL_DISPOSITION}):
        return "unmarked recalled (persistentDisposition unset)"
    put = _persistent(ev, "set", CLEARING_DISPOSITIONS)  # (QA re-check: set sellable_*)
    return f"marked {put} (persistentDisposition set)" if put else ""


def _persistent(ev: Mapping[str, Any], key: str, among: Collection[str]) -> str:
    """The first disposition of ``ev``'s ``persistentDisposition[key]`` (``set`` or
    ``unset``) that is one of ``among`` (CBV's bare word), or ""."""
    pd = ev.get("persistentDisposition")
    listed = pd.get(key) if isinstance(pd, Mapping) else None
    for d in listed if isinstance(listed, list) else ():
        if isinstance(d, str) and bare_disposition(d) in among:
            return bare_disposition(d)
    return ""


def _commissioned_by(st: CodeState | None, member: str) -> bool:
    return st is not None and st.commissioned_by == member


def _producer(w: _Work, code: str, member: str) -> bool:
    """Whether ``member`` made ``code``, for its own recall: it commissioned the code, or
    the genesis binds the code's GS1 company prefix to it (a brand owner, for what its
    contract manufacturer made; and a lot under its prefix never commissioned itself, known
    by its items, which the recall then gives a state, as a regulator's does; QA)."""
    st = w.get(code)
    if _commissioned_by(st, member):
        return True
    if not w.genesis.binds_prefixes or (st is None and not is_lot_code(code)):
        return False
    return member in w.genesis.prefix_owners(company_digits(code))[1:]


def _recalled(st: CodeState, index: int, by: str, *, take_over: bool = False) -> CodeState:
    """``st`` recalled by ``by``'s record at ``index`` (``recalled_at``, ``recalled_by``).
    One already recalled keeps its recall, and this one is noted among the others in force
    (``recalls``); ``take_over`` (a regulator's recall): this one governs, the earlier one
    noted, so that a producer's declaration of its own lifts nothing the regulator ordered
    (QA), and the regulator's declaration leaves the producer's in force (QA-U)."""
    if not st.recalled:
        return st.with_flags(recalled=True).evolve(
            recalled_at=index, recalled_by=by, pre_recall=st.disposition
        )
    if index in _recall_indexes(st):
        return st  # (the same record again: a code named twice, or through a container)
    if not take_over:
        return st.evolve(recalls=_pushed(st.recalls, index, by))
    if st.recalled_at < 0:  # (an earlier version's recall, of unknown record: replaced)
        return st.evolve(recalled_at=index, recalled_by=by)
    earlier = _pushed(st.recalls, st.recalled_at, st.recalled_by)
    return st.evolve(recalled_at=index, recalled_by=by, recalls=earlier)


def _pushed(entries: tuple[str, ...], index: int, by: str) -> tuple[str, ...]:
    """``entries`` (``CodeState.recalls``) with the recall at ``index`` by ``by`` noted last;
    past ``MAX_RECALLS``, the oldest note of the member with the most notes goes (so no
    member's restatements push out another's only recall; review)."""
    out = (*entries, f"{index}:{by}")
    if len(out) <= MAX_RECALLS:
        return out
    authors = [_recall_entry(e)[1] for e in out[:-1]]
    most = max(authors, key=lambda a: (authors.count(a), a == by))  # (deterministic: ties
    drop = authors.index(most)  # go to ``by``, else the first of them in the list)
    return out[:drop] + out[drop + 1 :]


def _recall_entry(entry: str) -> tuple[int, str]:
    """(log index, author) of a ``CodeState.recalls`` entry ("INDEX:AUTHOR")."""
    at, _, by = entry.partition(":")
    return int(at), by


def _recall_indexes(st: CodeState) -> tuple[int, ...]:
    """The log indexes of every recall in force on ``st``: the governing one, then the rest."""
    if not st.recalled:
        return ()
    return (st.recalled_at, *(_recall_entry(r)[0] for r in st.recalls))


def _unrecalled(w: _Work, st: CodeState, index: int) -> CodeState:
    """``st`` with the recall at log index ``index`` declared in error: dropped from the
    others in force, or, if it governed, replaced by the latest other in force, a
    regulator's first (review: a producer's came to govern while a regulator's stood);
    lifted (``_lifted``) if none is left."""
    rest = tuple(r for r in st.recalls if _recall_entry(r)[0] != index)
    if st.recalled_at != index:
        return st.evolve(recalls=rest) if len(rest) != len(st.recalls) else st
    if not rest:
        return _lifted(st)
    entries = [_recall_entry(r) for r in rest]
    regulators = [i for i, (_, by) in enumerate(entries) if w.holds_role(by, RECALL_ROLES)]
    pick = regulators[-1] if regulators else len(rest) - 1
    at, by = entries[pick]
    return st.evolve(recalled_at=at, recalled_by=by, recalls=rest[:pick] + rest[pick + 1 :])


def _declare(
    w: _Work,
    codes: EventCodes,
    declared_index: int,
    *,
    closing: bool,
    recall: bool,
    transformation: bool = False,
    commissioning: bool = False,
    tid: str = "",
    new: bool = True,
) -> CustodyUpdate:
    """An error declaration of the committed record at ``declared_index``, which closed
    (``closing``) or recalled (``recall``) codes, or was a transformation, or none of
    these. Undone on each named code and its contents: a close, where that record closed
    the code (``closed_at``), whatever came after it: nothing acts on a closed code but a
    recall, an inspection or a declaration (QA: a declaration of a later recall counted as
    a later record, so the close could never be undone); a recall, where that record
    recalled the code (``recalled_at``: a restatement of an earlier recall lifts nothing,
    and a regulator's recall takes an earlier one over; QA). A code recalled and then
    destroyed by mistake stays recalled. A transformation: ``_declare_transformation``.
    A commissioning (``commissioning``): the codes it made and nothing has acted on since
    are void (``_void``; QA: a wrong lot could not be corrected: the corrective event was
    refused, commission-once); one acted on since stays, the declaration an annotation.
    A code closed by a node of an earlier version (``closed_at`` unknown) is reopened only
    where that record is its last (one with a later record: refused, declare that first)."""
    if transformation:
        _declare_transformation(w, codes, declared_index, tid, new=new)
    if commissioning:
        for c in codes.all:
            s = w.need(c)
            if s.first_index == declared_index and not _acted_on_since(s, declared_index):
                w.put(_void(s, w.index, declared_index, (s.lot,) if s.lot else ()))
    if closing:
        for c in codes.all:  # (all checked first: undoing one code touches its contents)
            later = [x for x in (c, *w.contents(c)) if _closed_before(w.need(x), declared_index)]
            if later:
                x = later[0]
                inside = "" if x == c else f" (inside {c}, which the event closed)"
                raise RuleError(
                    RULE_DECLARATION,
                    f"code {x}{inside} has a record after the declared event (log index "
                    f"{w.need(x).last_index}, the event {declared_index}): declare that one "
                    "in error first",
                    c,
                )
    done: set[str] = set()
    for c in codes.all:
        for x in (c, *w.contents(c), *w.need(c).found_in):
            if x in done:
                continue  # (a container and its contents both named)
            done.add(x)
            s = w.need(x)
            was = s
            if closing and _closed_by(s, declared_index):
                s = s.with_flags(closed=False).evolve(disposition="", closed_at=-1)
            if s.seen and len(seen := _unseen(s.seen, declared_index)) != len(s.seen):
                s = s.evolve(seen=seen)  # (a declared event's time no longer counts)
            kept = [f for f in s.findings if _parse_finding(f)[0] != declared_index]
            if len(kept) != len(s.findings):  # (a finding, declared: worked out again)
                s = _with_findings(w, s, kept)
            if recall and declared_index in _recall_indexes(s):
                s = _unrecalled(w, s, declared_index)
                for h in was.heirs:  # (born recalled from it since: lifted with it, or
                    hs = w.need(h)  # recalled by the recall in force on it now, if one is)
                    if h not in done and declared_index in _recall_indexes(hs):
                        done.add(h)
                        hs = _unrecalled(w, hs, declared_index)
                        if s.recalled and not hs.recalled and not hs.closed:
                            hs = _recalled(hs, s.recalled_at, s.recalled_by).evolve(
                                disposition=RECALL_DISPOSITION
                            )
                        w.put(hs)
                if not s.recalled:
                    s = s.evolve(heirs=())
            if x == c or closing or recall or s is not was:
                w.put(s)
    return _done(w)


def _closed_by(st: CodeState, index: int) -> bool:
    """Whether the record at ``index`` closed ``st`` (for a close of unknown origin: it is
    the code's last record)."""
    if not st.closed:
        return False
    return st.closed_at == index if st.closed_at >= 0 else st.last_index == index


def _closed_before(st: CodeState, index: int) -> bool:
    """A code closed by a node of an earlier version, with a record after ``index``: which
    record closed it is not known, so a declaration of the one at ``index`` is refused."""
    return st.closed and st.closed_at < 0 and st.last_index > index


def _acted_on_since(s: CodeState, made_at: int) -> bool:
    """Whether a record after the one at ``made_at``, which made ``s``, acted on it: handed
    it on, packed it or into it, transformed or closed it."""
    return bool(
        s.custodian != s.commissioned_by
        or s.parent
        or s.children
        or s.outputs
        or (s.closed and s.closed_at != made_at)
    )


def _void(s: CodeState, index: int, made_at: int, made_from: tuple[str, ...]) -> CodeState:
    """``s`` as never made: the record at ``made_at`` that made it is declared in error (by
    the record at ``index``). Closed, so nothing acts on it, until its maker makes it again
    in a corrective event (``_commission``); its links to ``made_from`` no longer count."""
    closed = s if s.closed else s.with_flags(closed=True).evolve(closed_at=index)
    unlinked = tuple(dict.fromkeys((*s.unlinked, *made_from)))
    return closed.evolve(void_at=made_at, unlinked=unlinked)


def _declare_transformation(
    w: _Work, codes: EventCodes, declared_index: int, tid: str = "", *, new: bool = True
) -> None:
    """A transformation declared in error: the inputs it consumed are open again, and the
    outputs it made are closed (they were never made), unless one has been acted on since
    (handed on, packed, transformed, closed: refused, declare that event first; a logged
    declaration, ``new`` false, written before this rule, then undoes nothing, as then).
    The trace links stay, as the logged records do (the previous note: its inputs stayed
    consumed)."""
    made = [c for c in codes.outputs if w.need(c).first_index == declared_index]
    for c in made:
        s = w.need(c)
        if _acted_on_since(s, declared_index):
            if not new:
                return
            raise RuleError(
                RULE_DECLARATION,
                f"output {c} has been acted on since the declared transformation (handed on, "
                f"packed, transformed or closed; now with {s.custodian!r}): bring it back "
                "first (a handoff back to its maker, unpacking it, or declaring the event "
                "that closed it in error)",
                c,
            )
    for c in made:  # (void: a corrective transformation may make them again)
        s = w.need(c)
        made_from = (*s.inputs, *((tid,) if tid else ()), *((s.lot,) if s.lot else ()))
        w.put(_void(s, w.index, declared_index, made_from))
    for c in codes.inputs:
        s = w.need(c)
        if s.closed and s.closed_at == declared_index:
            w.put(s.with_flags(closed=False).evolve(closed_at=-1))


def _lifted(st: CodeState) -> CodeState:
    """``st`` with no recall in force: its disposition from before the recall, unless a
    record set another since (a return, a destruction)."""
    was = st.pre_recall if st.disposition == RECALL_DISPOSITION else st.disposition
    return st.with_flags(recalled=False).evolve(
        disposition=was, recalled_at=-1, recalled_by="", recalls=(), pre_recall=""
    )


def _made_lot(w: _Work, code: str, lot_class: bool) -> CodeState:
    """The state a regulator's recall, or an inspection, gives a lot never commissioned
    itself (``lot_class``: named as an epcClass, a GTIN's lot; known by the items made in
    it, or to be made): no custodian, so any member's items made in it later are born
    recalled (QA: they were not, and could be sold), or held by its finding non_conformant.
    Any other unknown code is refused (rule unknown-code)."""
    if not (lot_class and is_lot_code(code)):
        return w.need(code)
    return CodeState(code, "", "", is_class=True, first_index=w.index)


def _link_lots(w: _Work, author: str, links: Sequence[tuple[str, str]]) -> None:
    """Items just made in a lot (``lot_links``): found from the lot (its recall), born
    recalled if it is. A lot that exists is acted on: only its custodian adds items, and
    not once it is closed (else any member could give its items another's lot as origin);
    a lot a recall made (``_made_lot``) has no custodian, and takes any member's."""
    for lot, item in links:  # (a lot code has /10/, an item's /21/)
        st = w.need(item).evolve(lot=lot)  # (its lot's finding non_conformant holds it)
        if st.unlinked:  # (made again in a lot it was unlinked from: linked again)
            st = st.evolve(unlinked=tuple(u for u in st.unlinked if u != lot))
        w.put(st)
        lot_state = w.get(lot)
        if lot_state is not None:
            if lot_state.custodian:
                _check_custodian(lot_state, author, "commission items into")
            _check_open(lot_state)
            if lot_state.recalled:
                _inherit_recall(w, lot_state, item)
        w.edges.append(Edge(lot, item, "lot", w.index))


def _inherit_recall(w: _Work, source: CodeState, code: str) -> None:
    """``code``, just made from recalled ``source`` (a lot, a transformation), is born
    recalled by the same record, and is one of ``source``'s ``heirs`` (lifted with it). The
    source's own history and ``last_index`` do not change."""
    born = _recalled(w.need(code), source.recalled_at, source.recalled_by)
    for at, by in map(_recall_entry, source.recalls):  # (each recall of the source holds
        born = _recalled(born, at, by)  # it: one declared, the others hold it on)
    w.put(born.evolve(disposition=RECALL_DISPOSITION))  # (QA: it read "active", its making's)
    now = w.need(source.code)
    if code not in now.heirs:
        w.changed[source.code] = now.evolve(heirs=(*now.heirs, code))


def _done(w: _Work) -> CustodyUpdate:
    return CustodyUpdate(w.index, dict(w.changed), tuple(w.edges), tuple(w.touched))


def _note_inspected(w: _Work, named: Sequence[str], time_ms: int) -> None:
    """An inspection named ``named`` at ``time_ms``: each has been seen then
    (``CodeState.seen``; every named code was ``put`` by the inspection)."""
    for c in named:
        st = w.need(c)
        w.put(st.evolve(seen=_with_seen(st.seen, w.index, time_ms)))


def _seen_entry(entry: str) -> tuple[int, int]:
    index, _, ms = entry.partition("@")
    return int(ms), int(index)


def _with_seen(seen: tuple[str, ...], index: int, time_ms: int) -> tuple[str, ...]:
    """``seen`` with the event at ``index`` (eventTime ``time_ms``) added: the
    ``SEEN_KEEP`` latest by eventTime (then by index), oldest first."""
    if not seen:
        return (f"{index}@{time_ms}",)
    entries = sorted({*seen, f"{index}@{time_ms}"}, key=_seen_entry)
    return tuple(entries[-SEEN_KEEP:])


def _unseen(seen: tuple[str, ...], index: int) -> tuple[str, ...]:
    """``seen`` without the event at ``index`` (declared in error)."""
    return tuple(e for e in seen if _seen_entry(e)[1] != index)


def latest_seen(st: CodeState) -> tuple[int, int] | None:
    """(eventTime in Unix ms, log index) of the latest event in force that named ``st``'s
    code (``CodeState.seen``), or None if none is known."""
    return max(map(_seen_entry, st.seen)) if st.seen else None


def _check_close_time(w: _Work, record: TraceRecord, named: Sequence[str], time_ms: int) -> None:
    """Rule event-time, for new records: an event that closes a code it names (destroys,
    sells, decommissions, consumes it in a transformation) is not dated more than
    ``BACKDATE_TOLERANCE_MS`` before the latest inspection in force that named it (QA-O:
    an elevator inspected in 2025 was recorded destroyed in 2021): an inspection is a
    witness that the code was there then. The custodian's own handling (storing,
    unpacking, a stock-take), recalls and inspections of its container or lot do not count:
    a sale captured late, after the evening's unpacking or a recall, is accepted (review:
    unpacking named the items, and refused the day's sales uploaded after it)."""
    for c in named:
        before, after = w.read.get(c), w.changed.get(c)
        if not isinstance(before, CodeState) or after is None:
            continue
        if before.closed or not after.closed:
            continue
        latest = latest_seen(before)
        if latest is not None and time_ms < latest[0] - BACKDATE_TOLERANCE_MS:
            raise RuleError(
                RULE_EVENT_TIME,
                f"eventTime {record.event_time[:40]!r} is before the code's event at log "
                f"#{latest[1]} ({header_time(latest[0])}): a code is not closed (destroyed, "
                "sold, consumed) before an event recorded on it, 15 min allowed for clocks; "
                "if that event is in error, declare it first (suyuan record declare)",
                c,
            )


def _check_handoff_shape(
    record: TraceRecord, etype: str, action: str, signers: Sequence[str], codes: EventCodes
) -> None:
    ok = (
        (etype == "ObjectEvent" and action in ("OBSERVE", "DELETE"))
        or (etype in ("AggregationEvent", "AssociationEvent") and action == "OBSERVE")
        or etype == "TransactionEvent"
    )
    if not ok:
        raise RuleError(
            RULE_HANDOFF,
            f"a handoff cannot be a {etype} {action}: record it first, then hand off the "
            "codes with an ObjectEvent OBSERVE (e.g. bizStep shipping)",
            codes.all[0],
        )
    for who in (record.author, record.handoff_to):
        if who not in signers:
            raise RulePermissionError(
                RULE_HANDOFF_SIGNATURES, f"the handoff lacks the signature of {who!r}"
            )


def _check_custodian(st: CodeState, author: str, what: str) -> None:
    if not st.custodian:  # (``_made_lot``; QA: "held by ''")
        raise RulePermissionError(
            RULE_CUSTODY,
            f"{author!r} may not {what} a code with no custodian (a lot known from a "
            "regulator's recall or an inspection, never commissioned itself)",
            st.code,
        )
    if st.custodian != author:
        raise RulePermissionError(
            RULE_CUSTODY,
            f"{author!r} may not {what} a code held by {st.custodian!r}",
            st.code,
        )


def _destroys(step: str, disposition: str) -> bool:
    """Whether a closing event destroys its codes (the end a recalled code may have)."""
    return step in ("destroying", "scrapping") or disposition in ("destroyed", "disposed")


def recalled_may_leave(step: str, disposition: str, *, terminal: bool | None = None) -> bool:
    """True iff a handoff with this bizStep and disposition (bare CBV words) may move a
    recalled code: a return, or one for destruction. ``terminal`` defaults to the step or
    disposition ending the code's life (an ObjectEvent DELETE is terminal too)."""
    if terminal is None:
        terminal = step in TERMINAL_STEPS or disposition in TERMINAL_DISPOSITIONS
    return disposition in RETURN_DISPOSITIONS or (
        terminal and (step == "destroying" or disposition in ("destroyed", "disposed"))
    )


def _check_inspection(
    st: CodeState, ev: Mapping[str, Any], disposition: str, finding: str = ""
) -> None:
    """An inspection states what the inspector found; it does not change what the ledger
    says happened (QA: a scrapped gas cylinder was inspected "active", a recalled code
    could be inspected fit for sale, and an inspection "destroyed" left the code open)."""
    lifts = finding == RELEASE_DISPOSITION and st.held_at >= 0  # (QA: a closed lot held
    # its items, and its finding conformant was refused: only a declaration lifted it)
    fit = _claims_fit(ev, disposition) if st.closed and not lifts else ""
    if fit:
        raise RuleError(
            RULE_CLOSED,
            f"a closed code (destroyed, sold or consumed) cannot be inspected {fit}",
            st.code,
        )
    cleared = _clears_recall(ev, disposition)
    if st.recalled and cleared:
        raise RuleError(
            RULE_RECALLED,
            f"a recalled code cannot be {cleared}: its recall stands until it is declared in "
            "error (suyuan record declare)",
            st.code,
        )
    if not st.closed and disposition in TERMINAL_DISPOSITIONS:
        raise RuleError(
            RULE_INSPECTION,
            f"an inspection does not close a code (disposition {disposition}): its custodian "
            "records that (bizStep destroying, retail_selling...)",
            st.code,
        )


def _finding(ev: Mapping[str, Any], disposition: str) -> str:
    """What an event finds of the codes it names: ``HOLD_DISPOSITION`` (its disposition,
    or a ``persistentDisposition`` setting it), ``RELEASE_DISPOSITION`` (likewise, or one
    unsetting non_conformant), or ""."""
    if disposition == HOLD_DISPOSITION or _persistent(ev, "set", {HOLD_DISPOSITION}):
        return HOLD_DISPOSITION
    if (
        disposition == RELEASE_DISPOSITION
        or _persistent(ev, "set", {RELEASE_DISPOSITION})
        or _persistent(ev, "unset", {HOLD_DISPOSITION})
    ):
        return RELEASE_DISPOSITION
    return ""


def _apply_finding(w: _Work, named: Sequence[str], finding: str) -> None:
    """``finding`` (``_finding``) on each named code and, from it as their container, on
    what is packed in it (QA: a case found non_conformant, unpacked, sold its tins); the
    container keeps which codes it reached (``found_in``)."""
    if not finding:
        return
    for c in named:
        w.put(_found(w, w.need(c), finding))
        inner = w.contents(c)
        for x in inner:
            w.put(_found(w, w.need(x), finding, source=c))
        st = w.need(c)
        reached = tuple(dict.fromkeys((*st.found_in, *inner)))
        if reached != st.found_in:
            w.put(st.evolve(found_in=reached))


def _found(w: _Work, st: CodeState, finding: str, source: str = "") -> CodeState:
    """``st`` after a finding by the record ``w`` applies: on the code itself, or, with
    ``source``, on the container it is packed in.

    non_conformant holds the code from sale, dispensing and transformation (per-batch
    inspection: a lot found so holds every item made in it, ``_check_not_held``). conformant
    lifts a hold if found by an inspector or a regulator, or by the author of the finding
    that holds it (a producer's own batch test); anyone else's is refused for new records
    (rule held) and, logged, lifts nothing. An inspector's or a regulator's non_conformant
    takes another member's hold over, so a custodian cannot make it its own to lift. Each
    source (the code, each container it was found in) holds on its own: a container's
    conformant lifts only its own findings, the code's own conformant lifts all. What holds
    is worked out from the findings in force (``_standing``): a finding declared in error
    drops out, and the ones before it decide again (QA)."""
    if not finding:
        return st
    author = w.author
    if finding == RELEASE_DISPOSITION:
        if st.held_at < 0:
            return st  # (nothing to lift: not kept, so a sensor's findings do not pile up)
        if not (w.inspector(author) or st.held_by == author):
            if w.new and not source:
                who = (
                    "an inspector or a regulator"
                    if w.inspector(st.held_by)
                    else f"an inspector, a regulator or {st.held_by!r}"
                )
                raise RuleError(
                    RULE_HELD,
                    f"the code was found {HOLD_DISPOSITION} by {st.held_by!r} (the record at "
                    f"log index {st.held_at}): only {who} may find it {RELEASE_DISPOSITION}",
                    st.code,
                )
            return st
    mark = "!" if finding == HOLD_DISPOSITION else "="
    entry = f"{w.index}{mark}{author}" + (f"^{source}" if source else "")
    return _with_findings(w, st, [*st.findings, entry])


def _parse_finding(finding: str) -> tuple[int, bool, str, str]:
    """(log index, non_conformant?, author, source container or "") of a findings entry
    ("INDEX!AUTHOR", "INDEX=AUTHOR", then "^CONTAINER" if found on its container; an
    author is a member id, which holds no '^')."""
    cut = next(i for i, ch in enumerate(finding) if ch in "!=")
    author, _, source = finding[cut + 1 :].partition("^")
    return int(finding[:cut]), finding[cut] == "!", author, source


def _with_findings(w: _Work, st: CodeState, findings: Sequence[str]) -> CodeState:
    kept = tuple(findings[-MAX_FINDINGS:])
    held_at, held_by, held_from = _standing(kept, w.inspector)
    return st.evolve(findings=kept, held_at=held_at, held_by=held_by, held_from=held_from)


def _standing(findings: Sequence[str], inspector: Callable[[str], bool]) -> tuple[int, str, str]:
    """(log index, author, source) of the finding that holds a code, from its findings in
    force in log order, each source (the code "", a container) on its own; the latest of
    the holds that stand; (-1, "", "") if none does (``_found`` says who may hold and
    lift)."""
    holds: dict[str, tuple[int, str]] = {}
    for f in findings:
        index, bad, author, source = _parse_finding(f)
        if bad:
            now = holds.get(source)
            if now is None or inspector(author) or now[1] == author:
                holds[source] = (index, author)
            continue
        for src in [source] if source else list(holds):  # (its own conformant lifts all)
            now = holds.get(src)
            if now is not None and (inspector(author) or now[1] == author):
                del holds[src]
    if not holds:
        return -1, "", ""
    source, (index, author) = max(holds.items(), key=lambda kv: kv[1][0])
    return index, author, source


def _check_sale(w: _Work, named: Sequence[str]) -> None:
    """Rules held and recalled for a new record that sells or dispenses (``SALE_STEPS``,
    ``SALE_MARKS``), whatever its event type: the named codes the ledger knows and what is
    in them (QA: an AggregationEvent with disposition retail_sold sold held and recalled
    tins, as did partially_dispensed)."""
    for c in named:
        if w.get(c) is None:
            continue  # (made by this record: a new parent, a transformation's output)
        for x in (c, *w.contents(c)):
            st = w.need(x)
            _check_not_held(w, st)
            if st.recalled:
                raise RuleError(RULE_RECALLED, _RECALLED_SALE, x)
            _check_not_expired(w, st)


def _check_offered_contents(w: _Work, offered: Any) -> None:
    """Rule handoff-contents (new records): a handoff whose ``offered_contents`` attribute
    lists what each container held when offered (``suyuan handoff offer`` writes it, at any
    depth) commits only while each still holds exactly that (QA-R: the sender unpacked
    two of a case's three packs after its offer, and the receiver took on the lighter
    case). Codes are compared in canonical form."""
    if not isinstance(offered, dict) or not all(
        isinstance(c, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
        for c, v in offered.items()
    ):
        raise RuleError(
            RULE_HANDOFF_CONTENTS,
            f"attribute {CONTENTS_ATTRIBUTE} must map each container to the list of codes it holds",
        )
    for container, listed in offered.items():
        code = normalize_code(container)
        now = w.contents(code) if w.get(code) is not None else []
        change = contents_change(listed, now)
        if change:
            raise RuleError(
                RULE_HANDOFF_CONTENTS,
                f"{code} no longer holds what the offer listed: {change} since the offer was "
                "signed; ask the sender for a new offer",
                code,
            )


def contents_change(was: Iterable[str], now: Iterable[str]) -> str:
    """How a container's contents changed, in canonical codes: "1 code left it (X)",
    "2 codes joined it (Y, Z)", both joined by "and"; "" if they are the same."""
    before = {normalize_code(c) for c in was}
    after = {normalize_code(c) for c in now}
    parts = []
    for codes, what in ((sorted(before - after), "left"), (sorted(after - before), "joined")):
        if codes:
            more = ", ..." if len(codes) > 3 else ""
            noun = "code" if len(codes) == 1 else "codes"
            parts.append(f"{len(codes)} {noun} {what} it ({', '.join(codes[:3])}{more})")
    return " and ".join(parts)


def _expired_source(w: _Work, st: CodeState) -> CodeState | None:
    """The state whose disposition ``expired`` holds ``st``: its own, or its lot's; None."""
    if st.disposition == EXPIRED_DISPOSITION:
        return st
    lot = w.get(st.lot) if st.lot else None
    return lot if lot is not None and lot.disposition == EXPIRED_DISPOSITION else None


def _check_not_expired(w: _Work, st: CodeState) -> None:
    """Rule expired (QA-R: an expired pack was dispensed): a code whose disposition is
    ``expired``, or an item of a lot whose disposition is, is not sold or dispensed. A later
    record giving it another disposition (a relabelled, re-tested batch) ends it; a
    handoff, which would, may move it only as a return or for destruction."""
    source = _expired_source(w, st)
    if source is None:
        return
    what = "the code's" if source is st else f"its lot {source.code}'s"
    raise RuleError(
        RULE_EXPIRED,
        f"{what} disposition is expired: it may not be sold or dispensed; return or "
        "destroy it (or, if that was wrong, record its disposition anew)",
        st.code,
    )


def holding(state: Callable[[str], CodeState | None], st: CodeState) -> CodeState | None:
    """The state whose finding non_conformant holds ``st`` from sale: its own, or its lot's
    (an item commissioned in a lot; ``state`` reads a code's state); None if neither is
    held."""
    if st.held_at >= 0:
        return st
    lot = state(st.lot) if st.lot else None
    return lot if lot is not None and lot.held_at >= 0 else None


def _check_not_held(w: _Work, st: CodeState, act: str = "sold or dispensed") -> None:
    hold = holding(w.get, st)
    if hold is not None:
        source = "lot" if is_lot_code(st.held_from) else "container"
        what = (
            f"its lot {hold.code} was"
            if hold is not st
            else (f"its {source} {st.held_from} was" if st.held_from else "the code was")
        )
        raise RuleError(
            RULE_HELD,
            f"{what} found {HOLD_DISPOSITION} by {hold.held_by!r} (the record at log index "
            f"{hold.held_at}): it may not be {act} until an inspection finds "
            f"it {RELEASE_DISPOSITION}, or that record is declared in error",
            st.code,
        )


def _check_not_backdated(w: _Work, record: TraceRecord, codes: EventCodes) -> None:
    """Rule event-time, for new records: a custodian's event on a code is not dated before
    the custodian came to hold it (its commissioning, or the handoff to it), beyond
    ``BACKDATE_TOLERANCE_MS`` (QA: hazardous goods handed on three hours before they were
    received, and a storing event dated 1970)."""
    for c in codes.all:
        st = w.get(c)
        if st is not None and st.custodian == record.author and dated_before(w.time_ms, st):
            raise RuleError(
                RULE_EVENT_TIME,
                f"eventTime {record.event_time[:40]!r} is before {record.author!r} came to hold "
                f"the code ({header_time(st.since_ms)}: its commissioning, or the handoff to "
                "it); an event is dated when it happened (15 min allowed for clocks)",
                c,
            )


def dated_before(time_ms: int | None, holding: CodeState | int) -> bool:
    """Rule event-time's test: ``time_ms`` (an event's time) is more than
    ``BACKDATE_TOLERANCE_MS`` before the moment its custodian came to hold the code (a
    state's ``since_ms``, or that number; 0 or None: unknown, never before)."""
    since = holding.since_ms if isinstance(holding, CodeState) else holding
    return time_ms is not None and since != 0 and time_ms < since - BACKDATE_TOLERANCE_MS


def _claims_fit(ev: Mapping[str, Any], disposition: str) -> str:
    """How an inspection would call a code fit for sale or use, or "": a disposition of
    ``CLEARING_DISPOSITIONS`` or conformant, or a ``persistentDisposition`` that sets one
    or unsets a closing one (QA re-check: ``set ["sellable_accessible"]`` re-certified a
    destroyed code)."""
    if disposition in _FIT_DISPOSITIONS:
        return disposition
    put = _persistent(ev, "set", _FIT_DISPOSITIONS)
    if put:
        return f"{put} (persistentDisposition set)"
    unset = _persistent(ev, "unset", TERMINAL_DISPOSITIONS)
    return f"no longer {unset} (persistentDisposition unset)" if unset else ""


_FIT_DISPOSITIONS = frozenset({*CLEARING_DISPOSITIONS, "conformant"})


def _check_open(st: CodeState) -> None:
    if st.closed and st.void_at >= 0:
        raise _VoidCodeError(
            RULE_CLOSED,
            f"code is void: the record that made it (log index {st.void_at}) is declared in "
            f"error; {st.commissioned_by!r} may make it again (a corrective event)",
            st.code,
        )
    if st.closed:
        raise RuleError(RULE_CLOSED, "code is closed (destroyed, sold or consumed)", st.code)


def _check_not_recalled(st: CodeState, what: str) -> None:
    if st.recalled:
        raise RuleError(
            RULE_RECALLED, f"a recalled code cannot be {what}; return or destroy it", st.code
        )


def _moving_set(w: _Work, named: Sequence[str]) -> list[str]:
    out: dict[str, None] = {}
    for c in named:
        out[c] = None
        for inner in w.contents(c):
            out[inner] = None
    return list(out)


def _commission(w: _Work, code: str, author: str, disposition: str, *, is_class: bool) -> None:
    if not w.may_commission:
        raise RulePermissionError(
            RULE_COMMISSION_ROLE,
            f"only {' or '.join(COMMISSION_ROLES)} members commission codes; {author!r} is not one",
            code,
        )
    _check_prefix(w.genesis, code, author)
    existing = w.get(code)
    if existing is not None and existing.void_at >= 0:
        if author != existing.commissioned_by and not _producer(w, code, author):
            raise RuleError(
                RULE_COMMISSION_ONCE,
                f"code is void (the record that made it, log index {existing.void_at}, is "
                f"declared in error): only {existing.commissioned_by!r} makes it again",
                code,
            )
        # made again (a corrective event): what held or recalled it stays (an inspector's
        # finding is not shed by remaking the code), its making is this record's
        findings = existing.findings
        hold = w.get(existing.lot) if existing.lot else None
        if hold is not None and hold.held_at >= 0:  # (QA: remade in a clean lot, the
            # hold of its lot's finding was gone and it was sold): kept on the lot's account,
            # which the lot's finding declared in error reaches (``found_in``)
            findings = (*findings, f"{hold.held_at}!{hold.held_by}^{hold.code}")
            w.put(hold.evolve(found_in=tuple(dict.fromkeys((*hold.found_in, code)))))
        w.put(
            _with_findings(w, existing, findings)
            .with_flags(closed=False)
            .evolve(
                commissioned_by=author,
                custodian=author,
                first_index=w.index,
                last_index=w.index,
                disposition=disposition or existing.disposition,
                is_class=is_class,
                since_ms=w.time_ms or 0,
                closed_at=-1,
                void_at=-1,
                lot="",
                inputs=(),
            )
        )
        return
    if existing is not None:
        if code in w.changed:
            where = "earlier in this same event"
        elif code in getattr(w.view, "pending", {}):  # an OverlayView's uncommitted states
            where = "by a record not yet committed"
        else:
            where = f"at log index {existing.first_index}"
        if not existing.commissioned_by:  # (``_made_lot``: no one commissioned it)
            raise RuleError(
                RULE_COMMISSION_ONCE,
                f"the lot is known from a regulator's recall or an inspection ({where}), which "
                "gave it a state "
                "of its own: it cannot be commissioned now (its items may still be made in it, "
                "born recalled)",
                code,
            )
        raise RuleError(
            RULE_COMMISSION_ONCE,
            f"code was already commissioned by {existing.commissioned_by!r} ({where})",
            code,
        )
    w.put(
        _BLANK.evolve(
            code=code,
            commissioned_by=author,
            custodian=author,
            first_index=w.index,
            last_index=w.index,
            disposition=disposition,
            is_class=is_class,
            since_ms=w.time_ms or 0,
        )
    )


def check_commission_prefixes(record: TraceRecord, genesis: Genesis) -> None:
    """Rule gs1-prefix as far as ``record`` alone shows it, for a record signed offline:
    the codes an ObjectEvent ADD commissions (a transformation's outputs and a new parent
    are judged at the node, which knows whether they exist already)."""
    if (
        record.event_type == "ObjectEvent"
        and record.event.get("action") == "ADD"
        and record.error_declaration is None
    ):
        for c in record.roles.all:
            _check_prefix(genesis, c, record.author)


def _check_prefix(genesis: Genesis, code: str, author: str) -> None:
    """Rule gs1-prefix: a code under a GS1 company prefix the genesis binds to members
    (``gs1_prefixes``) is commissioned by one of them only (QA: a member commissioned codes
    under another company's GTIN, squatted its next serials, and so became their
    producer, who may recall them). A code under no bound prefix is anyone's to make."""
    if not genesis.binds_prefixes:
        return
    bound = genesis.prefix_owners(company_digits(code))
    if bound and author not in bound[1:]:
        who = ", ".join(repr(m) for m in bound[1:])
        raise RulePermissionError(
            RULE_GS1_PREFIX,
            f"GS1 company prefix {bound[0]} is bound to {who} in the genesis: only "
            f"{'they commission' if len(bound) > 2 else 'it commissions'} codes under it, "
            f"not {author!r}",
            code,
        )


def transformation_id(event: Mapping[str, Any]) -> str:
    """The trace node of a TransformationEvent's ``transformationID``, or ``""``: the id in
    canonical form (a UUID URN in lower case) under ``transformation:``, so that it never
    is, or squats, a product's code."""
    tid = event.get("transformationID")
    if not isinstance(tid, str) or not tid.strip():
        return ""
    canonical = normalize_code(tid)
    if canonical[:9].lower() == "urn:uuid:":
        canonical = canonical.lower()
    return TRANSFORMATION_PREFIX + canonical


def _transform(w: _Work, author: str, codes: EventCodes, disposition: str, tid: str = "") -> None:
    """Inputs (held by the author, open, not recalled, not packed) to new outputs.

    With a ``transformationID`` (EPCIS: the events that share it are one transformation,
    every input of any of them feeding every output of any), the inputs and outputs are
    linked through that id as a node of its own (input -> ``transformation:ID`` -> output):
    the first event creates it, held by its author; later events must be its custodian's,
    and outputs made after it was recalled are born recalled."""
    if codes.parent or codes.objects or codes.children:
        raise RuleError(RULE_TRANSFORMATION, "a TransformationEvent names only inputs and outputs")
    for c in codes.inputs:
        st = w.need(c)
        _check_custodian(st, author, "transform")
        _check_open(st)
        _check_not_recalled(st, "transformed")
        if w.new:  # (a rule for new records: a logged transformation replays as it was)
            for x in (c, *w.contents(c)):  # (QA re-check: a case of held tins, transformed)
                inner = w.need(x)
                _check_not_held(w, inner, "used as a transformation's input")
                if x != c:
                    _check_not_recalled(inner, "transformed")
        if st.parent:
            raise RuleError(
                RULE_AGGREGATED, f"input is inside container {st.parent}; disaggregate first", c
            )
    hub: CodeState | None = None
    if tid:
        hub = w.get(tid)
        if hub is None:
            _commission(w, tid, author, "", is_class=False)
            hub = w.need(tid)
        else:
            _check_custodian(hub, author, "add events to the transformation of")
            w.put(hub)
    for c in codes.outputs:
        _commission(w, c, author, disposition, is_class=c in codes.classes)
        out = w.changed[c]
        w.changed[c] = out.evolve(inputs=codes.inputs)
        if out.unlinked:  # (made again: linked again to what it is now made from)
            again = {*codes.inputs, tid}
            w.changed[c] = w.changed[c].evolve(
                unlinked=tuple(u for u in out.unlinked if u not in again)
            )
        if hub is not None:
            if hub.recalled:
                _inherit_recall(w, hub, c)
            w.edges.append(Edge(tid, c, "input", w.index))
    for c in codes.inputs:
        st = w.need(c)
        outs = tuple(dict.fromkeys((*st.outputs, *codes.outputs)))
        st = st.evolve(outputs=outs)
        if c in codes.consumed:
            st = st.with_flags(closed=True).evolve(closed_at=w.index)
        w.put(st)
        if hub is not None:
            w.edges.append(Edge(c, tid, "input", w.index))
        else:
            for o in codes.outputs:
                w.edges.append(Edge(c, o, "input", w.index))


def _aggregate(w: _Work, author: str, codes: EventCodes, disposition: str) -> None:
    if not codes.parent:
        raise RuleError(RULE_AGGREGATION, "an aggregation ADD needs a parentID", codes.all[0])
    if codes.objects or codes.inputs or codes.outputs:
        raise RuleError(RULE_AGGREGATION, "an aggregation names a parent and children only")
    if not codes.children:
        raise RuleError(RULE_AGGREGATION, "an aggregation ADD needs children", codes.parent)
    parent = w.get(codes.parent)
    if parent is None:
        _commission(w, codes.parent, author, disposition, is_class=False)
        parent = w.need(codes.parent)
    else:
        _check_custodian(parent, author, "pack into")
        _check_open(parent)
        _check_not_recalled(parent, "packed into")
        if parent.parent:
            # Keeps containment a forest that a container's move can follow.
            raise RuleError(
                RULE_AGGREGATED,
                f"container is inside {parent.parent}; unpack it first",
                parent.code,
            )
    for c in codes.children:
        st = w.need(c)
        _check_custodian(st, author, "pack")
        _check_open(st)
        _check_not_recalled(st, "packed")
        if st.parent and st.parent != codes.parent:
            raise RuleError(RULE_AGGREGATED, f"code is already inside {st.parent}", c)
    new_children = tuple(dict.fromkeys((*parent.children, *codes.children)))
    w.put(parent.evolve(children=new_children))
    for c in codes.children:
        w.put(w.need(c).evolve(parent=codes.parent))
        w.edges.append(Edge(codes.parent, c, "parent", w.index))


def _observe_aggregation(w: _Work, author: str, codes: EventCodes, disposition: str) -> None:
    """An aggregation OBSERVE saw its children inside its parent: those the ledger has
    elsewhere are packed into it (``_aggregate``'s rules); the rest stay (QA: an OBSERVE
    was accepted and changed nothing, so a recall of the pallet missed its cases)."""
    if not codes.parent or not codes.children:
        return
    new = tuple(c for c in codes.children if w.need(c).parent != codes.parent)
    if new:
        _aggregate(w, author, dataclasses.replace(codes, children=new), disposition)


def _disaggregate(w: _Work, author: str, codes: EventCodes) -> None:
    if not codes.parent:
        raise RuleError(RULE_AGGREGATION, "an aggregation DELETE needs a parentID", codes.all[0])
    parent = w.need(codes.parent)
    _check_custodian(parent, author, "unpack")
    _check_open(parent)
    removing = codes.children or parent.children
    for c in removing:
        if c not in parent.children:
            raise RuleError(RULE_AGGREGATION, f"code is not inside {codes.parent}", c)
    w.put(parent.evolve(children=tuple(c for c in parent.children if c not in removing)))
    for c in removing:
        w.put(w.need(c).evolve(parent=""))


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Refusal:
    position: int  # index of the record within the block as given
    error: RuleError


@dataclass(frozen=True)
class BlockUpdate:
    """The custody outcome of a block: accepted updates in order, refusals by position.

    Accepted records get consecutive log indexes from ``first_index`` in block order,
    skipping refused ones, so a proposer that drops the refused records gets exactly the
    updates a validator computes for the filtered block.
    """

    accepted: tuple[tuple[int, CustodyUpdate], ...]
    refused: tuple[Refusal, ...]

    @property
    def ok(self) -> bool:
        return not self.refused

    def states(self) -> dict[str, CodeState]:
        """Final state of every code the block changed."""
        out: dict[str, CodeState] = {}
        for _, u in self.accepted:
            out.update(u.states)
        return out

    def puts(self, *, with_history: bool = False) -> list[tuple[str, bytes, bytes]]:
        """Extra puts for the block's store transaction; each custody key written once."""
        out: list[tuple[str, bytes, bytes]] = []
        for code, st in self.states().items():
            out.append((DB_CUSTODY, code.encode(), encode_state(st)))
        for _, u in self.accepted:
            out.extend(u.edge_puts(with_history=with_history))
        return out

    def codes(self) -> list[tuple[str, ...]]:
        """Per accepted record, in log order: the codes whose history gains it
        (``BlockWrite.codes``, so that ``Store.code_indexes`` answers ``history``)."""
        return [u.touched for _, u in self.accepted]


def apply_block(
    view: CustodyView,
    items: Sequence[tuple[TraceRecord, Sequence[str]]],
    genesis: Genesis,
    first_index: int,
    declared: Mapping[int, int] | None = None,
    *,
    new: bool = False,
) -> BlockUpdate:
    """Apply ``items`` ((record, signers), in block order) over an overlay of ``view``.

    Each record sees the effects of the accepted records before it. A refused record has no
    effect and is reported by position; ``view`` is never mutated. ``declared`` maps the
    position of an error declaration to the log index of the record it declares.
    """
    overlay = OverlayView(view)
    accepted: list[tuple[int, CustodyUpdate]] = []
    refused: list[Refusal] = []
    index = first_index
    for pos, (record, signers) in enumerate(items):
        try:
            update = apply(
                overlay,
                record,
                signers,
                genesis,
                index,
                declared.get(pos) if declared else None,
                new=new,
            )
        except RuleError as e:
            refused.append(Refusal(pos, e.with_traceback(None)))  # no frame -> list cycle
            continue
        overlay.add(update)
        accepted.append((pos, update))
        index += 1
    return BlockUpdate(tuple(accepted), tuple(refused))


# --------------------------------------------------------------------------- in memory


class InMemoryCustody:
    """Dict-backed custody state, edges and history: a ``CustodyView`` and a trace index.

    ``commit`` applies updates in log order. Lookups return deterministic (sorted) orders
    matching the LMDB key order of ``puts``.
    """

    def __init__(self) -> None:
        self.states: dict[str, CodeState] = {}
        self.fwd: dict[str, dict[str, str]] = {}
        self.back: dict[str, dict[str, str]] = {}
        self.log: dict[str, list[int]] = {}

    def get(self, code: str) -> CodeState | None:
        return self.states.get(code)

    def commit(self, update: CustodyUpdate | BlockUpdate) -> None:
        updates = [u for _, u in update.accepted] if isinstance(update, BlockUpdate) else [update]
        for u in updates:
            self.states.update(u.states)
            for e in u.edges:
                self.fwd.setdefault(e.upstream, {})[e.downstream] = e.forward_relation
                self.back.setdefault(e.downstream, {})[e.upstream] = e.kind
            for c in u.touched:
                self.log.setdefault(c, []).append(u.log_index)

    # trace index (node.trace.TraceIndex)
    def state(self, code: str) -> CodeState | None:
        return self.states.get(code)

    def downstream(self, code: str) -> list[tuple[str, str]]:
        return sorted(self.fwd.get(code, {}).items(), key=lambda kv: kv[0].encode())

    def upstream(self, code: str) -> list[tuple[str, str]]:
        return sorted(self.back.get(code, {}).items(), key=lambda kv: kv[0].encode())

    def history(self, code: str, start: int, limit: int) -> list[int]:
        entries = self.log.get(code, [])
        i = bisect.bisect_left(entries, start)
        return entries[i : i + limit]
