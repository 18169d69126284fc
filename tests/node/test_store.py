"""node.store: the LMDB store and its persistent Merkle tree."""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pymerkle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node import merkle
from node.errors import ConfigError, InputError, NotFoundError, ReplayError, StorageError
from node.store import ZERO_HASH, BlockWrite, Store
from proto import types_pb2
from tests.node.store_workload import make_block
from tests.node.test_merkle import (
    assert_consistency_tampering_fails,
    assert_inclusion_tampering_fails,
)

GENESIS = hashlib.sha256(b"genesis").digest()


def fill(store: Store, seed: int, blocks: int, max_records: int = 300) -> list[bytes]:
    """Append ``blocks`` workload blocks; return every leaf hash in log order."""
    leaves: list[bytes] = []
    for h in range(store.head().height + 1, store.head().height + 1 + blocks):
        b = make_block(seed, h, max_records)
        store.append_block(b)
        leaves += [merkle.leaf_hash(d) for d in b.leaf_data]
    return leaves


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "db", GENESIS) as s:
        yield s


# ---------------------------------------------------------------- the Merkle tree on LMDB


class _Log:
    """One store of a few thousand leaves in uneven blocks, shared by the property tests."""

    def __init__(self, path: Path) -> None:
        self.store = Store.open(path, GENESIS, map_size=1 << 20)
        self.leaves = fill(self.store, seed=7, blocks=30, max_records=200)
        self.tree = pymerkle.InmemoryTree()
        for h in range(1, 31):
            for d in make_block(7, h, 200).leaf_data:
                self.tree.append_entry(d)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Log]:
    lg = _Log(tmp_path_factory.mktemp("log") / "db")
    yield lg
    lg.store.close()


def test_log_fixture_is_big_enough(log: _Log) -> None:
    assert 2000 < log.store.head().log_size == len(log.leaves) == log.tree.get_size()


