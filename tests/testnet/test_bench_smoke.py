"""`suyuan bench` end to end against a real 4-node testnet (no assertion on speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testnet.manifest import Manifest
from tests.testnet.harness import free_base_port, pid_alive

KEYS = (
    "committed_rps",
    "latency_ms",
    "verify_per_core_per_s",
    "ceiling_rps",
    "ratio",
    "nodes",
    "records",
    "record_bytes",
)


def _processes_naming(text: str) -> list[int]:
    """PIDs (other than ours) whose command line mentions ``text``."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and pid_alive(int(p.name)):
            out.append(int(p.name))
    return out


@pytest.mark.slow
def test_bench_json_commits_every_record_and_stops_everything(tmp_path: Path) -> None:
    d = tmp_path / "net"
    suyuan = Path(sys.executable).with_name("suyuan")
    cmd = [str(suyuan), "bench", "--nodes", "4", "--records", "2000", "--json"]
    cmd += ["--catchup", "1000"]
    cmd += ["--dir", str(d), "--base-port", str(free_base_port(4)), "--verify-seconds", "0.2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    for k in KEYS:
        assert k in doc, k
    assert set(doc["latency_ms"]) == {"p50", "p95", "p99"}
    assert doc["nodes"] == 4
    assert doc["records"] == 2000
    assert doc["committed"] == 2000
    assert doc["lost"] == 0
    assert doc["committed_rps"] > 0
    assert doc["ceiling_rps"] > 0
    assert doc["ratio"] > 0
    assert doc["record_bytes"] == 400
    assert doc["blocks"]["non_empty"]["count"] >= 1
    assert len(doc["per_node"]) == 4
    c = doc["catchup"]  # timed from the killed node's own log, not its first answer
    assert c["caught_up"] is True
    assert c["log_size_at_kill"] == 2000
    assert c["target_log_size"] == 3000
    assert 2000 <= c["log_size_when_healthy"] <= 3000
    assert c["catchup_rps"] == pytest.approx(1000 / c["restart_to_caught_up_s"])
    assert c["node_cpu_s"] > 0  # the restarted node's CPU (its start-up at least)
    assert c["helper_cpu_s"] >= 0  # (1,000 records: too few blocks for a sync helper)
    assert c["cpu_us_per_record"] == pytest.approx(
        (c["node_cpu_s"] + c["helper_cpu_s"]) / 1000 * 1e6
    )
    man = Manifest.load(d)
    assert all(n.pid is None or not pid_alive(n.pid) for n in man.nodes)
    assert _processes_naming(str(d)) == []
