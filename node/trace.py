"""Trace queries: history, back (sources) and forward (recall scope). Pure; answers from indexes.

The node implements ``TraceIndex`` over its store (see ``node.custody`` for the layout):
``state`` = ``decode_state(store.get("custody", code))``; ``downstream``/``upstream`` = a
``store.scan("edges", edge_prefix(FWD|BACK, code))`` mapped through ``edge_target`` and the
value (relation); ``history`` = ``store.code_indexes(code, start, limit)``. Tests use
``node.custody.InMemoryCustody``. No query scans the log.

Invariants of ``trace_back`` / ``trace_forward``:
  * breadth-first from the root; each code appears once, at its shortest distance
    (``depth``), reached ``via`` a code at ``depth - 1`` (so the nodes form a tree);
  * neighbours are visited in the index's order (sorted by code bytes), so the sequence of
    nodes is a deterministic function of the index, the root and ``max_depth``;
  * cycle-safe (a visited set), depth-limited (``max_depth``), paged: ``limit`` nodes per
    page and an opaque ``next_token`` that resumes exactly where the page ended, as long as
    the index has not changed in between (a new block may shift later pages);
  * the root is node 0 (depth 0, relation "self").

Relations: back: "input" (an input of the transformation that made ``via``), "parent"
(a container ``via`` was packed into; not followed from what was packed in the root) and
"lot" (the lot ``via`` was commissioned in), and "child" from the root and what was ever
packed in it, at any depth (what the container ``via`` held: its goods came from where
they came from); forward: "output", "child" and "item" (the inverses of the first three).
"""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from node.custody import CodeState, holding
from node.epcis import code_problem, normalize_code
from node.errors import InputError, NotFoundError

MAX_DEPTH = 64
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100

Direction = Literal["back", "forward"]


class TraceIndex(Protocol):
    """What the queries need from the node's indexes (canonical codes throughout)."""

    def state(self, code: str) -> CodeState | None: ...

    def downstream(self, code: str) -> Sequence[tuple[str, str]]:
        """(code, relation "output" | "child" | "item") pairs, sorted by code bytes."""
        ...

    def upstream(self, code: str) -> Sequence[tuple[str, str]]:
        """(code, relation "input" | "parent" | "lot") pairs, sorted by code bytes."""
        ...

    def history(self, code: str, start: int, limit: int) -> Sequence[int]:
        """Up to ``limit`` log indexes >= ``start`` of records naming or moving ``code``, ascending.

        (LMDB: ``set_range(history_key(code, start))`` then iterate while the prefix matches.)
        """
        ...


@dataclass(frozen=True)
class TraceNode:
    code: str
    depth: int
    relation: str  # how it relates to ``via`` ("self" for the root)
    via: str
    custodian: str
    status: str
    commissioned_by: str
    parent: str  # current container, "" if none
    recalled: bool = False  # also true for a closed (e.g. sold) code that was recalled
    is_class: bool = False  # a lot or product class (name it in a quantityList)
    recalled_by: str = ""  # the author of the record that recalled it, if known
    recalled_at: int = -1  # that record's log index (-1: not recalled, or unknown)
    disposition: str = ""  # its latest CBV disposition (a closed code: how it went)
    since_ms: int = 0  # eventTime (Unix ms) from which its custodian holds it; 0: unknown
    held_at: int = -1  # log index of the finding non_conformant that holds it (-1: none)
    held_by: str = ""  # that record's author
    held_via: str = ""  # the lot or container whose finding holds it ("": its own, or none)
    void_at: int = -1  # log index of the record that made it, declared in error (-1: none)
    other_recalls: tuple[str, ...] = ()  # the other recalls in force ("INDEX:AUTHOR")


@dataclass(frozen=True)
class TracePage:
    root: str
    direction: Direction
    nodes: tuple[TraceNode, ...]
    next_token: str  # "" when this is the last page
    depth_limited: bool  # some codes lie beyond max_depth (not listed)


@dataclass(frozen=True)
class HistoryPage:
    code: str
    log_indexes: tuple[int, ...]
    next_token: str
    state: TraceNode  # the code's own state now (relation "self")


def _token(**fields: Any) -> str:
    raw = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _untoken(token: str, **expect: Any) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        offset = d.pop("o")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise InputError("trace: invalid page token") from e
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InputError("trace: invalid page token")
    if d != expect:
        raise InputError("trace: the page token belongs to another query")
    return offset


