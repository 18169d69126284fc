"""node.merkle against the RFC 6962 vectors, pymerkle 7 (independent) and tampering."""

from __future__ import annotations

import pymerkle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import merkle
from node.errors import InputError

# RFC 6962 / certificate-transparency test data (trillian merkle/log_verifier_test.go).
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
H = {
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37e": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "fac5": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6e34": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
}


def hs(*names: str) -> list[bytes]:
    return [bytes.fromhex(H[n]) for n in names]


INCLUSION = [  # (index, size, path)
    (0, 1, []),
    (0, 8, hs("96a2", "5f08", "6b47")),
    (5, 8, hs("bc1a", "ca85", "d37e")),
    (2, 3, hs("fac5")),
    (1, 5, hs("6e34", "5f08", "bc1a")),
]
CONSISTENCY = [  # (size1, size2, path)
    (1, 1, []),
    (1, 8, hs("96a2", "5f08", "6b47")),
    (6, 8, hs("0ebc", "ca85", "d37e")),
    (2, 5, hs("5f08", "bc1a")),
]
LEAF_HASHES = [merkle.leaf_hash(d) for d in LEAVES]
OTHER = bytes(range(32))


def test_empty_tree_and_roots() -> None:
    assert ROOTS[0] == merkle.EMPTY_ROOT
    assert merkle.root([]) == ROOTS[0]
    for size in range(9):
        assert merkle.root(LEAF_HASHES[:size]) == ROOTS[size], size


def test_leaf_and_node_hash_prefixes() -> None:
    assert merkle.leaf_hash(b"") == ROOTS[1]
    assert merkle.node_hash(LEAF_HASHES[0], LEAF_HASHES[1]) == ROOTS[2]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_vectors(index: int, size: int, path: list[bytes]) -> None:
    assert merkle.inclusion_path(LEAF_HASHES[:size], index) == path
    assert merkle.verify_inclusion(LEAF_HASHES[index], index, size, path, ROOTS[size])
    assert_inclusion_tampering_fails(LEAF_HASHES[index], index, size, path, ROOTS[size])


@pytest.mark.parametrize(("size1", "size2", "path"), CONSISTENCY)
def test_consistency_vectors(size1: int, size2: int, path: list[bytes]) -> None:
    assert merkle.consistency_path(LEAF_HASHES[:size2], size1) == path
    assert merkle.verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], path)
    if path:
        assert_consistency_tampering_fails(size1, size2, ROOTS[size1], ROOTS[size2], path)


def test_verifiers_accept_protobuf_repeated_fields() -> None:
    from proto import types_pb2

    index, size, path = INCLUSION[2]
    bundle = types_pb2.ConsistencyProof(path=path)  # any message with a repeated bytes field
    assert merkle.verify_inclusion(LEAF_HASHES[index], index, size, bundle.path, ROOTS[size])
    size1, size2, cpath = CONSISTENCY[2]
    bundle = types_pb2.ConsistencyProof(path=cpath)
    assert merkle.verify_consistency(size1, size2, ROOTS[size1], ROOTS[size2], bundle.path)


def test_consistency_edge_cases() -> None:
    e = merkle.EMPTY_ROOT
    assert merkle.verify_consistency(0, 0, e, e, [])
    assert merkle.verify_consistency(0, 5, e, ROOTS[5], [])
    assert not merkle.verify_consistency(0, 5, OTHER, ROOTS[5], [])
    assert not merkle.verify_consistency(0, 0, e, e, [e])
    assert not merkle.verify_consistency(3, 3, ROOTS[3], ROOTS[4], [])
    assert not merkle.verify_consistency(3, 3, ROOTS[3], ROOTS[3], [e])
    assert not merkle.verify_consistency(2, 1, ROOTS[2], ROOTS[1], [])
    assert not merkle.verify_consistency(1, 2, ROOTS[1], ROOTS[2], [])


