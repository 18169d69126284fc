"""Fixtures for multi-process tests: a fresh 4-node testnet that is always taken down.

Use ``testnet4`` in a test marked ``@pytest.mark.slow``; see tests/testnet/harness.py for
the helpers on the object it yields. Teardown runs ``down`` and then asserts that no PID
the testnet ever had (including nodes killed and restarted during the test) is alive.
"""

from __future__ import annotations

import os
import signal

import pytest

from testnet import net
from tests.testnet.harness import RunningTestnet, free_base_port, pid_alive


def _teardown(tn: RunningTestnet) -> None:
    try:
        _ = tn.manifest  # record the latest PIDs before stopping
        net.down(tn.dir, timeout=10)
    finally:
        alive = [p for p in tn.pids_seen if pid_alive(p)]
        for p in alive:  # never leave a process behind, even when down failed
            os.kill(p, signal.SIGKILL)
    assert not alive, f"processes still alive after testnet down: {alive}"


@pytest.fixture
def testnet4(tmp_path):
    """A fresh 4-node testnet in tmp_path on random free ports; always torn down."""
    d = tmp_path / "net"
    tn = RunningTestnet(d)
    try:
        net.up(d, 4, free_base_port(4), timeout=60)
        _ = tn.manifest
        yield tn
    finally:
        if (d / "testnet.json").exists():
            _teardown(tn)
