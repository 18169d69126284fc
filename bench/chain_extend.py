"""Growth in one process: extend a copy of a stopped testnet node's store with fresh records
(build, validate, commit, as a proposer would; signatures are not checked) and print the
CPU per record for each 50,000 (``--segment``), optionally reopening the store midway (issue 8).

    suyuan bench --nodes 4 --prefill 1000000 --records 100000 --seconds 30 --dir DIR
    python -m bench.chain_extend --dir DIR --records 400000 [--reopen-at 250000]

It separates the cost of a large log (the store's B-trees and free pages) from the cost of
a long-running node process: this path alone, in one process, shows whether a store that
keeps growing, or a store environment that has been open for long, makes records dearer.
The copy is made in a temporary folder and deleted; the source is not written.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from node.chain import EXTRA_DBS, ChainState, parse_trusted
from node.genesis import Genesis
from node.keys import load_key_file
from node.main import tune_gc
from node.store import Store
from proto import types_pb2
from testnet.loadgen import AUTHORS, sign_one
from testnet.machine import measure_verify_per_core
from testnet.manifest import Manifest

BLOCK = 2000
SEGMENT = 50_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True, help="a stopped testnet's folder")
    ap.add_argument("--node", type=int, default=0, help="whose store to copy")
    ap.add_argument("--records", type=int, default=400_000, help="records to add")
    ap.add_argument("--reopen-at", type=int, default=0, help="reopen the store after N (0: no)")
    ap.add_argument("--segment", type=int, default=SEGMENT, help="records per printed line")
    args = ap.parse_args()
    man = Manifest.load(args.dir)
    g = Genesis.load(man.genesis)
    keys = [load_key_file(man.key_file(a)) for a in AUTHORS]
    t0 = time.perf_counter()
    pbs = [
        types_pb2.Envelope.FromString(sign_one(g, keys[i % len(keys)], "ext", i, 200))
        for i in range(args.records)
    ]
    print(f"signed {args.records:,} records in {time.perf_counter() - t0:.0f} s", flush=True)
    verify = measure_verify_per_core(seconds=1.0)["median"]
    tune_gc()
    with tempfile.TemporaryDirectory(prefix="suyuan-extend-") as tmp:
        work = Path(tmp) / "store"
        shutil.copytree(args.dir / f"node{args.node}" / "store", work)
        store = Store.open(work, g.hash, create=False, extra_dbs=EXTRA_DBS)
        chain = ChainState(store, g)
        print(f"log size at start: {store.head().log_size:,}", flush=True)
        done = in_segment = 0
        cpu0 = time.process_time()
        try:
            for i in range(0, args.records, BLOCK):
                cands = [(pb, parse_trusted(pb)) for pb in pbs[i : i + BLOCK]]
                h = store.head().height + 1
                block, dropped = chain.build_block(h, 0, g.validators[0], cands)
                if dropped:
                    raise SystemExit(f"block {h}: {dropped[0].reason}")
                chain._prepared.clear()  # validated as another validator would
                prepared = chain.validate_block(
                    block, verify_signatures=False, known=[v for _, v in cands]
                )
                chain.commit(prepared, types_pb2.CommitCertificate(height=h))
                done += len(cands)
                in_segment += len(cands)
                if in_segment >= args.segment:
                    cpu = time.process_time()
                    us = (cpu - cpu0) / in_segment * 1e6
                    print(f"  {done:>9,} added: {us:6.1f} us CPU/record", flush=True)
                    cpu0, in_segment = cpu, 0
                if args.reopen_at and done == args.reopen_at:
                    store.close()
                    store = Store.open(work, g.hash, create=False, extra_dbs=EXTRA_DBS)
                    chain = ChainState(store, g)
                    print("  -- store reopened", flush=True)
                    cpu0, in_segment = time.process_time(), 0
        finally:
            store.close()
    print(f"  Ed25519 verify, one core, same run: {verify:,.0f}/s")


if __name__ == "__main__":
    main()
