"""Throughput of the state machine alone: heights decided per CPU second.

``python -m consensus.sim.throughput --nodes 4 --heights 1000`` runs n replicas in one
process over a perfect in-memory network (FIFO, no loss, no timers firing), answering
value and validity requests at once, and reports heights per CPU second with signature
verification done by the replicas, and again with verification done (once per message)
outside them, as a driver that offloads it would, and with no verification at all (the
state machine plus Ed25519 signing). A measuring tool: it reads the process
CPU clock, which the state machine itself never does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import deque
from collections.abc import Sequence

from nacl.signing import SigningKey

from consensus.events import (
    Action,
    BlockValidity,
    Broadcast,
    MessageReceived,
    ProposalValue,
    RequestProposal,
    ValidateBlock,
)
from consensus.messages import Message
from consensus.params import TimeoutParams
from consensus.signing import Ed25519Signer, verify_message
from consensus.sim.world import GENESIS, SIM_CHAIN, sim_block
from consensus.state import Replica
from consensus.validators import ChainContext, ValidatorSet

__all__ = ["measure"]


def measure(n: int, heights: int, preverified: bool, verify: bool = True) -> dict[str, float]:
    keys = [SigningKey(hashlib.sha256(f"bench-{i}".encode()).digest()) for i in range(n)]
    ids = [f"b{i}" for i in range(n)]
    vs = ValidatorSet.from_pairs([(ids[i], bytes(keys[i].verify_key)) for i in range(n)])
    ctx = ChainContext(vs, GENESIS, SIM_CHAIN)
    reps = [Replica(ctx, Ed25519Signer(ids[i], keys[i]), TimeoutParams()) for i in range(n)]
    queue: deque[tuple[int, Message]] = deque()
    messages = 0
    start = time.process_time()

    def run(i: int, actions: Sequence[Action]) -> None:
        nonlocal messages
        work: deque[Action] = deque(actions)
        while work:
            a = work.popleft()
            if isinstance(a, Broadcast):
                if preverified and verify:
                    assert verify_message(a.message, ctx) is None
                for j in range(n):
                    if j != i:
                        queue.append((j, a.message))
                        messages += 1
            elif isinstance(a, RequestProposal):
                block = sim_block(a.height, a.round, ids[i], b"", "bench")
                work.extend(reps[i].step(ProposalValue(a.height, a.round, block)))
            elif isinstance(a, ValidateBlock):
                work.extend(reps[i].step(BlockValidity(a.block_hash, True)))

    for i in range(n):
        run(i, reps[i].start())
    while min(r.height for r in reps) <= heights:
        j, m = queue.popleft()
        run(j, reps[j].step(MessageReceived(m, verified=preverified)))
    cpu = time.process_time() - start
    return {
        "nodes": n,
        "heights": heights,
        "cpu_seconds": round(cpu, 3),
        "heights_per_cpu_second": round(heights / cpu, 1),
        "messages": messages,
    }


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m consensus.sim.throughput")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--heights", type=int, default=1000)
    args = ap.parse_args()
    out = {
        "replica_verifies": measure(args.nodes, args.heights, preverified=False),
        "driver_verifies_once_per_message": measure(args.nodes, args.heights, preverified=True),
        "no_verification_signing_only": measure(
            args.nodes, args.heights, preverified=True, verify=False
        ),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
