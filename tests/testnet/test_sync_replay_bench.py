"""``python -m bench.sync_replay`` replays a real chain both ways and reports every step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.proofs.chainbuilder import ChainBuilder

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("helper", [False, True])
def test_sync_replay_reports_each_step(tmp_path: Path, helper: bool) -> None:
    b = ChainBuilder(tmp_path / "node0" / "store")
    try:
        for i in range(3):
            b.commit([b.commission(f"urn:x:{i}:{j}") for j in range(4)])
        (tmp_path / "genesis.json").write_bytes(b.genesis.canonical_bytes())
    finally:
        b.close()
    cmd = [sys.executable, "-m", "bench.sync_replay", "--dir", str(tmp_path)]
    out = subprocess.run(
        cmd + (["--helper"] if helper else []),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert f"3 blocks, 12 records, {'helper blobs' if helper else 'parsed'}" in out
    for step in ("certificate and parse", "validation", "commit", "all"):
        assert f"  {step} " in out
    assert "Ed25519 verify, one core, same run:" in out


def test_chain_extend_reports_each_segment(tmp_path: Path) -> None:
    """``python -m bench.chain_extend`` grows a copy of a testnet node's store in one process."""
    from node.chain import EXTRA_DBS
    from node.genesis import Genesis
    from node.store import Store
    from testnet.manifest import create

    man = create(tmp_path, 4)
    Store.open(
        tmp_path / "node0" / "store", Genesis.load(man.genesis).hash, extra_dbs=EXTRA_DBS
    ).close()
    cmd = [sys.executable, "-m", "bench.chain_extend", "--dir", str(tmp_path)]
    cmd += ["--records", "4000", "--segment", "2000", "--reopen-at", "2000"]
    out = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "log size at start: 0" in out
    assert "      2,000 added:" in out
    assert "  -- store reopened" in out
    assert "      4,000 added:" in out
    assert "Ed25519 verify, one core, same run:" in out
    with Store.open(
        tmp_path / "node0" / "store", Genesis.load(man.genesis).hash, extra_dbs=EXTRA_DBS
    ) as s:
        assert s.head().log_size == 0  # the source store is not written
