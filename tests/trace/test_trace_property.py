"""Trace queries against a brute-force reference on random supply-chain graphs (seeded)."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from node.custody import CodeState, CustodyUpdate, Edge, InMemoryCustody, apply
from node.errors import InputError, NotFoundError
from node.records import make_record
from node.trace import TraceNode, history, trace_back, trace_forward, walk
from tests.trace.helpers import GENESIS, event

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def build_index(n: int, edges: list[tuple[int, int, Any]]) -> InMemoryCustody:
    """An index with codes c0..c{n-1} and the given (up, down, kind) edges; cycles allowed."""
    idx = InMemoryCustody()
    for i in range(n):
        idx.states[f"c{i}"] = CodeState(f"c{i}", "farm", f"m{i % 3}")
    upd = CustodyUpdate(0, {}, tuple(Edge(f"c{a}", f"c{b}", k, 0) for a, b, k in edges), ())
    idx.commit(upd)
    return idx


def reference_distances(n: int, adj: dict[int, set[int]], root: int) -> dict[int, int]:
    """Shortest distances by repeated relaxation (Bellman-Ford style, not BFS)."""
    inf = n + 1
    dist = {i: inf for i in range(n)}
    dist[root] = 0
    for _ in range(n):
        changed = False
        for a in range(n):
            for b in adj.get(a, ()):
                if dist[a] + 1 < dist[b]:
                    dist[b] = dist[a] + 1
                    changed = True
        if not changed:
            break
    return {i: d for i, d in dist.items() if d < inf}


def _containing(edges: list[tuple[int, int, Any]]) -> dict[int, set[int]]:
    """Container -> contents, of the "parent" edges."""
    out: dict[int, set[int]] = {}
    for a, b, k in edges:
        if k == "parent":
            out.setdefault(a, set()).add(b)
    return out


graphs = st.integers(min_value=1, max_value=25).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(
            st.tuples(
                st.integers(0, n - 1), st.integers(0, n - 1), st.sampled_from(["input", "parent"])
            ),
            max_size=3 * n,
        ),
        st.integers(0, n - 1),
        st.integers(0, 6),
        st.integers(1, 7),
    )
)


@seed(20260304)
@SETTINGS
@given(graphs)
def test_trace_matches_brute_force_closure(g):
    n, raw, root, max_depth, limit = g
    edges = [(a, b, k) for a, b, k in raw if a != b]
    idx = build_index(n, edges)
    fwd: dict[int, set[int]] = {}
    back: dict[int, set[int]] = {}
    # back, from the root and what was packed in it at any depth, its contents too; from
    # what was packed in it, not the containers it was packed into
    packed = {
        i for i, d in reference_distances(n, _containing(edges), root).items() if d < max_depth
    }  # (packed fewer than max_depth levels down: the walk reaches only their contents)
    for a, b, k in edges:
        fwd.setdefault(a, set()).add(b)
        if not (k == "parent" and b in packed and b != root):
            back.setdefault(b, set()).add(a)
        if k == "parent" and a in packed:
            back.setdefault(a, set()).add(b)
    for direction, adj, query in (("forward", fwd, trace_forward), ("back", back, trace_back)):
        ref = reference_distances(n, adj, root)
        within = {f"c{i}": d for i, d in ref.items() if d <= max_depth}
        # all pages, concatenated
        nodes: list[TraceNode] = []
        token = ""
        while True:
            page = query(idx, f"c{root}", max_depth, limit, token)
            assert len(page.nodes) <= limit
            nodes.extend(page.nodes)
            if not page.next_token:
                break
            token = page.next_token
        assert {x.code: x.depth for x in nodes} == within, direction
        assert len(nodes) == len(within)  # each code once
        assert page.depth_limited == any(d > max_depth for d in ref.values())
        # a BFS tree: each node reached from a node one level up, over a real edge
        depth = {x.code: x.depth for x in nodes}
        for x in nodes[1:]:
            assert depth[x.via] == x.depth - 1
            down = direction == "forward" or x.relation == "child"
            a, b = (x.via, x.code) if down else (x.code, x.via)
            assert int(b[1:]) in fwd.get(int(a[1:]), set())
        assert [x.depth for x in nodes] == sorted(x.depth for x in nodes)
        assert nodes[0].relation == "self"
        # one big page equals the concatenation
        whole = query(idx, f"c{root}", max_depth, 1000)
        assert whole.nodes == tuple(nodes)


@seed(20260305)
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(st.integers(0, 2**32 - 1))
def test_engine_built_chains_match_reference(rng_seed):
    """Random fan-in/fan-out transformations through the real engine vs. the generating DAG."""
    rnd = random.Random(rng_seed)
    idx = InMemoryCustody()
    made: list[str] = []
    parents: dict[str, set[str]] = {}
    log = 0

    def run(ev):
        nonlocal log
        rec = make_record(GENESIS, "processor", ev, nonce=f"{log:016x}")
        idx.commit(apply(idx, rec, ("processor",), GENESIS, log))
        log += 1

    for i in range(rnd.randint(1, 4)):
        code = f"lot:raw:{i}"
        run(event(action="ADD", step="commissioning", quantityList=[{"epcClass": code}]))
        made.append(code)
        parents[code] = set()
    for j in range(rnd.randint(1, 12)):
        ins = rnd.sample(made, rnd.randint(1, min(3, len(made))))  # fan-in
        outs = [f"lot:t{j}:{k}" for k in range(rnd.randint(1, 3))]  # fan-out
        run(
            event(
                "TransformationEvent",
                None,
                "commissioning",
                inputQuantityList=[{"epcClass": c} for c in ins],
                outputQuantityList=[{"epcClass": c} for c in outs],
            )
        )
        for o in outs:
            parents[o] = set(ins)
        made.extend(outs)
    root = rnd.choice(made)
    # reference: transitive closures of the generating relation
    down = {c for c in made if _reaches(parents, c, root)} - {root}
    up = _ancestors(parents, root)
    fwd = {x.code for x in trace_forward(idx, root, 64, 1000).nodes} - {root}
    bwd = {x.code for x in trace_back(idx, root, 64, 1000).nodes} - {root}
    assert fwd == down
    assert bwd == up
    assert all(x.relation == "input" for x in trace_back(idx, root, 64, 1000).nodes[1:])


def _ancestors(parents: dict[str, set[str]], c: str) -> set[str]:
    out: set[str] = set()
    todo = list(parents[c])
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(parents[p])
    return out


def _reaches(parents: dict[str, set[str]], c: str, root: str) -> bool:
    return root in _ancestors(parents, c)


def test_paging_tokens_are_checked():
    idx = build_index(5, [(0, i, "input") for i in range(1, 5)])
    page = trace_forward(idx, "c0", 3, 2)
    assert page.next_token
    with pytest.raises(InputError, match="another query"):
        trace_back(idx, "c0", 3, 2, page.next_token)
    with pytest.raises(InputError, match="invalid page token"):
        trace_forward(idx, "c0", 3, 2, "!!!")
    # an edited offset is a bad token, whatever query it names (was "another query")
    raw = json.loads(base64.urlsafe_b64decode(page.next_token + "=" * (-len(page.next_token) % 4)))
    bad = base64.urlsafe_b64encode(json.dumps({**raw, "o": -5}).encode()).decode().rstrip("=")
    with pytest.raises(InputError, match="invalid page token"):
        trace_forward(idx, "c0", 3, 2, bad)
    with pytest.raises(InputError, match="max_depth"):
        trace_forward(idx, "c0", 65, 2)
    with pytest.raises(NotFoundError):
        trace_forward(idx, "nope", 3, 2)
    assert list(walk(idx, "c0", "forward", 0))[-1] is None  # depth-limited marker


class _NoLookups(InMemoryCustody):
    def state(self, code: str) -> CodeState | None:
        raise AssertionError(f"looked up {code!r}")


@pytest.mark.parametrize(
    ("code", "why"),
    [("", "empty"), ("   ", "empty"), ("x" * 201, "longer than 200"), ("a\nb", "control")],
)
def test_a_code_that_cannot_be_one_is_bad_input_before_any_lookup(code, why):
    # an empty key reached LMDB as MDB_BAD_VALSIZE: an UNKNOWN status, not INVALID_ARGUMENT
    idx = _NoLookups()
    for query in (
        lambda: trace_forward(idx, code),
        lambda: trace_back(idx, code),
        lambda: history(idx, code),
    ):
        with pytest.raises(InputError, match=f"^trace: .*{why}"):
            query()


def test_history_pages():
    idx = build_index(1, [])
    idx.log["c0"] = list(range(0, 50, 2))
    seen: list[int] = []
    token = ""
    while True:
        page = history(idx, "c0", 7, token)
        seen.extend(page.log_indexes)
        if not page.next_token:
            break
        token = page.next_token
    assert seen == list(range(0, 50, 2))
