"""``suyuan epcis import`` of a large EPCIS 2.0 document into a 4-node testnet: events a
second with every validator up and with one killed, beside the machine's own limit.

Not a test: it prints figures. It brings up a fresh testnet on free loopback ports, writes
a document of ``--events`` events (half commissionings, each followed by a storing event
on the same code: every second event depends on the one before), and runs the real CLI
(``suyuan epcis import DOC --json``, a process of its own) against node 0, timed from
start to exit. Then it kills validator 2 (still within the fault tolerance) and imports
another document of the same shape. The one-core Ed25519 verify rate is measured before
the imports, in the same run (``testnet.machine``). Every process it starts is stopped by
PID (``testnet down``).

Usage::

    .venv/bin/python -m bench.epcis_import --events 2000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from testnet import manifest as mf
from testnet import net
from testnet.machine import measure_verify_per_core


def _free_base(n: int) -> int:
    for base in range(31000, 31900, n + 1):
        if not net.busy_addresses([f"127.0.0.1:{base + i}" for i in range(n)]):
            return base
    raise SystemExit("no free ports in 31000-31900")


def document(events: int, tag: str) -> dict[str, Any]:
    """``events`` ObjectEvents: a commissioning, then a storing event on its code, and so on."""
    out: list[dict[str, Any]] = []
    for k in range(events):
        code = f"urn:epc:id:sgtin:6901234.000007.{tag}{k // 2:06d}"
        first = k % 2 == 0
        out.append(
            {
                "type": "ObjectEvent",
                "eventTime": "2026-12-06T04:00:00Z" if first else "2026-12-06T04:10:00Z",
                "eventTimeZoneOffset": "+08:00",
                "action": "ADD" if first else "OBSERVE",
                "bizStep": "commissioning" if first else "storing",
                **({"disposition": "active"} if first else {}),
                "epcList": [code],
            }
        )
    return {"type": "EPCISDocument", "schemaVersion": "2.0", "epcisBody": {"eventList": out}}


def timed_import(d: Path, man: mf.Manifest, events: int, tag: str) -> dict[str, Any]:
    """Run ``suyuan epcis import`` of a fresh document; its events, seconds and outcome."""
    doc = d.parent / f"doc-{tag}.jsonld"
    doc.write_text(json.dumps(document(events, tag)))
    cli = Path(sys.executable).with_name("suyuan")
    args = [str(cli), "epcis", "import", str(doc), "--key", str(man.key_file("farm"))]
    env = {**os.environ, "SUYUAN_TESTNET": str(d)}
    t = time.monotonic()
    done = subprocess.run(
        [*args, "--json"], capture_output=True, text=True, timeout=1800, env=env, check=False
    )
    seconds = time.monotonic() - t
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    return {
        "events": events,
        "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds, 1),
        "imported": report.get("imported"),
        "exit": done.returncode,
    }


def run(events: int) -> dict[str, Any]:
    verify = measure_verify_per_core()
    d = Path(tempfile.mkdtemp(prefix="suyuan-import-")) / "net"
    man = net.up(d, 4, _free_base(4), timeout=60)
    try:
        all_up = timed_import(d, man, events, "U")
        net.kill(d, 2)
        one_down = timed_import(d, man, events, "K")
    finally:
        net.down(d, timeout=10)
    return {
        "verify_per_core_per_s": round(verify["median"]),
        "all_up": all_up,
        "one_validator_killed": one_down,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not 2 <= a.events <= 100_000:
        raise SystemExit("--events 2-100000")
    out = run(a.events)
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(f"Ed25519 verify, one core: {out['verify_per_core_per_s']}/s")
    for name in ("all_up", "one_validator_killed"):
        r = out[name]
        print(
            f"{name}: {r['imported']} of {r['events']} events imported in {r['seconds']} s "
            f"({r['events_per_s']}/s), exit {r['exit']}"
        )


if __name__ == "__main__":
    main()
