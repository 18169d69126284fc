"""Catch-up cost in one process: replay a testnet node's blocks into a fresh store through
the sync path (issue 8), with the node parsing or with the sync helper's blobs.

    suyuan bench --nodes 4 --records 100000 --seconds 30 --dir DIR    # a chain to replay
    python -m bench.sync_replay --dir DIR [--node 0] [--helper]

Per record, it times ``node.sync._certified_records`` (certificate, then the records parsed,
or rebuilt from ``node.sync_helper.decode``'s blob, made beforehand and not timed),
``ChainState.validate_block`` and ``ChainState.commit`` into a fresh store in a temporary
folder, with the node's GC settings (``node.main.tune_gc``). It prints the one-core Ed25519
verify rate measured in the same run: compare figures only with it. The source store is
opened read-only in effect (nothing is written to it); the testnet must be stopped.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from node import sync
from node.chain import EXTRA_DBS, ChainState
from node.genesis import Genesis
from node.main import tune_gc
from node.store import Store
from node.sync_helper import decode
from proto import types_pb2
from testnet.machine import measure_verify_per_core


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True, help="a stopped testnet's folder")
    ap.add_argument("--node", type=int, default=0, help="whose store to replay")
    ap.add_argument("--helper", action="store_true", help="rebuild from the helper's blobs")
    args = ap.parse_args()
    g = Genesis.load(args.dir / "genesis.json")
    src = Store.open(
        args.dir / f"node{args.node}" / "store", g.hash, create=False, extra_dbs=EXTRA_DBS
    )
    blocks: list[tuple[types_pb2.Block, types_pb2.CommitCertificate]] = []
    for h in range(1, src.head().height + 1):
        sb = src.get_block(h)
        if sb is None:
            raise SystemExit(f"block {h} is missing from the source store")
        blocks.append(
            (
                types_pb2.Block.FromString(sb.block_bytes()),
                types_pb2.CommitCertificate.FromString(sb.certificate_bytes),
            )
        )
    src.close()
    n = sum(len(b.envelopes) for b, _ in blocks)
    blobs = [decode(b.SerializeToString()) if args.helper else None for b, _ in blocks]
    verify = measure_verify_per_core(seconds=1.0)["median"]
    tune_gc()
    took = {"certificate and parse": 0.0, "validation": 0.0, "commit": 0.0}
    with (
        tempfile.TemporaryDirectory(prefix="suyuan-sync-replay-") as tmp,
        Store.open(Path(tmp), g.hash, extra_dbs=EXTRA_DBS) as store,
    ):
        chain = ChainState(store, g)
        node = SimpleNamespace(chain=chain, genesis=g)
        for (block, cert), blob in zip(blocks, blobs, strict=True):
            t0 = time.perf_counter()
            known = sync._certified_records(node, block, cert, blob)  # type: ignore[arg-type]
            t1 = time.perf_counter()
            prepared = chain.validate_block(block, verify_signatures=False, known=known)
            t2 = time.perf_counter()
            chain.commit(prepared, cert)
            t3 = time.perf_counter()
            took["certificate and parse"] += t1 - t0
            took["validation"] += t2 - t1
            took["commit"] += t3 - t2
    total = sum(took.values())
    print(f"{len(blocks)} blocks, {n:,} records, {'helper blobs' if args.helper else 'parsed'}")
    for name, s in took.items():
        print(f"  {name:<22} {s / n * 1e6:6.2f} us/record")
    print(f"  {'all':<22} {total / n * 1e6:6.2f} us/record = {n / total:,.0f} records/s")
    print(f"  Ed25519 verify, one core, same run: {verify:,.0f}/s")


if __name__ == "__main__":
    main()