@pytest.mark.parametrize(
    "args",
    [
        (b"x", 0, 1, [], ROOTS[1]),  # short leaf hash
        (ROOTS[1], 0, 1, [], b"r"),  # short root
        (ROOTS[1], 1, 1, [], ROOTS[1]),  # index == size
        (ROOTS[1], -1, 1, [], ROOTS[1]),
        (ROOTS[1], 0, 0, [], ROOTS[0]),
        (ROOTS[1], True, 2, [ROOTS[1]], ROOTS[2]),  # bool is not an index
        (LEAF_HASHES[0], 0, 2, [LEAF_HASHES[1][:31]], ROOTS[2]),  # short path element
        (LEAF_HASHES[0], 0, 2, LEAF_HASHES[1], ROOTS[2]),  # bytes, not a list
        (LEAF_HASHES[0], 0, 2, None, ROOTS[2]),
        (LEAF_HASHES[0], 0, 2, [None], ROOTS[2]),
        (LEAF_HASHES[0], 0, 1 << 64, [LEAF_HASHES[1]], ROOTS[2]),
        (LEAF_HASHES[0], 0, 2, [LEAF_HASHES[1]] * 129, ROOTS[2]),
        ("not bytes", 0, 1, [], ROOTS[1]),
    ],
)
def test_verify_inclusion_malformed_is_false(args: tuple[object, ...]) -> None:
    assert merkle.verify_inclusion(*args) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "args",
    [
        (1, 8, ROOTS[1][:31], ROOTS[8], hs("96a2", "5f08", "6b47")),
        (1, 8, ROOTS[1], b"", hs("96a2", "5f08", "6b47")),
        (1, 8, ROOTS[1], ROOTS[8], [b"", *hs("5f08", "6b47")]),
        (-1, 8, ROOTS[1], ROOTS[8], hs("96a2", "5f08", "6b47")),
        (1, "8", ROOTS[1], ROOTS[8], hs("96a2", "5f08", "6b47")),
        (1, 8, ROOTS[1], ROOTS[8], "path"),
        (1, 8, ROOTS[1], ROOTS[8], None),
    ],
)
def test_verify_consistency_malformed_is_false(args: tuple[object, ...]) -> None:
    assert merkle.verify_consistency(*args) is False  # type: ignore[arg-type]


def test_reference_generators_refuse_bad_arguments() -> None:
    with pytest.raises(InputError):
        merkle.inclusion_path(LEAF_HASHES[:3], 3)
    with pytest.raises(InputError):
        merkle.consistency_path(LEAF_HASHES[:3], 4)


