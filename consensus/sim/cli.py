"""``python -m consensus.sim``: run seeded scenarios and report the properties.

Usage::

    python -m consensus.sim --nodes 4 --byzantine 1 --seeds 1-500 --json
    python -m consensus.sim --nodes 4 --byzantine 2 --seeds 1-50 --json --expect-violations

Exit status:

- 0: every property that must hold under the configured assumptions held in every run.
  With at most f Byzantine validators that is all of them (agreement, validity,
  certificates, no honest double-signing, evidence, liveness). With more than f,
  agreement and liveness are not promised, so their violations are reported (in
  ``expected_violations``) but do not fail the run; the others still must hold.
- 1: some such property failed; the failing seeds are listed so they can be replayed
  with ``--seeds S-S``.
- 2: bad arguments (one line on stderr): fewer than 4 nodes, ``--byzantine`` outside
  0..n, ``--k-heights`` below 1, an unreadable seed range.
- 3: ``--expect-violations`` was given and no run broke agreement (the attack, and so
  the checker, did not bite); stderr says so.

With B > f the JSON summary has ``violations_expected: true`` and stderr notes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

from consensus.quorum import max_faulty
from consensus.sim.checks import RunResult
from consensus.sim.scenario import make_scenario
from consensus.sim.world import run

__all__ = ["main", "parse_seeds", "summarize"]


def parse_seeds(text: str) -> list[int]:
    """``"1-5,9"`` -> ``[1, 2, 3, 4, 5, 9]``."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if hi else a
        except ValueError:
            raise ValueError(f"--seeds {text!r}: expected ranges like 1-500 or 3,7,10-12") from None
        if b < a:
            raise ValueError(f"empty seed range {part!r}")
        seeds.extend(range(a, b + 1))
    return seeds


def summarize(results: Sequence[RunResult], n: int, byzantine: int) -> dict[str, object]:
    failing: dict[str, list[int]] = {}
    expected: dict[str, list[int]] = {}
    for r in results:
        for prop in sorted(r.violations):
            target = (
                expected if (not r.expect_safe and prop in ("agreement", "liveness")) else failing
            )
            target.setdefault(prop, []).append(r.seed)
    return {
        "nodes": n,
        "byzantine": byzantine,
        "f": max_faulty(n),
        "violations_expected": byzantine > max_faulty(n),
        "runs": len(results),
        "safety_violations": sum(r.safety_violated for r in results),
        "liveness_failures": sum(r.liveness_failed for r in results),
        "evidence_found": sum(r.evidence_found for r in results),
        "equivocations_observed": sum(r.equivocations for r in results),
        "heights_committed": sum(r.heights_committed for r in results),
        "messages_delivered": sum(r.delivered for r in results),
        "replica_steps": sum(r.steps for r in results),
        "failing_seeds": failing,
        "expected_violations": expected,
        "safety_violation_seeds": [r.seed for r in results if r.safety_violated],
        "ok": all(r.ok for r in results),
    }


class _Parser(argparse.ArgumentParser):
    """Bad arguments raise ``ValueError`` (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _check_args(nodes: int, byzantine: int, k_heights: int | None) -> None:
    if nodes < 4:
        raise ValueError(f"--nodes {nodes}: need at least 4 validators (n = 3f+1 with f >= 1)")
    if not 0 <= byzantine <= nodes:
        raise ValueError(f"--byzantine {byzantine}: must be between 0 and --nodes ({nodes})")
    if k_heights is not None and k_heights < 1:
        raise ValueError(f"--k-heights {k_heights}: must be at least 1")


def main(argv: Sequence[str] | None = None) -> int:
    ap = _Parser(prog="python -m consensus.sim", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--nodes", type=int, default=4, help="validators in each run, n >= 4 (default 4)"
    )
    ap.add_argument(
        "--byzantine",
        type=int,
        default=1,
        help="Byzantine validators among them, 0..n (default 1); more than f = (n-1)//3 "
        "breaks the honest assumption, so agreement and liveness violations are expected",
    )
    ap.add_argument("--seeds", default="1-20", help="e.g. 1-500 or 3,7,10-12")
    ap.add_argument("--json", action="store_true", help="print one JSON summary")
    ap.add_argument("--verbose", action="store_true", help="one line per run, with details")
    ap.add_argument(
        "--expect-violations",
        action="store_true",
        help="require at least one agreement violation (for B > f: shows the checker bites)",
    )
    ap.add_argument(
        "--k-heights",
        type=int,
        default=None,
        help="liveness: heights every honest validator must commit after the network "
        "stabilises (>= 1; default: the scenario's, 3)",
    )
    try:
        args = ap.parse_args(argv)
        seeds = parse_seeds(args.seeds)
        _check_args(args.nodes, args.byzantine, args.k_heights)
    except (ValueError, SystemExit) as e:
        if isinstance(e, SystemExit) and e.code == 0:
            return 0
        print(f"consensus.sim: {e}", file=sys.stderr)
        return 2
    overrides: dict[str, object] = {}
    if args.k_heights is not None:
        overrides["k_heights"] = args.k_heights
    f = max_faulty(args.nodes)
    if args.byzantine > f:
        print(
            f"consensus.sim: {args.byzantine} Byzantine of {args.nodes} exceeds f = {f}: "
            "agreement and liveness violations are expected (reported, not failures)",
            file=sys.stderr,
        )
    results: list[RunResult] = []
    for seed in seeds:
        r = run(make_scenario(seed, args.nodes, args.byzantine, **overrides))
        results.append(r)
        if args.verbose or (not args.json and not r.ok):
            status = "ok" if r.ok else "FAIL"
            print(
                f"{status} {r.description} heights={r.heights_committed} "
                f"evidence={r.evidence_found} violations={sorted(r.violations)}"
            )
            if not r.ok:
                for prop, details in sorted(r.violations.items()):
                    print(f"    {prop}: {details[0]}")
    summary = summarize(results, args.nodes, args.byzantine)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        expected = " (violations expected: B > f)" if summary["violations_expected"] else ""
        print(
            f"{summary['runs']} runs: {summary['safety_violations']} with safety violations, "
            f"{summary['liveness_failures']} liveness failures, "
            f"{summary['evidence_found']} evidence, {summary['heights_committed']} heights"
            f"{expected}"
        )
        if summary["failing_seeds"]:
            print(f"failing seeds: {summary['failing_seeds']}")
    if not summary["ok"]:
        return 1
    if args.expect_violations and not any("agreement" in r.violations for r in results):
        print(
            f"consensus.sim: --expect-violations: no run broke agreement in {len(results)} "
            f"run(s) with {args.byzantine} Byzantine of {args.nodes} (f = {f})",
            file=sys.stderr,
        )
        return 3
    return 0
