"""Seeded simulation sweeps: the protocol's claims under every fault the simulator has.

A failing seed is printed with the command that replays it. The big sweeps are marked
slow (CI runs them); the quick ones run on every ``pytest``.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

from consensus.sim import BEHAVIOURS, make_scenario, run_seed
from consensus.sim.cli import main, parse_seeds

ROOT = pathlib.Path(__file__).resolve().parents[2]


def sweep(n: int, byzantine: int, seeds: range) -> list[str]:
    failures = []
    for seed in seeds:
        r = run_seed(seed, n, byzantine)
        if not r.ok:
            detail = "; ".join(f"{p}: {d[0]}" for p, d in sorted(r.violations.items()))
            failures.append(
                f"{r.description}: {detail}\n  replay: python -m consensus.sim "
                f"--nodes {n} --byzantine {byzantine} --seeds {seed}-{seed} --verbose"
            )
    return failures


def assert_sweep(n: int, byzantine: int, seeds: range) -> None:
    failures = sweep(n, byzantine, seeds)
    for line in failures:
        print(line)
    assert not failures, f"{len(failures)} failing seeds:\n" + "\n".join(failures)


# ---------------------------------------------------------------- quick (every run)


@pytest.mark.parametrize(("n", "b"), [(4, 0), (4, 1), (7, 2)])
def test_quick_sweep(n, b):
    assert_sweep(n, b, range(1000, 1010))


@pytest.mark.parametrize("seed", [20563, 21008, 21493, 23866])
def test_seeds_that_stalled_after_a_crash_now_decide(seed):
    """Found by sweeping other seeds (4 validators, 1 Byzantine): a validator restarted
    after a crash without its last precommit (20563, 21008), or locked on a block it no
    longer held (21493, 23866), and the honest validators never decided again. The sign
    state now keeps the last precommit, and the driver keeps the locked block and its
    proof of lock (``consensus.lockstate``)."""
    assert_sweep(4, 1, range(seed, seed + 1))


def test_more_than_f_byzantine_breaks_agreement_in_some_seeds():
    """Twins with 2 of 4: the checker must see agreement fail (it is not vacuous)."""
    results = [run_seed(seed, 4, 2) for seed in range(1, 31)]
    broken = [r.seed for r in results if "agreement" in r.violations]
    assert len(broken) >= 3, broken
    assert all(r.ok for r in results)  # nothing that must hold regardless failed


def test_runs_are_deterministic_across_processes():
    """Same seed, different PYTHONHASHSEED: identical results."""
    code = (
        "import json; from consensus.sim import run_seed; r = run_seed(7, 4, 1); "
        "print(json.dumps([r.description, r.heights_committed, r.delivered, r.steps, "
        "r.sim_ms, r.evidence_found, sorted(r.counters.items())]))"
    )
    outs = set()
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, check=True
        )
        outs.add(out.stdout)
    assert len(outs) == 1
    a, b = run_seed(3, 7, 2), run_seed(3, 7, 2)
    assert (a.delivered, a.steps, a.counters) == (b.delivered, b.steps, b.counters)


def test_sweep_seeds_cover_every_fault():
    scenarios = [make_scenario(s, 4, 1) for s in range(1, 401)]
    scenarios += [make_scenario(s, 7, 2) for s in range(1, 81)]
    behaviours = {b for sc in scenarios for _, b in sc.byzantine}
    assert behaviours == set(BEHAVIOURS)
    assert any(c.mid_step for sc in scenarios for c in sc.crashes)
    assert any(not c.mid_step for sc in scenarios for c in sc.crashes)
    assert any(sc.partitions for sc in scenarios)
    assert any(sc.drop > 0 for sc in scenarios)
    assert any(sc.dup > 0 for sc in scenarios)
    assert any(sc.twin_split for sc in scenarios)


def test_equivocations_are_seen_and_turned_into_evidence():
    results = [run_seed(s, 7, 2) for s in range(1, 5)]
    assert sum(r.equivocations for r in results) > 0
    assert all(r.evidence_found >= r.equivocations for r in results)


def test_cli_json_and_exit_codes(capsys):
    assert main(["--nodes", "4", "--byzantine", "1", "--seeds", "1-3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in (
        "runs",
        "safety_violations",
        "liveness_failures",
        "evidence_found",
        "heights_committed",
        "failing_seeds",
    ):
        assert key in summary
    assert summary["runs"] == 3
    # B > f: violations are reported as expected; --expect-violations demands them.
    args = ["--nodes", "4", "--byzantine", "2", "--seeds", "1-12", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["safety_violations"] > 0
    assert summary["expected_violations"]["agreement"]
    assert main([*args, "--expect-violations"]) == 0
    assert main(["--nodes", "4", "--byzantine", "0", "--seeds", "1-2", "--expect-violations"]) == 3
    assert main(["--seeds", "5-1"]) == 2
    capsys.readouterr()


def test_cli_b_above_f_says_violations_are_expected(capsys):
    assert main(["--nodes", "4", "--byzantine", "1", "--seeds", "1-1", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["violations_expected"] is False
    assert out.err == ""
    assert main(["--nodes", "4", "--byzantine", "2", "--seeds", "1-1", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["violations_expected"] is True
    assert len(out.err.strip().splitlines()) == 1
    assert "exceeds f = 1" in out.err
    assert "violations are expected" in out.err


def test_cli_expect_violations_failure_says_why(capsys):
    assert main(["--nodes", "4", "--byzantine", "0", "--seeds", "1-1", "--expect-violations"]) == 3
    err = capsys.readouterr().err
    assert "--expect-violations: no run broke agreement" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--nodes", "1", "--byzantine", "0"], "--nodes 1: need at least 4"),
        (["--nodes", "3", "--byzantine", "0"], "--nodes 3: need at least 4"),
        (["--nodes", "4", "--byzantine", "5"], "--byzantine 5: must be between 0 and"),
        (["--nodes", "4", "--byzantine", "-1"], "--byzantine -1: must be between 0 and"),
        (["--k-heights", "0"], "--k-heights 0: must be at least 1"),
        (["--nodes", "four"], "invalid int value: 'four'"),
        (["--seeds", "a-b"], "--seeds 'a-b': expected ranges"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_cli_bad_arguments_one_line_exit_2(capsys, args, needle):
    assert main([*args, "--seeds", "1-1"] if "--seeds" not in args else args) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.count("\n") == 1
    assert needle in out.err


def test_cli_help_describes_every_option(capsys):
    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    for phrase in (
        "validators in each run",
        "Byzantine validators among them",
        "liveness: heights",
    ):
        assert phrase in help_text


def test_parse_seeds():
    assert parse_seeds("1-3,7,9-10") == [1, 2, 3, 7, 9, 10]


def test_state_machine_imports_no_io_clock_randomness_or_threads():
    banned = {"grpc", "lmdb", "time", "random", "threading", "asyncio", "socket", "os"}
    for path in (ROOT / "consensus").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"


# ---------------------------------------------------------------- sweeps (slow)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(8))
def test_sweep_n4_one_byzantine(chunk):
    """400 scenarios, n = 4, f = 1, one Byzantine validator of every kind."""
    assert_sweep(4, 1, range(1 + 50 * chunk, 51 + 50 * chunk))


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(2))
def test_sweep_n4_crash_faults_only(chunk):
    """100 scenarios, n = 4, no Byzantine validator: crashes, partitions, loss."""
    assert_sweep(4, 0, range(401 + 50 * chunk, 451 + 50 * chunk))


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(4))
def test_sweep_n7_two_byzantine(chunk):
    """80 scenarios, n = 7, f = 2, two Byzantine validators."""
    assert_sweep(7, 2, range(1 + 20 * chunk, 21 + 20 * chunk))


@pytest.mark.slow
def test_sweep_n7_one_byzantine():
    """20 scenarios, n = 7, one Byzantine validator."""
    assert_sweep(7, 1, range(81, 101))


@pytest.mark.slow
def test_sweep_more_than_f_finds_violations_n7():
    """n = 7 with 3 Twins (> f = 2): agreement must break in some seeds."""
    results = [run_seed(seed, 7, 3) for seed in range(1, 21)]
    assert any("agreement" in r.violations for r in results)
    assert all(r.ok for r in results)


def test_checker_catches_a_driver_that_does_not_persist(monkeypatch):
    """Mutation: drop PersistSignState; crash-restarts then double-sign, and it is caught."""
    import consensus.sim.world as world
    from consensus.events import PersistSignState

    original = world.World.execute

    def forgetful(self, inst, actions):
        return original(self, inst, [a for a in actions if not isinstance(a, PersistSignState)])

    monkeypatch.setattr(world.World, "execute", forgetful)
    caught = [s for s in range(1, 11) if "double_sign" in run_seed(s, 4, 0).violations]
    assert caught