def test_subtrees_cover_aligned_ranges() -> None:
    assert merkle.subtrees(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert merkle.subtrees(8, 5) == [(2, 2), (0, 12)]
    assert merkle.subtrees(0, 0) == []


# ---------------------------------------------------------------- tampering


def _changed(path: list[bytes], i: int) -> list[bytes]:
    out = list(path)
    out[i] = bytes([out[i][0] ^ 1]) + out[i][1:]
    return out


def assert_inclusion_tampering_fails(
    leaf: bytes, index: int, size: int, path: list[bytes], root: bytes
) -> None:
    """Every single-point change to a valid inclusion proof must fail."""
    v = merkle.verify_inclusion
    for i in range(len(path)):
        assert not v(leaf, index, size, _changed(path, i), root), f"hash {i} changed"
    assert not v(_changed([leaf], 0)[0], index, size, path, root), "leaf changed"
    assert not v(leaf, index, size, path, _changed([root], 0)[0]), "root changed"
    for other in (index - 1, index + 1):
        if 0 <= other < size:
            assert not v(leaf, other, size, path, root), f"index {other}"
    if path:
        assert not v(leaf, index, size, path[:-1], root), "path too short"
    assert not v(leaf, index, size, [*path, root], root), "path too long (end)"
    assert not v(leaf, index, size, [root, *path], root), "path too long (front)"
    assert not v(leaf, index, size * 2, path, root), "size doubled"


def assert_consistency_tampering_fails(
    size1: int, size2: int, root1: bytes, root2: bytes, path: list[bytes]
) -> None:
    """Every single-point change to a valid, non-empty consistency proof must fail."""
    v = merkle.verify_consistency
    for i in range(len(path)):
        assert not v(size1, size2, root1, root2, _changed(path, i)), f"hash {i} changed"
    assert not v(size1, size2, _changed([root1], 0)[0], root2, path), "root1 changed"
    assert not v(size1, size2, root1, _changed([root2], 0)[0], path), "root2 changed"
    assert not v(size1, size2, root2, root1, path), "roots swapped"
    assert not v(size1 - 1, size2, root1, root2, path), "size1 - 1"
    assert not v(size1 + 1, size2, root1, root2, path), "size1 + 1"
    assert not v(size1, size2 * 2, root1, root2, path), "size2 doubled"
    assert not v(size1, size2, root1, root2, path[:-1]), "path too short"
    assert not v(size1, size2, root1, root2, [*path, root1]), "path too long (end)"
    assert not v(size1, size2, root1, root2, [path[0], *path]), "path too long (front)"


# ---------------------------------------------------------------- against pymerkle

_TREES: dict[int, tuple[list[bytes], pymerkle.InmemoryTree]] = {}


def _tree(size: int) -> tuple[list[bytes], pymerkle.InmemoryTree]:
    """Leaf hashes and a pymerkle tree of ``size`` distinct leaves (cached)."""
    if size not in _TREES:
        data = [b"leaf-%d" % i for i in range(size)]
        tree = pymerkle.InmemoryTree()  # default algorithm sha256, security=True: RFC 9162
        for d in data:
            tree.append_entry(d)
        _TREES[size] = ([merkle.leaf_hash(d) for d in data], tree)
    return _TREES[size]


SIZES = st.one_of(st.integers(1, 70), st.integers(1, 3000))


@settings(derandomize=True, max_examples=150, deadline=None)
@given(size=SIZES, data=st.data())
def test_inclusion_agrees_with_pymerkle(size: int, data: st.DataObject) -> None:
    leaves, tree = _tree(size)
    index = data.draw(st.integers(0, size - 1), label="index")
    root = merkle.root(leaves)
    assert root == tree.get_root(size)
    path = merkle.inclusion_path(leaves, index)
    theirs = tree.prove_inclusion(index + 1, size)  # pymerkle counts leaves from one
    assert theirs.path == [leaves[index], *path]
    pymerkle.verify_inclusion(leaves[index], root, theirs)  # raises if invalid
    assert merkle.verify_inclusion(leaves[index], index, size, path, root)
    assert_inclusion_tampering_fails(leaves[index], index, size, path, root)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(size2=SIZES, data=st.data())
def test_consistency_agrees_with_pymerkle(size2: int, data: st.DataObject) -> None:
    leaves, tree = _tree(size2)
    size1 = data.draw(st.integers(1, size2), label="size1")
    root1, root2 = merkle.root(leaves[:size1]), merkle.root(leaves)
    assert root1 == tree.get_root(size1)
    path = merkle.consistency_path(leaves, size1)
    theirs = tree.prove_consistency(size1, size2)
    # pymerkle's consistency proofs have their own layout, so compare node by node: each
    # element must be the MTH pymerkle computes for the same leaf range.
    ranges = merkle.consistency_ranges(size1, size2)
    assert path == [tree._get_root(s, s + z) for s, z in ranges]
    pymerkle.verify_consistency(root1, root2, theirs)
    assert merkle.verify_consistency(size1, size2, root1, root2, path)
    if size1 < size2:
        assert_consistency_tampering_fails(size1, size2, root1, root2, path)


@given(
    before=st.lists(st.binary(max_size=8), max_size=40),
    after=st.lists(st.binary(max_size=8), min_size=1, max_size=40),
)
@settings(max_examples=60, deadline=None)
def test_preview_from_leaf_hashes_equals_preview_from_leaf_data(
    before: list[bytes], after: list[bytes]
) -> None:
    from node.merkle_store import Frontier, extend, preview

    front = extend(Frontier(0, (), ()), before).frontier
    hashes = [merkle.leaf_hash(d) for d in after]
    assert preview(front, hashes, hashed=True) == preview(front, after)
    assert preview(front, after)[1] == merkle.root([merkle.leaf_hash(d) for d in [*before, *after]])