@settings(derandomize=True, max_examples=200, deadline=None)
@given(data=st.data())
def test_lmdb_tree_agrees_with_reference_and_pymerkle(log: _Log, data: st.DataObject) -> None:
    n = len(log.leaves)
    size = data.draw(st.one_of(st.integers(1, 64), st.integers(1, n)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    size1 = data.draw(st.integers(1, size), label="size1")
    s, leaves = log.store, log.leaves[:size]

    root = s.log_root(size)
    assert root == merkle.root(leaves) == log.tree.get_root(size)
    assert s.leaf_hash_at(index) == leaves[index]

    path = s.inclusion_proof(index, size)
    assert path == merkle.inclusion_path(leaves, index)
    assert log.tree.prove_inclusion(index + 1, size).path == [leaves[index], *path]
    assert merkle.verify_inclusion(leaves[index], index, size, path, root)
    assert_inclusion_tampering_fails(leaves[index], index, size, path, root)

    root1 = s.log_root(size1)
    cpath = s.consistency_proof(size1, size)
    assert cpath == merkle.consistency_path(leaves, size1)
    pymerkle.verify_consistency(root1, root, log.tree.prove_consistency(size1, size))
    assert merkle.verify_consistency(size1, size, root1, root, cpath)
    if size1 < size:
        assert_consistency_tampering_fails(size1, size, root1, root, cpath)

    # A size off by one, checked against the real root of that size, must fail too.
    for other in (size - 1, size + 1):
        if index < other <= n:
            assert not merkle.verify_inclusion(leaves[index], index, other, path, s.log_root(other))
        if size1 < other <= n and size1 != size:
            assert not merkle.verify_consistency(size1, other, root1, s.log_root(other), cpath)
    for other in (size1 - 1, size1 + 1):
        if 0 < other < size and size1 != size:
            assert not merkle.verify_consistency(other, size, s.log_root(other), root, cpath)


def test_preview_root_matches_the_append(store: Store) -> None:
    fill(store, seed=8, blocks=3, max_records=20)
    b = make_block(8, 4, 20)
    before = store.head()
    size, root = store.preview_root(b.leaf_data)
    assert store.head() == before
    store.append_block(b)
    assert (size, root) == (store.head().log_size, store.head().log_root)
    assert store.preview_root([]) == (size, root)


def test_every_size_of_a_small_log(store: Store) -> None:
    leaves = fill(store, seed=3, blocks=12, max_records=9)
    for size in range(len(leaves) + 1):
        assert store.log_root(size) == merkle.root(leaves[:size])
        for i in range(size):
            assert store.inclusion_proof(i, size) == merkle.inclusion_path(leaves[:size], i)
        for m in range(size + 1):
            assert store.consistency_proof(m, size) == merkle.consistency_path(leaves[:size], m)


def test_proofs_beyond_the_log_are_refused(store: Store) -> None:
    fill(store, seed=1, blocks=2, max_records=5)
    n = store.head().log_size
    with pytest.raises(NotFoundError):
        store.log_root(n + 1)
    with pytest.raises(NotFoundError):
        store.inclusion_proof(0, n + 1)
    with pytest.raises(InputError):
        store.inclusion_proof(n, n)
    with pytest.raises(InputError):
        store.consistency_proof(n, n - 1)
    with pytest.raises(NotFoundError):
        store.leaf_hash_at(n)


# ---------------------------------------------------------------- blocks, records, indexes


def test_empty_store_head(store: Store) -> None:
    head = store.head()
    assert (head.height, head.block_hash, head.log_size) == (0, ZERO_HASH, 0)
    assert head.log_root == merkle.EMPTY_ROOT == store.log_root(0)
    assert store.get_block(1) is None


def test_blocks_records_and_indexes(store: Store) -> None:
    blocks = [make_block(11, h, 40) for h in range(1, 6)]
    for b in blocks:
        store.append_block(b)
    index = 0
    for b in blocks:
        got = store.get_block(b.height)
        assert got is not None
        assert got.header_bytes == b.header_bytes
        assert got.certificate_bytes == b.certificate_bytes
        assert got.block_hash == b.block_hash
        assert got.first_index == index
        assert list(got.envelopes) == list(b.envelopes)
        for env, rid, (author, nonce) in zip(b.envelopes, b.record_ids, b.nonces, strict=True):
            assert store.get_envelope(rid) == env
            assert store.get_envelope_at(index) == env
            assert store.record_location(rid) == (index, b.height)
            assert store.has_record(rid)
            assert store.nonce_seen(author, nonce)
            index += 1
    assert store.head().log_size == index
    assert store.head().block_hash == blocks[-1].block_hash
    assert not store.has_record(bytes(32))
    assert store.record_location(bytes(32)) is None
    assert store.get_envelope(bytes(32)) is None
    assert store.get_envelope_at(index) is None
    assert not store.nonce_seen("author-0", "never")
    assert store.get("custody", b"last-height") == b"5"


def test_code_index_lookup_and_paging(store: Store) -> None:
    blocks = [make_block(5, h, 60) for h in range(1, 8)]
    expected: dict[str, list[int]] = {}
    index = 0
    for b in blocks:
        store.append_block(b)
        for codes in b.codes:
            for c in sorted(set(codes)):
                expected.setdefault(c, []).append(index)
            index += 1
    for code, want in expected.items():
        assert store.code_indexes(code) == want
        paged: list[int] = []
        start = 0
        while page := store.code_indexes(code, start=start, limit=3):
            paged += page
            start = page[-1] + 1
        assert paged == want
        assert store.code_indexes(code, start=want[-1] + 1) == []
    assert store.code_indexes("urn:code:unknown") == []
    assert store.code_indexes("urn:code:1", limit=0) == []


def test_long_codes_are_indexed(store: Store) -> None:
    long_a, long_b = "x" * 600 + "a", "x" * 600 + "b"
    b = _block(1, [b"e1", b"e2"], codes=[[long_a], [long_b, long_a]])
    store.append_block(b)
    assert store.code_indexes(long_a) == [0, 1]
    assert store.code_indexes(long_b) == [1]


def test_codes_that_prefix_each_other_or_need_digests(store: Store) -> None:
    codes = ["", "a", "a\x00b", "ab", "é" * 300, "urn:x:1", "urn:x:10"]
    b = _block(1, [b"e%d" % i for i in range(len(codes))], codes=[[c] for c in codes])
    store.append_block(b)
    for i, c in enumerate(codes):
        assert store.code_indexes(c) == [i], repr(c)


def test_nonce_keys_are_unambiguous(store: Store) -> None:
    nonces = [("ab", "c"), ("a", "bc"), ("x" * 300, "n"), ("a", "n" * 600)]
    envs = [b"r%d" % i for i in range(len(nonces))]
    store.append_block(_block(1, envs, nonces=nonces))
    for a, n in nonces:
        assert store.nonce_seen(a, n)
    assert not store.nonce_seen("abc", "")
    assert not store.nonce_seen("a", "n" * 599)


def _block(height: int, envelopes: list[bytes], **kw: object) -> BlockWrite:
    fields: dict[str, object] = {
        "height": height,
        "block_hash": hashlib.sha256(b"block%d" % height).digest(),
        "header_bytes": b"header%d" % height,
        "certificate_bytes": b"cert%d" % height,
        "envelopes": envelopes,
        "record_ids": [hashlib.sha256(e).digest() for e in envelopes],
        "leaf_data": envelopes,
        "codes": [[] for _ in envelopes],
        "nonces": [("a", e.hex()) for e in envelopes],
    }
    fields.update(kw)
    return BlockWrite(**fields)  # type: ignore[arg-type]


def test_committed_block_bytes_are_the_proto_encoding(store: Store) -> None:
    env = types_pb2.Envelope(payload=b'{"x":1}', payload_type="t")
    env.signatures.add(keyid="m", sig=bytes(64))
    header = types_pb2.BlockHeader(chain_id="c", height=1, log_size=2).SerializeToString()
    cert = types_pb2.CommitCertificate(height=1, block_hash=bytes(32)).SerializeToString()
    envs = [env.SerializeToString(), types_pb2.Envelope(payload=b"2").SerializeToString()]
    store.append_block(_block(1, envs, header_bytes=header, certificate_bytes=cert))
    got = store.get_block(1)
    assert got is not None
    parsed = types_pb2.CommittedBlock.FromString(got.committed_block_bytes())
    assert parsed.block.header == header
    assert [e.SerializeToString() for e in parsed.block.envelopes] == envs
    assert parsed.certificate.SerializeToString() == cert
    assert got.committed_block_bytes() == parsed.SerializeToString()
    assert types_pb2.Block.FromString(got.block_bytes()) == parsed.block


def test_empty_blocks(store: Store) -> None:
    store.append_block(_block(1, []))
    store.append_block(_block(2, [b"r"]))
    store.append_block(_block(3, []))
    assert store.head().height == 3
    assert store.record_location(hashlib.sha256(b"r").digest()) == (0, 2)
    b3 = store.get_block(3)
    assert b3 is not None
    assert b3.envelopes == ()
    assert b3.first_index == 1


# ---------------------------------------------------------------- refusals leave no trace


def _snapshot(store: Store) -> tuple[object, ...]:
    h = store.head()
    return (h, store.get_block(h.height + 1), store.get_envelope_at(h.log_size))


def test_wrong_height_is_refused_and_store_unchanged(store: Store) -> None:
    fill(store, seed=2, blocks=3, max_records=5)
    before = _snapshot(store)
    for height in (1, 3, 5):
        with pytest.raises(StorageError, match="does not follow"):
            store.append_block(make_block(2, height, 5))
    assert _snapshot(store) == before
    store.append_block(make_block(2, 4, 5))
    assert store.head().height == 4


def test_replayed_record_id_or_nonce_refused_atomically(store: Store) -> None:
    store.append_block(_block(1, [b"a", b"b"]))
    before = _snapshot(store)
    with pytest.raises(ReplayError, match="record id"):
        store.append_block(_block(2, [b"c", b"a"]))
    with pytest.raises(ReplayError, match="nonce"):
        store.append_block(_block(2, [b"d"], nonces=[("a", b"a".hex())]))
    with pytest.raises(ReplayError):
        store.append_block(_block(2, [b"e", b"e"]))  # repeated inside one block
    assert _snapshot(store) == before
    assert not store.has_record(hashlib.sha256(b"c").digest())
    assert not store.nonce_seen("a", b"c".hex())
    store.append_block(_block(2, [b"c"]))
    assert store.head().log_size == 3


def test_inconsistent_block_is_refused(store: Store) -> None:
    with pytest.raises(InputError):
        store.append_block(_block(1, [b"a"], record_ids=[]))
    with pytest.raises(InputError):
        store.append_block(_block(1, [b"a"], record_ids=[b"short"]))
    with pytest.raises(StorageError, match="unknown extra"):
        store.append_block(_block(1, [b"a"], extra=[("ids", b"k", b"v")]))
    assert store.head().height == 0


# ---------------------------------------------------------------- open, reopen, grow


def test_reopen_keeps_everything_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Store.open(path, GENESIS) as s:
        leaves = fill(s, seed=9, blocks=7, max_records=50)
        head = s.head()
        assert s.get_locked() is None
        s.put_sign_state(b"h=7,r=0,step=prevote", b"locked block")
        s.put_sign_state(b"h=7,r=0,step=precommit")  # (the locked value stays)
    with Store.open(path, GENESIS, create=False) as s:
        assert s.head() == head
        assert s.get_sign_state() == b"h=7,r=0,step=precommit"
        assert s.get_locked() == b"locked block"
        leaves += fill(s, seed=9, blocks=3, max_records=50)
        assert s.log_root(len(leaves)) == merkle.root(leaves)
        assert s.log_root(head.log_size) == head.log_root


def test_a_truncated_data_file_is_refused_not_a_crash(tmp_path: Path) -> None:
    # a truncated copy (truncate -s 8192 data.mdb) killed the node with SIGBUS, silently;
    # run in a child so that a regression is a failed test, not a dead test process
    import subprocess
    import sys

    path = tmp_path / "db"
    with Store.open(path, GENESIS) as s:
        fill(s, seed=3, blocks=5, max_records=200)
    with open(path / "data.mdb", "r+b") as f:
        f.truncate(8192)
    code = (
        "import hashlib, sys; from node.store import Store; from node.errors import StorageError\n"
        "try:\n"
        f"    Store.open({str(path)!r}, hashlib.sha256(b'genesis').digest(), create=False)\n"
        "except StorageError as e:\n"
        "    print(e); sys.exit(4)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 4, (r.returncode, r.stderr)
    assert "is corrupt: data.mdb holds 8192 bytes" in r.stdout


def test_an_empty_data_file_is_refused_not_taken_for_a_new_store(tmp_path: Path) -> None:
    # QA: a 0-byte data.mdb was opened as a new store, and a validator that ran before
    # synced as new, its sign state gone, without a word
    path = tmp_path / "db"
    with Store.open(path, GENESIS) as s:
        fill(s, seed=3, blocks=2, max_records=20)
    (path / "data.mdb").write_bytes(b"")
    for create in (True, False):
        with pytest.raises(StorageError, match=r"data.mdb is empty \(0 bytes"):
            Store.open(path, GENESIS, create=create)
    assert (path / "data.mdb").stat().st_size == 0  # nothing written


def test_other_chain_or_version_or_missing_store_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with pytest.raises(StorageError, match="no store"):
        Store.open(path, GENESIS, create=False)
    with Store.open(path, GENESIS) as s:
        fill(s, seed=1, blocks=1, max_records=3)
    with pytest.raises(ConfigError, match="another chain"):  # (a setting: QA-W)
        Store.open(path, hashlib.sha256(b"other").digest())
    env = lmdb.open(str(path), max_dbs=20)
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"version", (99).to_bytes(4, "big"))
    env.close()
    with pytest.raises(StorageError, match="format version 99, this node reads version 3"):
        Store.open(path, GENESIS)


def test_unwritable_location_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError, match="cannot create"):
        Store.open(tmp_path / "file" / "db", GENESIS)


def test_map_grows_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Store.open(path, GENESIS, map_size=64 * 1024) as s:
        start = s.map_size
        leaves = fill(s, seed=4, blocks=20, max_records=100)
        assert s.map_size > start
        assert s.log_root(len(leaves)) == merkle.root(leaves)
        big = _block(21, [bytes(500_000)], nonces=[("a", "big")])  # one txn > the map
        s.append_block(big)
        assert s.get_envelope_at(len(leaves)) == bytes(500_000)
    with Store.open(path, GENESIS, map_size=64 * 1024) as s:
        assert s.head().height == 21


def test_readers_run_while_the_writer_grows_the_map(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    done = threading.Event()
    with Store.open(tmp_path / "db", GENESIS, map_size=64 * 1024) as s:
        s.append_block(make_block(6, 1, 20))

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            try:
                while not done.is_set():
                    head = s.head()
                    n = head.log_size
                    assert s.log_root(n) == head.log_root or s.head() != head
                    if n:
                        i = rng.randrange(n)
                        size = rng.randint(i + 1, n)
                        path = s.inclusion_proof(i, size)
                        leaf = s.leaf_hash_at(i)
                        assert merkle.verify_inclusion(leaf, i, size, path, s.log_root(size))
                    done.wait(0.0005)  # pacing only: leave the GIL to the writer
            except BaseException as e:  # reported to the main thread below
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        try:
            fill(s, seed=6, blocks=25, max_records=60)
        finally:
            done.set()
            for t in threads:
                t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        assert s.map_size > 64 * 1024
    assert errors == []


def test_extra_databases(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db", GENESIS, extra_dbs=["quarantine"]) as s:
        s.append_block(
            _block(
                1,
                [b"a"],
                extra=[
                    ("edges", b"p|c1", b""),
                    ("edges", b"p|c2", b""),
                    ("edges", b"q|c3", b""),
                    ("quarantine", b"k", b"v"),
                ],
            )
        )
        s.append_block(_block(2, [], extra=[("quarantine", b"k", None)]))
        assert s.get("quarantine", b"k") is None
        assert [k for k, _ in s.scan("edges", b"p|")] == [b"p|c1", b"p|c2"]
        assert [k for k, _ in s.scan("edges", b"p|", after=b"p|c1")] == [b"p|c2"]
        assert s.scan("edges", b"p|", limit=1) == [(b"p|c1", b"")]
        with pytest.raises(StorageError):
            s.get("ids", b"x")
        with pytest.raises(StorageError):
            s.get("nope", b"x")


def test_closed_store_refuses(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "db", GENESIS)
    s.close()
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.get_envelope_at(0)
    with pytest.raises(StorageError, match="closed"):
        s.append_block(_block(1, []))


def _main_db_keys(path: Path) -> list[bytes]:
    env = lmdb.open(str(path), max_dbs=20)
    try:
        with env.begin() as txn:
            return list(txn.cursor().iternext(values=False))
    finally:
        env.close()


def test_foreign_lmdb_directory_is_refused_untouched(tmp_path: Path) -> None:
    """Regression: an LMDB directory holding someone else's data became a new Suyuan store."""
    plain, named = tmp_path / "plain", tmp_path / "named"
    env = lmdb.open(str(plain))
    with env.begin(write=True) as txn:
        txn.put(b"their-key", b"their value")
    env.close()
    env = lmdb.open(str(named), max_dbs=2)
    with env.begin(write=True, db=env.open_db(b"orders")) as txn:
        txn.put(b"1", b"x")
    env.close()
    for path, keys in ((plain, [b"their-key"]), (named, [b"orders"])):
        with pytest.raises(StorageError, match="not a Suyuan store"):
            Store.open(path, GENESIS)
        assert _main_db_keys(path) == keys  # no sub-database, no meta was created


def test_refused_store_gets_no_new_sub_databases(tmp_path: Path) -> None:
    """Regression: another version's or another chain's store got our sub-databases created
    before the refusal."""
    for version, genesis, match, error in (
        (1, GENESIS, "format version 1", StorageError),
        (2, hashlib.sha256(b"other").digest(), "another chain", ConfigError),
    ):
        path = tmp_path / f"v{version}"
        env = lmdb.open(str(path), max_dbs=2)
        with env.begin(write=True, db=env.open_db(b"meta")) as txn:
            txn.put(b"version", version.to_bytes(4, "big"))
            txn.put(b"genesis", genesis)
        env.close()
        with pytest.raises(error, match=match):
            Store.open(path, hashlib.sha256(b"mine").digest() if version == 2 else GENESIS)
        assert _main_db_keys(path) == [b"meta"]


def test_interrupted_creation_with_empty_sub_databases_opens_as_new(tmp_path: Path) -> None:
    path = tmp_path / "db"
    env = lmdb.open(str(path), max_dbs=4)
    for name in (b"meta", b"blocks", b"ids"):
        env.open_db(name)
    env.close()
    with Store.open(path, GENESIS) as s:
        assert s.head().height == 0
        fill(s, seed=2, blocks=1, max_records=3)
    with Store.open(path, GENESIS, create=False) as s:
        assert s.head().height == 1


def test_negative_heights_and_indexes_are_input_errors(store: Store) -> None:
    """Regression: get_block(-1) and leaf_hash_at(-1) raised a raw struct.error, and
    code_indexes(start=-1) was silently read as 0."""
    fill(store, seed=3, blocks=2, max_records=5)
    with pytest.raises(InputError, match="block height -1 is negative"):
        store.get_block(-1)
    with pytest.raises(InputError, match=r"block height \d+ is too large"):
        store.get_block(1 << 64)
    with pytest.raises(InputError, match="leaf index -1 is negative"):
        store.leaf_hash_at(-1)
    with pytest.raises(InputError, match="log index -1 is negative"):
        store.code_indexes("urn:x", start=-1)
    with pytest.raises(NotFoundError):
        store.leaf_hash_at(store.head().log_size)
    assert store.get_block(0) is None
    assert store.get_block(store.head().height + 1) is None


# ---------------------------------------------------------------- the ids sweep


def _ids_in_db(store: Store) -> set[bytes]:
    with store._read() as txn, txn.cursor(store._dbs["ids"]) as cur:
        return {bytes(k) for k in cur.iternext(values=False)}


def test_ids_sweep_every_id_answers_and_old_ones_are_written(tmp_path: Path) -> None:
    """Each id is found at once (from memory while pending); after K more blocks it is in
    the ``ids`` index itself. The store is reopened before every block, so every height
    also checks that a restart rebuilds what was pending."""
    from node.store import IDS_SWEEP_SLICES as K

    path = tmp_path / "db"
    blocks: list[BlockWrite] = []
    for h in range(1, 3 * K + 5):
        with Store.open(path, GENESIS) as store:
            b = make_block(11, h, 60)
            store.append_block(b)
            blocks.append(b)
            written = _ids_in_db(store)
            for old in blocks[: max(0, h - K)]:
                assert set(old.record_ids) <= written, f"height {h}: an old id is unwritten"
        with Store.open(path, GENESIS) as store:
            first = 0
            for blk in blocks:
                for i, rid in enumerate(blk.record_ids):
                    assert store.record_location(rid) == (first + i, blk.height)
                    assert store.has_record(rid)
                first += len(blk.record_ids)


def test_ids_sweep_refuses_a_repeated_id_pending_or_written(store: Store) -> None:
    from node.store import IDS_SWEEP_SLICES as K

    fill(store, seed=5, blocks=2, max_records=50)
    pending = make_block(5, 2, 50).record_ids[0]
    fill(store, seed=6, blocks=K + 1, max_records=50)
    written = make_block(5, 1, 50).record_ids[0]
    assert written in _ids_in_db(store)
    for rid in (pending, written):
        b = next(
            blk
            for seed in range(100, 200)
            if (blk := make_block(seed, store.head().height + 1, 3)).record_ids
        )
        twice = BlockWrite(**{**b.__dict__, "record_ids": [rid, *b.record_ids[1:]]})
        with pytest.raises(ReplayError):
            store.append_block(twice)
        assert store.head().height == b.height - 1  # nothing was written
    assert store.record_location(pending) is not None


def test_a_version_2_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with Store.open(path, GENESIS) as store:
        fill(store, seed=3, blocks=3, max_records=20)
        ids = [r for h in (1, 2, 3) for r in make_block(3, h, 20).record_ids]
    env = lmdb.open(str(path), max_dbs=20)
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"version", (2).to_bytes(4, "big"))
    env.close()
    with Store.open(path, GENESIS) as store:
        assert all(store.has_record(r) for r in ids)
    env = lmdb.open(str(path), max_dbs=20)
    with env.begin(db=env.open_db(b"meta")) as txn:
        assert txn.get(b"version") == (3).to_bytes(4, "big")
    env.close()


def test_a_damaged_header_page_is_refused_with_what_to_do(tmp_path: Path) -> None:
    # QA-S: XOR of 64 bytes at offset 16 of data.mdb: "cannot open the store at ...:
    # MDB_INVALID: File is not an LMDB file", and no word on what to do
    path = tmp_path / "db"
    with Store.open(path, GENESIS) as s:
        fill(s, seed=3, blocks=2, max_records=20)
    with open(path / "data.mdb", "r+b") as f:
        for offset in (16, 4096 + 16):  # both meta pages
            f.seek(offset)
            chunk = f.read(64)
            f.seek(offset)
            f.write(bytes(b ^ 0xFF for b in chunk))
    with pytest.raises(StorageError, match=r"is corrupt .*; move its data.mdb away and start"):
        Store.open(path, GENESIS, create=False)


def test_a_store_of_another_chain_is_a_setting_to_mend(tmp_path: Path) -> None:
    # QA-W M2: exit 4 (storage) and no advice, where the config named the wrong genesis
    Store.open(tmp_path / "s", b"\x01" * 32).close()
    with pytest.raises(ConfigError, match=r"belongs to another chain .* move it away and start"):
        Store.open(tmp_path / "s", b"\x02" * 32)
    Store.open(tmp_path / "s", b"\x01" * 32).close()  # (closed on the refusal: opens again)
