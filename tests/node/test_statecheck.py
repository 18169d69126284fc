"""`suyuan node check` (node.statecheck): a stopped node's store against a replay of its log,
on real LMDB stores of certified chains; damage is written into the store's files' pages
through LMDB, as a changed byte on disk would be read."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import lmdb
import pytest

from node import custody
from node.errors import DamagedStoreError, StorageError
from node.statecheck import SCRATCH_PREFIX, check_store
from node.store import Store
from tests.cli.helpers import suyuan
from tests.proofs.chainbuilder import ChainBuilder

CODES = [f"urn:epc:id:sgtin:6901234.012345.{i}" for i in range(6)]


def _chain(path: Path) -> ChainBuilder:
    b = ChainBuilder(path)
    b.commit([b.commission(c) for c in CODES[:3]])
    b.commit([b.commission(c) for c in CODES[3:]])
    b.commit([b.handoff(CODES[0])])
    return b


def _damage(store_path: Path, db: str, key: bytes, value: bytes | None) -> None:
    """Write ``value`` at ``key`` of sub-database ``db`` (None: delete), bypassing Suyuan."""
    env = lmdb.open(str(store_path), max_dbs=32)
    try:
        handle = env.open_db(db.encode(), create=False)
        with env.begin(write=True, db=handle) as txn:
            if value is None:
                assert txn.delete(key)
            else:
                txn.put(key, value)
    finally:
        env.close()


def _check(path: Path, b: ChainBuilder):
    with Store.open(path, b.genesis.hash, create=False, extra_dbs=custody_dbs()) as store:
        return check_store(store, b.genesis, scratch_parent=path.parent)


def custody_dbs() -> tuple[str, ...]:
    from node.chain import EXTRA_DBS

    return EXTRA_DBS


def test_an_intact_store_matches_its_replay_and_leaves_no_scratch(tmp_path: Path) -> None:
    b = _chain(tmp_path / "store")
    b.close()
    report = _check(tmp_path / "store", b)
    assert report.ok, report.differences
    assert (report.blocks, report.records) == (3, 7)
    assert report.entries["custody"] >= 6
    assert report.entries["codes"] == 7
    assert not list(tmp_path.glob(SCRATCH_PREFIX + "*"))


def _entries(store_path: Path, db: str) -> list[tuple[bytes, bytes]]:
    env = lmdb.open(str(store_path), max_dbs=32)
    try:
        with env.begin(db=env.open_db(db.encode(), create=False)) as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor()]
    finally:
        env.close()


def _first(store_path: Path, db: str) -> tuple[bytes, bytes]:
    return _entries(store_path, db)[0]


def test_a_changed_code_state_is_named(tmp_path: Path) -> None:
    b = _chain(tmp_path / "store")
    b.close()
    key, raw = _first(tmp_path / "store", custody.DB_CUSTODY)
    state = custody.decode_state(raw)
    forged = custody.encode_state(replace(state, custodian="retailer"))
    assert forged != raw
    _damage(tmp_path / "store", custody.DB_CUSTODY, key, forged)
    report = _check(tmp_path / "store", b)
    assert not report.ok
    assert report.differing == {"custody": 1}
    d = report.differences[0]
    assert (d.db, d.key, d.stored, d.replayed) == ("custody", key, forged, raw)
    assert "code states" in d.describe()
    assert key.decode() in d.describe()


def test_a_lost_history_entry_and_an_extra_one_are_both_named(tmp_path: Path) -> None:
    b = _chain(tmp_path / "store")
    b.close()
    lost = _entries(tmp_path / "store", "codes")[2][0]
    _damage(tmp_path / "store", "codes", lost, None)
    extra = lost[:-8] + (5).to_bytes(8, "big")
    _damage(tmp_path / "store", "codes", extra, b"")
    report = _check(tmp_path / "store", b)
    assert report.differing == {"codes": 2}
    got = {(d.key, d.stored, d.replayed) for d in report.differences}
    assert got == {(lost, None, b""), (extra, b"", None)}


def test_a_record_id_pointing_elsewhere_is_named(tmp_path: Path) -> None:
    b = _chain(tmp_path / "store")
    # push every id through the sweep so that ``ids`` holds them all
    for i in range(40):
        b.commit([b.commission(f"urn:epc:id:sgtin:6901234.012345.9{i}")])
    b.close()
    rid, value = _first(tmp_path / "store", "ids")
    wrong = (int.from_bytes(value, "big") + 1).to_bytes(8, "big")
    _damage(tmp_path / "store", "ids", rid, wrong)
    report = _check(tmp_path / "store", b)
    assert report.differing.get("ids", 0) >= 1
    assert any(d.db == "ids" and d.key == rid and d.stored == wrong for d in report.differences)


def test_a_block_that_no_longer_verifies_stops_the_check(tmp_path: Path) -> None:
    b = _chain(tmp_path / "store")
    b.close()
    value = bytearray(dict(_entries(tmp_path / "store", "blocks"))[(2).to_bytes(8, "big")])
    value[-5] ^= 0x01  # a byte of the block's last envelope
    _damage(tmp_path / "store", "blocks", (2).to_bytes(8, "big"), bytes(value))
    with pytest.raises(DamagedStoreError, match="block 2"):
        _check(tmp_path / "store", b)
    assert not list(tmp_path.glob(SCRATCH_PREFIX + "*"))


def _node_config(tmp_path: Path, b: ChainBuilder) -> Path:
    """A node.toml for v0 whose data folder is ``tmp_path/data`` (the chain's store)."""
    cfg = tmp_path / "node.toml"
    (tmp_path / "genesis.json").write_text(b.genesis.to_json())
    cfg.write_text(
        'member = "v0"\nkey_file = "v0.key"\ngenesis = "genesis.json"\n'
        'data_dir = "data"\nlisten = "127.0.0.1:1"\n'
    )
    return cfg


def test_the_command_passes_an_intact_store_and_fails_a_damaged_one(tmp_path: Path) -> None:
    b = _chain(tmp_path / "data" / "store")
    b.close()
    cfg = _node_config(tmp_path, b)
    ok = suyuan("node", "check", "--config", str(cfg), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "store checked: 3 blocks, 7 records" in ok.stdout

    # a scratch folder left by a killed check is removed by the next
    (tmp_path / "data" / f"{SCRATCH_PREFIX}old").mkdir()
    lost = _entries(tmp_path / "data" / "store", "codes")[4][0]
    _damage(tmp_path / "data" / "store", "codes", lost, None)
    bad = suyuan("node", "check", "--config", str(cfg), cwd=tmp_path)
    assert bad.returncode == 4, bad.stderr
    assert "differs: codes (code histories)" in bad.stdout
    assert "differs from a replay of its own log (1 in codes" in bad.stderr
    assert "resync" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "data").glob(SCRATCH_PREFIX + "*"))

    js = suyuan("node", "check", "--config", str(cfg), "--json", cwd=tmp_path)
    assert js.returncode == 4
    doc = json.loads(js.stdout)
    assert doc["ok"] is False
    assert doc["differing"] == {"codes": 1}
    assert doc["differences"][0]["key"] == lost.hex()


