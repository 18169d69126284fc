"""A seeded, deterministic discrete-event simulator that tries to break the replica.

``run(Scenario)`` drives n replicas over a simulated network (latency, drops, duplicates,
reordering, partitions, GST), crashes and restarts honest nodes from their persisted sign
state, runs Byzantine validators, and checks the protocol's claims afterwards
(``consensus.sim.checks``). ``python -m consensus.sim`` runs seed ranges from the shell.

Everything is a function of the seed: one ``random.Random(seed)`` builds the scenario, and
the network uses its own ``random.Random`` derived from it. No wall clock, no threads; the
randomness stays in this package and out of the state machine.
"""

from consensus.sim.checks import RunResult
from consensus.sim.scenario import BEHAVIOURS, Scenario, make_scenario
from consensus.sim.world import run

__all__ = ["BEHAVIOURS", "RunResult", "Scenario", "make_scenario", "run", "run_seed"]


def run_seed(seed: int, n: int, byzantine: int, **overrides: object) -> RunResult:
    """Build the scenario for ``seed`` and run it."""
    return run(make_scenario(seed, n, byzantine, **overrides))
