"""`python -m testnet.demo` end to end, as `make demo` runs it (issue #6).

The demo runs in a subprocess on free ports in tmp_path, with a timeout. While it runs the
test reads ``testnet.json`` to learn the node PIDs (the manifest forgets them at ``down``),
and afterwards checks that none of them, and no process naming the folder, is alive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.epcis import normalize_code
from testnet.manifest import Manifest
from testnet.scenario import farm_to_table
from tests.testnet.harness import free_base_port, pid_alive, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 420.0  # a bound for a loaded machine; it takes ~10 s when idle


def processes_naming(text: str) -> list[int]:
    """PIDs of live processes whose command line mentions ``text``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and pid_alive(int(entry.name)):
            out.append(int(entry.name))
    return out


def section(out: str, start: str, end: str, after: int = 0) -> tuple[str, int]:
    """The text from ``start`` (searched from ``after``) to ``end``, and where it ends."""
    i = out.index(start, after)
    j = out.index(end, i + len(start))
    return out[i:j], j


def test_demo_runs_end_to_end_and_stops_every_node(tmp_path):
    d = tmp_path / "demo"
    log = tmp_path / "demo.out"
    pids: set[int] = set()
    port = free_base_port(4)
    with log.open("w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "testnet.demo", "--base-port", str(port), "--dir", str(d)],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "200"},
        )
        try:
            deadline = time.monotonic() + DEMO_TIMEOUT_S
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"demo still running after {DEMO_TIMEOUT_S:g}s")
                if (d / "testnet.json").exists():
                    with contextlib.suppress(Exception):  # being rewritten: read it again
                        pids.update(n.pid for n in Manifest.load(d).nodes if n.pid)
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            stray = {p for p in pids if pid_alive(p)} | set(processes_naming(str(d)))
            for pid in stray:  # never leave a node behind, even when the demo failed
                os.kill(pid, signal.SIGKILL)
    out = log.read_text(encoding="utf-8")
    assert proc.returncode == 0, out[-3000:]
    assert len(pids) == 4, f"saw node PIDs {sorted(pids)}"
    assert not stray, f"processes left running after the demo: {sorted(stray)}"
    assert "stopped 4 node processes" in out

    sc = farm_to_table()
    batch = normalize_code(sc.farm_batch)
    packages = [normalize_code(p) for p in sc.packages]
    contaminated = normalize_code(sc.contaminated)

    assert out.count("  ✓ h") == len(sc.drafts)  # every record committed
    # a code under another enterprise's GS1 company prefix is refused (rule gs1-prefix)
    assert (
        "the distributor commissions a QR code under the plant's GTIN: refused, rule "
        "gs1-prefix: GS1 company prefix 6903456 is bound to 'processor'"
    ) in out
    # the sampled package, found non_conformant, is held from sale (rule held)
    assert "the supermarket tries to sell it: refused, rule held: the code was found" in out
    for p in packages:  # the QR codes are printed
        assert p in out
    sealed, _ = section(out, " confidential fields ", "contamination found")
    assert "slaughterhouse opens 成交价_元每公斤 = 26.4" in sealed
    assert "regulator opens 成交价_元每公斤 = 26.4" in sealed
    assert "distributor cannot open 成交价_元每公斤" in sealed
    back, at = section(out, "trace back from", "trace forward from")
    assert back.startswith(f"trace back from {contaminated}")
    assert back.splitlines()[0].endswith("self · retailer · active, held")  # (rule held)
    assert batch in back  # back to the farm batch
    # the case it was unpacked from is a former container (QA: the demo showed it current)
    assert "parent (former)" in back
    assert " parent · " not in back
    fwd, at = section(out, "trace forward from", " recall ", at)
    assert fwd.startswith(f"trace forward from {batch}")
    for p in packages:  # forward to every package made from it
        assert p in fwd
    recall, _ = section(out, " recall ", "proof for an auditor", at)
    assert "recall record" in recall
    assert "committed at height" in recall
    recalled = {ln.split()[0] for ln in recall.splitlines() if ln.startswith("    ")}
    assert set(packages) | {batch} <= recalled
    sold = [  # (how each went: QA, sold and consumed read alike)
        ln for ln in recall.splitlines() if ln.endswith("(closed before the recall: retail_sold)")
    ]
    assert {normalize_code(p) for p in sc.sold} <= {ln.split()[0] for ln in sold}
    assert "verified offline:" in out
    assert (d / "proof.json").exists()
    wait_for(lambda: not processes_naming(str(d)), 5, 0.1, "no process naming the demo dir")


def test_the_demo_does_not_replace_a_testnet_without_fresh(tmp_path):
    # QA: `python -m testnet.demo --dir D` on a stopped testnet replaced its chain, keys and
    # data without a word (`testnet up` asks for --fresh)
    from testnet import manifest as mf

    d = tmp_path / "net"
    mf.create(d, 1, base_port=31990)
    genesis = (d / "genesis.json").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "testnet.demo", "--base-port", "31990", "--dir", str(d)],
        check=False, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "holds a testnet (its chain, keys and data); the demo makes a new one: pass --fresh" in (
        proc.stdout
    )
    assert (d / "genesis.json").read_bytes() == genesis
