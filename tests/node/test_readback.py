"""``node.readback``: a changed byte in the store is a DamagedStoreError, never an answer."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.compact import envelope_leaf_hash
from node.errors import DamagedStoreError
from node.readback import committed_by_id, committed_envelope
from node.store import BlockWrite, Store
from proto import types_pb2

GENESIS = hashlib.sha256(b"genesis").digest()


def _envelope(n: int) -> types_pb2.Envelope:
    env = types_pb2.Envelope(payload=b'{"eventTime":"2026-03-01","n":%d}' % n, payload_type="t")
    env.signatures.add(keyid="farm", sig=bytes([n]) * 64)
    return env


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    envs = [_envelope(n) for n in range(3)]
    raws = [e.SerializeToString() for e in envs]
    with Store.open(tmp_path / "db", GENESIS) as s:
        s.append_block(
            BlockWrite(
                height=1,
                block_hash=bytes(32),
                header_bytes=b"h",
                certificate_bytes=b"c",
                envelopes=raws,
                record_ids=[hashlib.sha256(e.payload).digest() for e in envs],
                leaf_data=[envelope_leaf_hash(e) for e in envs],
                codes=[[] for _ in envs],
                nonces=[("farm", str(n)) for n in range(3)],
                leaves_hashed=True,
            )
        )
        yield s


def _tamper(store: Store, old: bytes, new: bytes) -> None:
    """Change bytes inside the stored block value, as bit rot or an editor would."""
    with store._env.begin(write=True) as txn:
        key = (1).to_bytes(8, "big")
        value = txn.get(key, db=store._dbs["blocks"])
        assert value is not None
        assert bytes(value).count(old) == 1
        txn.put(key, bytes(value).replace(old, new), db=store._dbs["blocks"])


def test_intact_envelopes_are_returned(store: Store) -> None:
    for n in range(3):
        assert committed_envelope(store, n) == _envelope(n)
        rid = hashlib.sha256(_envelope(n).payload).digest()
        assert committed_by_id(store, rid) == (n, _envelope(n))
    assert committed_envelope(store, 3) is None


def test_a_changed_payload_is_damage_not_an_answer(store: Store) -> None:
    # QA: a year changed in data.mdb was served by `record get` as committed
    _tamper(store, b'2026-03-01","n":1', b'2019-03-01","n":1')
    with pytest.raises(DamagedStoreError, match="log index 1 is not the one the log holds"):
        committed_envelope(store, 1)
    rid = hashlib.sha256(_envelope(1).payload).digest()
    with pytest.raises(DamagedStoreError):
        committed_by_id(store, rid)
    assert committed_envelope(store, 0) == _envelope(0)  # the others are still answered


def test_bounds_outside_the_block_are_damage_not_a_crash(store: Store) -> None:
    # QA: a flipped byte in a length gave clients "UNKNOWN: Unexpected struct.error"
    value = store.get_block(1)
    assert value is not None
    ends = b"".join(len(e).to_bytes(4, "big") for e in value.envelopes[:1])
    _tamper(store, ends, b"\xff\xff\xff\xff")
    with pytest.raises(DamagedStoreError, match="store is damaged"):
        committed_envelope(store, 0)
    with pytest.raises(DamagedStoreError, match="store is damaged: block 1"):
        store.get_block(1)