def _check_limits(max_depth: int, limit: int) -> None:
    if not 0 <= max_depth <= MAX_DEPTH:
        raise InputError(f"trace: max_depth must be 0-{MAX_DEPTH}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"trace: limit must be 1-{MAX_LIMIT}")


def _node(
    index: TraceIndex,
    code: str,
    depth: int,
    relation: str,
    via: str,
    st: CodeState | None = None,
) -> TraceNode:
    """``code``'s node; ``st``, its state if already read (else it is read here)."""
    if st is None:
        st = index.state(code)
    if st is None:
        return TraceNode(code, depth, relation, via, "", "unknown", "", "")
    return TraceNode(
        code,
        depth,
        relation,
        via,
        st.custodian,
        st.status,
        st.commissioned_by,
        st.parent,
        st.recalled,
        st.is_class,
        st.recalled_by,
        st.recalled_at if st.recalled else -1,
        st.disposition,
        st.since_ms,
        *_hold(index, st),
        st.void_at,
        st.recalls if st.recalled else (),
    )


def _hold(index: TraceIndex, st: CodeState) -> tuple[int, str, str]:
    """``TraceNode``'s held_at, held_by and held_via for ``st`` (``custody.holding``)."""
    hold = holding(index.state, st)
    if hold is None:
        return -1, "", ""
    return hold.held_at, hold.held_by, st.held_from if hold is st else hold.code


def walk(
    index: TraceIndex, root: str, direction: Direction, max_depth: int
) -> Iterator[TraceNode | None]:
    """All nodes in BFS order; finally yields ``None`` if some code lies beyond max_depth.
    A link that a record declared in error made (the code made lists the other in
    ``unlinked``) is not followed: the log keeps it, the trace no longer counts it."""
    back = direction == "back"
    seen = {root}
    root_state = index.state(root)
    # back, the contents of the root (a case, a pallet), at any depth, are followed too:
    # its goods came from where they came from (QA-X: a pallet's trace back named no
    # origin); not those of a container reached otherwise (a case that held the root: its
    # other contents are no source of the root)
    packed = _contents(index, root, max_depth) if back else frozenset()
    # each code's state is read once: for its node and for the links it filters
    queue: deque[tuple[str, int, CodeState | None]] = deque([(root, 0, root_state)])
    yield _node(index, root, 0, "self", "", root_state)
    beyond = False
    while queue:
        code, depth, here = queue.popleft()
        contents = code in packed and code != root
        for nxt, relation in _neighbours(index, code, back, code in packed, contents):
            if nxt in seen:
                continue
            up = back and relation != "child"  # (a link from what ``code`` was made of)
            there = None if up else index.state(nxt)
            # the code made, and what it was made from: a link a record declared in error
            # made (``CodeState.unlinked``) is not followed
            made, source = (here, nxt) if up else (there, code)
            if made is not None and made.unlinked and source in made.unlinked:
                continue
            if depth + 1 > max_depth:
                beyond = True
                continue
            if up:
                there = index.state(nxt)
            seen.add(nxt)
            yield _node(index, nxt, depth + 1, relation, code, there)
            queue.append((nxt, depth + 1, there))
    if beyond:
        yield None


def _neighbours(
    index: TraceIndex, code: str, back: bool, packed: bool, contents: bool
) -> Sequence[tuple[str, str]]:
    """``code``'s links in the walk's direction; back, when it is the root or packed in it
    (``_contents``), its contents (relation "child") after them; and for what was packed
    in the root (``contents``), not the containers it was packed into (the root, or one
    it moved to later: no source of the root's goods; QA-Z)."""
    if not back:
        return index.downstream(code)
    up = index.upstream(code)
    if contents:
        up = [(c, r) for c, r in up if r != "parent"]
    if not packed:
        return up
    return [*up, *((c, r) for c, r in index.downstream(code) if r == "child")]


def _contents(index: TraceIndex, root: str, max_depth: int) -> frozenset[str]:
    """``root`` and every code ever packed in it, fewer than ``max_depth`` levels down (its
    "child" links, but those a record declared in error made): those whose contents the
    walk may reach (review: a reusable crate's millions of past contents were read for a
    one-level query). Each level is read once."""
    out = {root}
    level = [root]
    for _ in range(max_depth - 1):
        below = []
        for code in level:
            for nxt, relation in index.downstream(code):
                if relation != "child" or nxt in out:
                    continue
                st = index.state(nxt)
                if st is not None and st.unlinked and code in st.unlinked:
                    continue
                out.add(nxt)
                below.append(nxt)
        if not below:
            break
        level = below
    return frozenset(out)


def _root(code: str) -> str:
    """The canonical form of a queried code. Raises ``InputError`` for what cannot be a
    trace code (empty, too long, control characters): no store lookup is made for it."""
    problem = code_problem(code)
    if problem:
        raise InputError(f"trace: {problem}")
    return normalize_code(code)


def _not_known(code: str, root: str) -> InputError | NotFoundError:
    """An unknown code; a malformed one (a URN in capitals, a wrong check digit) is told as
    the input error it is, with the spelling a record would have had to use."""
    from node.epcis import gs1_problem, made_code_problem
    from node.records import lookalike_problem

    problem = lookalike_problem(root) or gs1_problem(root) or made_code_problem(root)
    if problem:
        return InputError(f"trace: code {code!r} {problem}")
    return NotFoundError(f"trace: code {code!r} is not known")


def _trace(
    index: TraceIndex,
    code: str,
    direction: Direction,
    max_depth: int,
    limit: int,
    token: str,
) -> TracePage:
    _check_limits(max_depth, limit)
    root = _root(code)
    neighbours = index.upstream if direction == "back" else index.downstream
    if index.state(root) is None and not neighbours(root):
        # (a lot never commissioned itself is known by the items commissioned in it)
        raise _not_known(code, root)
    offset = _untoken(token, r=root, d=direction, m=max_depth) if token else 0
    nodes: list[TraceNode] = []
    more = False
    beyond = False
    for i, n in enumerate(walk(index, root, direction, max_depth)):
        if n is None:
            beyond = True
            break
        if i < offset:
            continue
        if len(nodes) == limit:
            more = True
            break
        nodes.append(n)
    nxt = _token(r=root, d=direction, m=max_depth, o=offset + limit) if more else ""
    return TracePage(root, direction, tuple(nodes), nxt, beyond)


def trace_back(
    index: TraceIndex,
    code: str,
    max_depth: int = MAX_DEPTH,
    limit: int = DEFAULT_LIMIT,
    token: str = "",
) -> TracePage:
    """The sources of ``code``: transformation inputs and containers, back to commissioning."""
    return _trace(index, code, "back", max_depth, limit, token)


def trace_forward(
    index: TraceIndex,
    code: str,
    max_depth: int = MAX_DEPTH,
    limit: int = DEFAULT_LIMIT,
    token: str = "",
) -> TracePage:
    """Every downstream code of ``code`` with its custodian and status: the recall scope."""
    return _trace(index, code, "forward", max_depth, limit, token)


def history(
    index: TraceIndex, code: str, limit: int = DEFAULT_LIMIT, token: str = ""
) -> HistoryPage:
    """Log indexes of every committed record naming (or moving) ``code``, in log order.

    The page token holds the next log index, so paging is stable while blocks are added.
    """
    _check_limits(0, limit)
    root = _root(code)
    if index.state(root) is None:
        if index.downstream(root):  # (QA-Q: "not known", where trace forward listed items)
            return HistoryPage(root, (), "", _node(index, root, 0, "self", ""))
        raise _not_known(code, root)
    start = _untoken(token, r=root, d="history") if token else 0
    got = list(index.history(root, start, limit + 1))
    more = len(got) > limit
    nxt = _token(r=root, d="history", o=got[limit - 1] + 1) if more else ""
    return HistoryPage(root, tuple(got[:limit]), nxt, _node(index, root, 0, "self", ""))


def recall_scope(index: TraceIndex, code: str, max_depth: int = MAX_DEPTH) -> list[TraceNode]:
    """Every node of the forward trace (all pages) that is not yet recalled, root included.

    What a regulator's recall record should name (``suyuan recall``); large scopes should be
    split over several records to respect the record size limit.
    """
    out: list[TraceNode] = []
    token = ""
    while True:
        page = trace_forward(index, code, max_depth, MAX_LIMIT, token)
        out.extend(n for n in page.nodes if not n.recalled and n.status != "unknown")
        if not page.next_token:
            return out
        token = page.next_token
