"""Issue 8's benchmark series, one run after another, and the table BENCHMARKS.md keeps.

    .venv/bin/python -m bench.throughput_series --out bench-results/   [--skip prefill4]

Runs, in order: open4 (3 runs, open loop), half4 and over4 (half and twice the median
open4 rate), open7, catchup4, prefill4 (1,000,000 records first, then measured by the node
processes that committed them), prefill4-restarted (the same testnet's nodes restarted on
that log, measured again; the testnet folder is deleted afterwards) and pysyncobj. Each run's
``suyuan bench --json`` report is saved as OUT/NAME.json; the table of runs and the table of
issue 8's targets are printed at the end (and re-printed from saved files with
``--table-only``). Runs are sequential: these are
2-core machines, and anything running beside a benchmark is part of its figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

SUYUAN = [str(Path(sys.executable).with_name("suyuan"))]  # the venv's console script
OPEN = ["--nodes", "4", "--records", "200000", "--seconds", "30"]


def _a(text: str) -> list[str]:
    return text.split()


def _runs(median_open: float) -> list[tuple[str, list[str]]]:
    half, double = round(median_open / 2), round(median_open * 2)
    return [
        ("half4", _a(f"--nodes 4 --records 100000 --seconds 30 --rate {half}")),
        ("over4", _a(f"--nodes 4 --records 300000 --seconds 30 --window 400 --rate {double}")),
        ("open7", _a("--nodes 7 --records 200000 --seconds 30")),
        ("catchup4", _a("--nodes 4 --records 30000 --seconds 15 --catchup 100000")),
        ("prefill4", [*OPEN, "--prefill", "1000000", "--dir", PREFILL_DIR]),
        ("prefill4-restarted", [*OPEN, "--dir", PREFILL_DIR, "--reuse"]),
    ]


#: Where prefill4 leaves its testnet for prefill4-restarted (``OUT/PREFILL_DIR``).
PREFILL_DIR = "prefill4-testnet"


def _bench(out: Path, name: str, args: list[str]) -> dict[str, Any]:
    args = [str(out / a) if a == PREFILL_DIR else a for a in args]
    cmd = [*SUYUAN, "bench", *args, "--json"]
    print(f"== {name}: suyuan bench {' '.join(args)} --json", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["command"] = f"suyuan bench {' '.join(args)} --json"
    (out / f"{name}.json").write_text(json.dumps(report, indent=1))
    return report


def _pysyncobj(out: Path) -> None:
    args = ["--nodes", "4", "--seconds", "20", "--record-bytes", "400", "--json"]
    print(f"== pysyncobj: python -m bench.pysyncobj_bench {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "bench.pysyncobj_bench", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    (out / "pysyncobj.json").write_text(done.stdout if done.returncode == 0 else "{}")


def _cpu_per_record(r: dict[str, Any]) -> float:
    nodes = r["per_node"]
    cpu = float(sum(n["cpu_s_window"] for n in nodes))
    return cpu / max(1, int(r["steady_window"]["records"])) / len(nodes)


def table(out: Path) -> str:
    rows = [
        "| Run | committed/s | verify/core | ceiling | ratio | latency p50 / p95 / p99 "
        "| CPU/record/node | peak RSS/node | Status max |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for path in sorted(out.glob("*.json"), key=lambda p: p.stat().st_mtime):
        r = json.loads(path.read_text() or "{}")
        if "committed_rps" not in r:
            continue
        lat = r["latency_ms"]
        rows.append(
            f"| {path.stem} | {r['committed_rps']:,.0f} | {r['verify_per_core_per_s'] / 1000:.1f}k "
            f"| {r['ceiling_rps']:,.0f} | {r['ratio']:.3f} "
            f"| {lat['p50'] / 1000:.2f} s / {lat['p95'] / 1000:.2f} s / {lat['p99'] / 1000:.2f} s "
            f"| {_cpu_per_record(r) * 1e6:.0f} us "
            f"| {max(n['peak_rss_mib'] for n in r['per_node']):.0f} MiB "
            f"| {r['status_max_ms'] / 1000:.2f} s |"
        )
    return "\n".join(rows)


def _load(out: Path, name: str) -> dict[str, Any] | None:
    path = out / f"{name}.json"
    if not path.exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text() or "{}")
    return doc or None


def targets(out: Path) -> str:
    """Issue 8's targets, each with what the saved runs show (a run not made is skipped)."""
    opens = [r for r in (_load(out, f"open4-{i}") for i in (1, 2, 3)) if r]
    rows = ["| Target (issue 8) | Result |", "|---|---|"]
    if opens:
        ratios = sorted(r["ratio"] for r in opens)
        rows.append(
            f"| committed >= 0.7 x ceiling (below 0.5: not done) "
            f"| {'met' if ratios[0] >= 0.7 else 'not met'}: {ratios[0]:.3f}-{ratios[-1]:.3f} |"
        )
    half = _load(out, "half4")
    if half:
        lat = half["latency_ms"]
        ok = lat["p50"] <= 250 and lat["p99"] <= 1000
        rows.append(
            f"| at 50% of the max rate: p50 <= 250 ms, p99 <= 1 s "
            f"| {'met' if ok else 'not met'}: p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms |"
        )
    over = _load(out, "over4")
    if over:
        ok = over["status_max_ms"] < 1000 and over["lost"] == 0 and over["resource_exhausted"] > 0
        rss = max(n["peak_rss_mib"] for n in over["per_node"])
        rows.append(
            f"| 2x overload: Status < 1 s, RESOURCE_EXHAUSTED, bounded RSS, nothing lost "
            f"| {'met' if ok else 'not met'}: {over['resource_exhausted']:,} refused, "
            f"{over['accepted']:,} accepted, {over['committed']:,} committed, {over['lost']} lost, "
            f"Status max {over['status_max_ms'] / 1000:.2f} s, RSS {rss:.0f} MiB |"
        )
    for name, who in (
        ("prefill4", "the processes that committed them"),
        ("prefill4-restarted", "nodes restarted on that log"),
    ):
        pre = _load(out, name)
        if pre and opens:
            base = statistics.median(r["committed_rps"] for r in opens)
            base_ratio = statistics.median(r["ratio"] for r in opens)
            change = pre["committed_rps"] / base - 1
            rows.append(
                f"| with 1,000,000 records, within 10% of an empty log ({who}) "
                f"| {'met' if change >= -0.10 else 'not met'}: {change:+.1%} "
                f"({pre['committed_rps']:,.0f}/s against {base:,.0f}/s; ratio "
                f"{pre['ratio']:.3f} against {base_ratio:.3f}, "
                f"{pre['ratio'] / base_ratio - 1:+.1%}) |"
            )
    seven = _load(out, "open7")
    if seven:
        rows.append(
            f"| 7 validators beside 4 | {seven['committed_rps']:,.0f}/s, ratio "
            f"{seven['ratio']:.3f}, Status max {seven['status_max_ms'] / 1000:.2f} s |"
        )
    cu = _load(out, "catchup4")
    if cu and cu.get("catchup"):
        c = cu["catchup"]
        rate, healthy = c.get("catchup_rps") or 0.0, c.get("catchup_rps_from_healthy") or 0.0
        rows.append(
            f"| catch-up of 100,000 records at >= 20,000/s "
            f"| {'met' if rate >= 20000 else 'not met'}: {rate:,.0f}/s from restart "
            f"({healthy:,.0f}/s from its first Status answer) |"
        )
    ps = _load(out, "pysyncobj")
    if ps:
        rows.append(
            f"| PySyncObj, same session | {ps['committed_per_s']['median']:,.0f}/s "
            "(unsigned, in-memory journal, Raft) |"
        )
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    ap.add_argument("--skip", action="append", default=[], help="run name to skip")
    ap.add_argument("--table-only", action="store_true")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if not a.table_only:
        opens = [_bench(a.out, f"open4-{i}", OPEN) for i in (1, 2, 3)]
        median = statistics.median(r["committed_rps"] for r in opens)
        skip = set(a.skip) | ({"prefill4-restarted"} if "prefill4" in a.skip else set())
        shutil.rmtree(a.out / PREFILL_DIR, ignore_errors=True)  # left by an interrupted run
        try:
            for name, args in _runs(median):
                if name not in skip:
                    _bench(a.out, name, args)
        finally:
            shutil.rmtree(a.out / PREFILL_DIR, ignore_errors=True)  # about 1 GB a node
        if "pysyncobj" not in a.skip:
            _pysyncobj(a.out)
    print(table(a.out))
    print()
    print(targets(a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
