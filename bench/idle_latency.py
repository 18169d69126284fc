"""Idle heights (``[consensus] idle_block_interval_ms``, node/idle.py): blocks and latency
of single records on an otherwise idle 4-node testnet, the gate off and on.

Not a test: it prints figures. For each setting it brings up a fresh testnet on free
loopback ports (the gate set in every node's config, then the nodes restarted), submits
``--records`` records one at a time with ``wait`` to node 1, ``--gap`` seconds apart, and
reports the commit latency (submit to committed answer, median and max) and how many
blocks the chain made meanwhile. With the gate off an idle chain commits an empty block
about every second; on, it should make one block per record. Every process it starts is
stopped by PID (``testnet down``).

Usage::

    .venv/bin/python -m bench.idle_latency --records 10 --gap 2 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from node.client import LedgerClient
from node.config import NodeConfig
from node.genesis import Genesis
from node.keys import load_key_file
from node.records import make_record, sign_record
from testnet import manifest as mf
from testnet import net
from testnet.loadgen import commissioning_event

INTERVAL_ON_MS = 600_000  # long enough that no empty block falls inside a run


def _free_base(n: int) -> int:
    for base in range(31000, 31900, n + 1):
        if not net.busy_addresses([f"127.0.0.1:{base + i}" for i in range(n)]):
            return base
    raise SystemExit("no free ports in 31000-31900")


def run(interval_ms: int, records: int, gap: float) -> dict[str, Any]:
    d = Path(tempfile.mkdtemp(prefix="suyuan-idle-")) / "net"
    net.up(d, 4, _free_base(4), timeout=60)
    try:
        if interval_ms:
            net.down(d, timeout=10)
            man = mf.Manifest.load(d)
            for n in man.nodes:
                cfg = NodeConfig.load(n.config)
                gate = replace(cfg.consensus, idle_block_interval_ms=interval_ms)
                n.config.write_text(mf.config_text(man, n.index, replace(cfg, consensus=gate)))
            net.up(d, timeout=60)
        man = mf.Manifest.load(d)
        g = Genesis.load(man.genesis)
        farm = load_key_file(man.key_file("farm"))
        tag = f"{time.time_ns() % 10**8:08d}"
        latencies = []
        with LedgerClient(man.nodes[1].address, timeout=30) as c:
            first = c.status().height
            started = time.monotonic()
            for k in range(records):
                code = f"urn:epc:id:sgtin:6901234.000001.I{tag}{k:04d}"
                env = sign_record(make_record(g, "farm", commissioning_event(code)), farm)
                t = time.monotonic()
                c.submit(env, wait=True, timeout=30)
                latencies.append(time.monotonic() - t)
                time.sleep(gap)  # a pause between records is what is measured: not a wait
            elapsed = time.monotonic() - started
            blocks = c.status().height - first
    finally:
        net.down(d, timeout=10)
    return {
        "idle_block_interval_ms": interval_ms,
        "records": records,
        "gap_s": gap,
        "seconds": round(elapsed, 1),
        "blocks": blocks,
        "latency_ms": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10)
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between records")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.records <= 1000 or not 0 <= a.gap <= 60:
        raise SystemExit("--records 1-1000, --gap 0-60")
    out = [run(ms, a.records, a.gap) for ms in (0, INTERVAL_ON_MS)]
    if a.json:
        print(json.dumps(out, indent=2))
        return
    for r in out:
        print(
            f"idle_block_interval_ms={r['idle_block_interval_ms']}: {r['blocks']} blocks for "
            f"{r['records']} records in {r['seconds']} s; latency p50 "
            f"{r['latency_ms']['p50']} ms, max {r['latency_ms']['max']} ms"
        )


if __name__ == "__main__":
    main()
