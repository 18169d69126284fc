"""Idle heights (``[consensus] idle_block_interval_ms``, node.idle), on a real 4-node testnet:
no empty block while nothing waits, a record commits at once, and the timer still marks
time with an empty block."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from node.config import ConsensusConfig, NodeConfig
from proto import services_pb2
from testnet import manifest as mf
from testnet import net
from tests.testnet.harness import RunningTestnet, wait_for

pytestmark = pytest.mark.slow


def _set_interval(tn: RunningTestnet, ms: int) -> None:
    """Stop the testnet, write ``ms`` into every node's config, start it again."""
    net.down(tn.dir, timeout=10)
    man = tn.manifest
    for n in man.nodes:
        c = NodeConfig.load(n.config)
        c = replace(c, consensus=replace(c.consensus, idle_block_interval_ms=ms))
        n.config.write_text(mf.config_text(man, n.index, c))
    net.up(tn.dir, timeout=60)
    _ = tn.manifest  # (its new PIDs, for the teardown's check)


def _statuses(tn: RunningTestnet) -> list[services_pb2.StatusResponse]:
    out = []
    for i in range(len(tn.addresses)):
        with tn.client(i, timeout=2.0) as c:
            out.append(c.status())
    return out


def _all_idle_at(tn: RunningTestnet) -> int:
    """The height every node holds back, each at its head + 1 and the same head; 0 if not."""
    st = _statuses(tn)
    heights = {s.height for s in st}
    if len(heights) != 1 or any(s.idle_height != s.height + 1 for s in st):
        return 0
    return int(st[0].idle_height)


def test_an_idle_chain_makes_no_block_until_a_record_arrives(testnet4: RunningTestnet) -> None:
    assert ConsensusConfig().idle_block_interval_ms == 0  # off unless a node's config says
    assert all(s.idle_height == 0 for s in _statuses(testnet4))  # (a block every round)
    _set_interval(testnet4, 600_000)

    idle = wait_for(lambda: _all_idle_at(testnet4), 60, 0.2, "every node to wait for records")
    log_size = _statuses(testnet4)[0].log_size
    # the record commits in the very height that was waiting: no empty block came between
    env = testnet4.signed_record("urn:epc:id:sgtin:6901234.000001.IDLE-1")
    with testnet4.client(2, timeout=30) as c:
        res = c.submit(env, wait=True, timeout=30)
    assert res.height == idle
    # and the next height waits in turn, one record further on
    again = wait_for(lambda: _all_idle_at(testnet4), 60, 0.2, "the next height to wait")
    assert again == idle + 1
    assert {s.log_size for s in _statuses(testnet4)} == {log_size + 1}


def test_the_interval_still_marks_time_with_an_empty_block(testnet4: RunningTestnet) -> None:
    _set_interval(testnet4, 1_500)
    idle = wait_for(lambda: _all_idle_at(testnet4), 60, 0.2, "every node to wait for records")
    log_size = _statuses(testnet4)[0].log_size
    # no record is sent: the timer alone makes the waiting height's block, an empty one
    later = wait_for(
        lambda: (_all_idle_at(testnet4) or 0) > idle, 60, 0.2, "an empty block after the interval"
    )
    assert later
    assert {s.log_size for s in _statuses(testnet4)} == {log_size}


def test_the_setting_is_bounded(tmp_path: Path) -> None:
    from node.errors import ConfigError

    doc = {
        "member": "v0",
        "key_file": "k",
        "genesis": "g",
        "data_dir": "d",
        "listen": "127.0.0.1:1",
        "consensus": {"idle_block_interval_ms": 86_400_001},
    }
    with pytest.raises(ConfigError, match="idle_block_interval_ms' must be an integer from 0"):
        NodeConfig.from_dict(doc, base=tmp_path)