def test_the_command_refuses_a_running_nodes_store(tmp_path: Path) -> None:
    b = _chain(tmp_path / "data" / "store")
    b.close()
    cfg = _node_config(tmp_path, b)
    fd = os.open(tmp_path / "data", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running node holds it
        res = suyuan("node", "check", "--config", str(cfg), cwd=tmp_path)
    finally:
        os.close(fd)
    assert res.returncode == 2
    assert "in use by another node process" in res.stderr

    empty = tmp_path / "empty.toml"
    empty.write_text(cfg.read_text().replace('"data"', '"nothing"'))
    res = suyuan("node", "check", "--config", str(empty), cwd=tmp_path)
    assert res.returncode == 2
    assert "holds no store to check" in res.stderr


def test_a_scratch_folder_elsewhere_and_a_killed_checks_copy_removed_at_start(
    tmp_path: Path,
) -> None:
    # review: the scratch copy always shared the node's disk, and one a killed check left
    # stayed until the next check
    from node.main import claim_data_dir
    from node.statecheck import remove_stale_scratch

    b = _chain(tmp_path / "data" / "store")
    b.close()
    cfg = _node_config(tmp_path, b)
    elsewhere = tmp_path / "big-disk"
    elsewhere.mkdir()
    ok = suyuan("node", "check", "--config", str(cfg), "--scratch", str(elsewhere), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert list(elsewhere.iterdir()) == []
    bad = suyuan("node", "check", "--config", str(cfg), "--scratch", "nowhere", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--scratch: nowhere is not a folder" in bad.stderr
    left = tmp_path / "data" / f"{SCRATCH_PREFIX}killed"
    left.mkdir()
    claim_data_dir(tmp_path / "data", "v0")
    assert remove_stale_scratch(tmp_path / "data") == [left]  # (what node start calls)
    assert not left.exists()


def test_the_command_refuses_another_members_store(tmp_path: Path) -> None:
    # QA-T: validator2's store under validator3's config "checked" clean; node start
    # refuses it
    b = _chain(tmp_path / "data" / "store")
    b.store.claim("v2")
    b.close()
    cfg = _node_config(tmp_path, b)  # (member v0)
    res = suyuan("node", "check", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "is 'v2''s node's, not 'v0''s" in res.stderr
    assert "--resync" in res.stderr


def test_a_check_that_lmdb_ends_is_reported_as_damage(tmp_path: Path, monkeypatch) -> None:
    # QA-T: a zeroed page made LMDB abort the check (an assertion in mdb.c, exit 134, no
    # message); the check runs in a child, and its death is told as damage. The abort is
    # stood in for by os.abort in the child (a forked copy of this process).
    import os

    from node import statecheck

    b = _chain(tmp_path / "store")
    b.close()

    def dies(*a: object, **kw: object) -> None:
        (tmp_path / f"{SCRATCH_PREFIX}left").mkdir()  # (what a killed check leaves)
        os.abort()

    monkeypatch.setattr(statecheck, "check_store", dies)
    with pytest.raises(DamagedStoreError, match=r"stopped the check \(signal 6"):
        statecheck.check_in_child(tmp_path / "store", b.genesis, scratch_parent=tmp_path)
    assert not list(tmp_path.glob(SCRATCH_PREFIX + "*"))
    monkeypatch.undo()
    report = statecheck.check_in_child(tmp_path / "store", b.genesis, scratch_parent=tmp_path)
    assert report.ok
    assert report.records == 7


def test_a_check_the_scratch_disk_cannot_hold_is_not_called_damage(
    tmp_path: Path, monkeypatch
) -> None:
    # QA-V: with 4 KiB free, the replay's writes ended the child (SIGBUS) and the check
    # said "store ... is damaged ... resync": an intact store, on the advice to resync it
    import os
    import shutil
    from collections import namedtuple

    from node import statecheck

    b = _chain(tmp_path / "store")
    b.close()
    usage = namedtuple("usage", "total used free")
    free = [4096]
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 40, 0, free[0]))
    with pytest.raises(StorageError) as info:
        statecheck.check_in_child(tmp_path / "store", b.genesis, scratch_parent=tmp_path)
    assert str(info.value).startswith(f"{tmp_path} has 4,096 bytes free, and the replay needs")
    assert "the store was not judged (it is not found damaged)" in str(info.value)
    assert "--scratch DIR" in str(info.value)

    # room at the start; the replay's scratch store fills the disk, and the child dies
    # (review: the room was measured after the scratch was removed, and was back)
    def dies(*a: object, **kw: object) -> None:
        (tmp_path / f"{SCRATCH_PREFIX}filling").mkdir()
        os.kill(os.getpid(), 7)  # SIGBUS, as a write to LMDB's map on a full disk

    def disk(p: object) -> tuple[int, int, int]:
        filling = any(tmp_path.glob(SCRATCH_PREFIX + "*"))
        return usage(1 << 40, 0, 4096 if filling else 10 << 30)

    monkeypatch.setattr(shutil, "disk_usage", disk)
    monkeypatch.setattr(statecheck, "check_store", dies)
    with pytest.raises(StorageError, match=r"the check stopped \(signal 7\) with 4,096 bytes"):
        statecheck.check_in_child(tmp_path / "store", b.genesis, scratch_parent=tmp_path)
    assert not list(tmp_path.glob(SCRATCH_PREFIX + "*"))


def test_differences_name_keys_as_their_index_does_and_show_where_values_differ() -> None:
    # QA-T: code-history keys were printed as hex, and a long code state was cut off
    # before the byte that differed
    from node.statecheck import Difference
    from node.store import code_key, nonce_key

    d = Difference("codes", code_key("urn:x:1") + (42).to_bytes(8, "big"), b"", None)
    assert "key 'urn:x:1' #42: stored '', a replay has nothing" in d.describe()
    n = Difference("nonces", nonce_key("farm", "n-1"), None, b"")
    assert "key 'farm'/'n-1'" in n.describe()
    stored = b'{"c":"x","cu":"farm",' + b'"pad":"' + b"a" * 200 + b'","z":"fare"}'
    replayed = stored.replace(b'"fare"', b'"farm"')
    text = Difference("custody", b"x", stored, replayed).describe()
    assert '"z":"fare"}' in text
    assert '"z":"farm"}' in text


def test_a_replay_child_ends_when_its_parent_has() -> None:
    # QA-V: `node check` killed with -9 left its replay child running for seconds, holding
    # the data folder's lock (a node start then failed). The child asks for the parent's
    # death signal, and ends at once if the parent is already gone.
    import multiprocessing
    import os
    import sys

    from node.statecheck import _die_with

    ctx = multiprocessing.get_context("fork")
    orphan = ctx.Process(target=_die_with, args=(os.getpid() + 10**7,))  # not its parent
    orphan.start()
    orphan.join(timeout=10)
    assert orphan.exitcode == 1
    kept = ctx.Process(target=_die_with, args=(os.getpid(),))  # its parent, alive
    kept.start()
    kept.join(timeout=10)
    assert kept.exitcode == 0
    if sys.platform == "linux":  # (the signal itself: a grandchild outlives no parent)
        import signal
        import time

        def middle(out: Any) -> None:
            def grandchild() -> None:
                _die_with(os.getppid())
                time.sleep(60)  # (ended by the parent-death signal long before this)

            g = ctx.Process(target=grandchild)
            g.start()
            out.send(g.pid)
            time.sleep(60)

        recv, send = ctx.Pipe(duplex=False)
        m = ctx.Process(target=middle, args=(send,))
        m.start()
        gpid = recv.recv()
        os.kill(m.pid, signal.SIGKILL)  # type: ignore[arg-type]
        m.join(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # poll the condition until the deadline
            try:
                os.kill(gpid, 0)
            except ProcessLookupError:
                break
            # (a zombie counts as gone: its parent, init, reaps it)
            with open(f"/proc/{gpid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    break
            time.sleep(0.05)
        else:
            os.kill(gpid, signal.SIGKILL)
            raise AssertionError("the grandchild outlived its parent")
