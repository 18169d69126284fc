"""bench.throughput_series: the targets table is computed from the saved run reports."""

from __future__ import annotations

import json
from pathlib import Path

from bench.throughput_series import targets


def _run(path: Path, **fields: object) -> None:
    base: dict[str, object] = {
        "committed_rps": 3000.0,
        "ratio": 0.30,
        "latency_ms": {"p50": 100.0, "p95": 110.0, "p99": 120.0},
        "status_max_ms": 300.0,
        "per_node": [{"peak_rss_mib": 300.0, "cpu_s_window": 1.0}],
        "lost": 0,
        "resource_exhausted": 0,
        "accepted": 0,
        "committed": 0,
    }
    base.update(fields)
    path.write_text(json.dumps(base))


def test_targets_judge_each_saved_run(tmp_path: Path) -> None:
    for i, rps in ((1, 3000.0), (2, 3100.0), (3, 2900.0)):
        _run(tmp_path / f"open4-{i}.json", committed_rps=rps, ratio=rps / 10000)
    _run(tmp_path / "half4.json", latency_ms={"p50": 90.0, "p95": 100.0, "p99": 1500.0})
    _run(tmp_path / "over4.json", resource_exhausted=500, accepted=900, committed=900)
    _run(tmp_path / "prefill4.json", committed_rps=2610.0, ratio=0.261)
    _run(tmp_path / "prefill4-restarted.json", committed_rps=2790.0, ratio=0.279)
    _run(
        tmp_path / "catchup4.json",
        catchup={"catchup_rps": 21000.0, "catchup_rps_from_healthy": 24000.0},
    )
    text = targets(tmp_path)
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:]}
    assert "not met: 0.290-0.310" in lines["committed >= 0.7 x ceiling (below 0.5: not done)"]
    assert "not met: p50 90 ms, p99 1500 ms" in text  # p99 over 1 s
    assert "| met: 500 refused, 900 accepted, 900 committed, 0 lost" in text
    grown = "with 1,000,000 records, within 10% of an empty log"
    assert "| not met: -13.0% (2,610/s" in lines[f"{grown} (the processes that committed them)"]
    # against the median of the three open runs
    assert (
        "| met: -7.0% (2,790/s against 3,000/s" in lines[f"{grown} (nodes restarted on that log)"]
    )
    assert "| met: 21,000/s from restart (24,000/s" in text
    assert "7 validators" not in text  # no open7 run saved: no row


def test_no_runs_no_rows(tmp_path: Path) -> None:
    assert targets(tmp_path).splitlines() == ["| Target (issue 8) | Result |", "|---|---|"]
