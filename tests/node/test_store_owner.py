"""A store is one member's node's (QA-S: validator2's store, copied into validator3's data
folder beside its own ``member`` file, started without a word and signed from validator2's
sign state). The node claims the store for its key, refuses one another member's node
claimed, and refuses an unclaimed one (a store of an earlier version) whose sign state
another key signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from consensus.messages import Step, VoteType
from consensus.signing import vote_sign_bytes
from consensus.signstate import SignState
from consensus.validators import BlockHash
from node.chain import EXTRA_DBS
from node.errors import ConfigError
from node.main import _claim_store
from node.node import data_path
from node.store import Store
from tests.fixtures import genesis, key
from tests.node.livenode import config

G = genesis()
BH = BlockHash(bytes([7]) * 32)


def _state(signer: str) -> bytes:
    sig = key(signer).sign(vote_sign_bytes(G.hash, G.chain_id, VoteType.PREVOTE, 5, 0, BH))
    return SignState(5, 0, Step.PREVOTE, BH, signature=sig, prevote_round=0, prevote_hash=BH,
                     prevote_signature=sig).to_bytes()  # fmt: skip


def _open(tmp_path: Path, member: str) -> Store:
    cfg = config(tmp_path, member)
    return Store.open(data_path(cfg), G.hash, extra_dbs=EXTRA_DBS)


def test_a_store_is_claimed_and_refused_to_another_member(tmp_path: Path) -> None:
    cfg2, cfg3 = config(tmp_path, "v2"), config(tmp_path, "v3")
    store = Store.open(data_path(cfg2), G.hash, extra_dbs=EXTRA_DBS)
    _claim_store(cfg2, G, key("v2"), store)
    assert store.owner() == "v2"
    store.put_sign_state(_state("v2"))
    _claim_store(cfg2, G, key("v2"), store)  # its own: fine, again and again
    store.close()
    # the store copied into validator3's folder
    copied = data_path(cfg3)
    copied.parent.mkdir(parents=True)
    data_path(cfg2).rename(copied)
    store = Store.open(copied, G.hash, extra_dbs=EXTRA_DBS)
    with pytest.raises(ConfigError, match=r"is 'v2''s node's .* not 'v3''s"):
        _claim_store(cfg3, G, key("v3"), store)
    assert store._closed


@pytest.mark.parametrize("signer", ["v2", "v3"])
def test_an_unclaimed_store_is_judged_by_its_sign_state(tmp_path: Path, signer: str) -> None:
    cfg3 = config(tmp_path, "v3")
    store = Store.open(data_path(cfg3), G.hash, extra_dbs=EXTRA_DBS)
    store.put_sign_state(_state(signer))  # (an earlier version: no owner recorded)
    assert store.owner() == ""
    if signer == "v2":
        with pytest.raises(ConfigError, match="was not signed with 'v3''s key"):
            _claim_store(cfg3, G, key("v3"), store)
        assert store._closed
    else:
        _claim_store(cfg3, G, key("v3"), store)
        assert store.owner() == "v3"
        store.close()
