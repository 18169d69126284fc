"""Benchmark of the Merkle log and the LMDB store (issue 3). Not a test.

    .venv/bin/python -m bench.bench_log --leaves 1000000

Measures, with 400-byte leaves (envelopes) and 1,000 per transaction:

1. the persistent Merkle tree alone (node.merkle_store on LMDB, durable commit per batch);
2. the whole ``Store.append_block`` (envelopes, ids, nonces, one code per record);
3. inclusion proofs from the store at the full size, their verification, consistency
   proofs and past roots;
4. disk bytes per leaf (file size and pages in use, per sub-database) and peak RSS;
5. pymerkle 7's in-memory tree on the same machine in the same run, on a smaller count
   (``--pymerkle-leaves``), for comparison.

Rates are medians over ``--reps`` repetitions where a repetition is cheap.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import statistics
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import lmdb
import pymerkle

from node import merkle
from node.merkle_store import EMPTY, extend
from node.store import BlockWrite, Store

GENESIS = hashlib.sha256(b"bench-log").digest()
LEAF_BYTES = 400


def batches(total: int, batch: int, seed: int = 1) -> Iterator[list[bytes]]:
    """Distinct 400-byte leaves: a 12-digit counter over a fixed random body."""
    body = random.Random(seed).randbytes(LEAF_BYTES)[12:]
    for start in range(0, total, batch):
        yield [b"%012d" % i + body for i in range(start, min(start + batch, total))]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_now() -> str:
    """Current resident memory split into anonymous (heap) and file-backed (LMDB's map)."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon", "RssFile")):
                name, value, _unit = line.split()
                fields[name.rstrip(":")] = int(value) / 1024
    return (
        f"anon {fields.get('RssAnon', 0):.0f} MiB + file-backed {fields.get('RssFile', 0):.0f} MiB"
    )


class Rate(NamedTuple):
    """Items per second of wall-clock time and of this process's CPU time. The machine is
    shared (other engineers' tests run on the same 2 vCPUs), so CPU-time rates are the
    stable figure for CPU-bound work; wall-clock rates include fsync waits and contention."""

    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall / 1000:,.1f}k/s ({self.cpu / 1000:,.1f}k/s CPU)"


class Clock:
    """Accumulates wall-clock and CPU time over several timed sections."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    @contextmanager
    def timed(self) -> Iterator[None]:
        w, c = time.perf_counter(), time.process_time()
        yield
        self.wall += time.perf_counter() - w
        self.cpu += time.process_time() - c

    def rate(self, count: int) -> Rate:
        return Rate(count / self.wall, count / max(self.cpu, 1e-9))


def median_rate(reps: int, count: int, work: Callable[[], None]) -> Rate:
    runs = []
    for _ in range(reps):
        clock = Clock()
        with clock.timed():
            work()
        runs.append(clock.rate(count))
    return Rate(statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs))


def bench_tree_only(path: Path, total: int, batch: int) -> Rate:
    """The persistent Merkle tree alone: extend + chunk puts + durable commit per batch."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    env = lmdb.open(str(path), map_size=1 << 34, max_dbs=2, sync=True, meminit=False)
    db = env.open_db(b"merkle")
    front = EMPTY
    clock = Clock()
    for leaves in batches(total, batch):
        with clock.timed():
            appended = extend(front, leaves)
            with env.begin(write=True) as txn:
                with txn.cursor(db) as cur:
                    cur.putmulti(appended.puts)
                head = struct.pack(">Q", appended.frontier.size) + appended.frontier.root
                txn.put(b"head", head)
        front = appended.frontier
    env.close()
    return clock.rate(total)


def make_block(height: int, first: int, leaves: list[bytes]) -> BlockWrite:
    n = len(leaves)
    return BlockWrite(
        height=height,
        block_hash=hashlib.sha256(b"block%d" % height).digest(),
        header_bytes=b"h" * 200,
        certificate_bytes=b"c" * 400,
        envelopes=leaves,
        record_ids=[hashlib.sha256(e).digest() for e in leaves],
        leaf_data=leaves,
        codes=[(f"urn:epc:id:sgtin:0614141.107346.{first + i}",) for i in range(n)],
        nonces=[(f"member-{i % 8}", f"{height}-{i}") for i in range(n)],
    )


def bench_store(path: Path, total: int, batch: int) -> tuple[Store, Rate]:
    shutil.rmtree(path, ignore_errors=True)
    store = Store.open(path, GENESIS, map_size=1 << 30)
    clock = Clock()
    first = 0
    for height, leaves in enumerate(batches(total, batch), start=1):
        block = make_block(height, first, leaves)  # ids and codes: the node's work, not timed
        with clock.timed():
            store.append_block(block)
        first += len(leaves)
    return store, clock.rate(total)


def disk_report(store: Store, leaves: int) -> list[tuple[str, float]]:
    env = store._env  # bench only: per-database page counts
    rows = []
    with env.begin() as txn:
        for name, db in store._dbs.items():
            st = txn.stat(db)
            pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
            if pages:
                rows.append((name, pages * st["psize"] / leaves))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--pymerkle-leaves", type=int, default=200_000)
    ap.add_argument("--proofs", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tree-reps", type=int, default=3)
    ap.add_argument("--dir", default="")
    args = ap.parse_args()
    n, rng = args.leaves, random.Random(42)
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    base = Path(args.dir or tempfile.mkdtemp(prefix="bench-log-"))
    rows: list[tuple[str, str, str]] = []

    # 1. the Merkle tree on LMDB alone
    tree_rates = [bench_tree_only(base / "tree", n, args.batch) for _ in range(args.tree_reps)]
    tree_rate = Rate(
        statistics.median(r.wall for r in tree_rates), statistics.median(r.cpu for r in tree_rates)
    )
    shutil.rmtree(base / "tree", ignore_errors=True)

    # 2. the whole store
    store, store_rate = bench_store(base / "store", n, args.batch)
    head = store.head()
    assert head.log_size == n

    # 3. proofs, verification, past roots at the full size
    pairs = [(i, n) for i in (rng.randrange(n) for _ in range(args.proofs))]
    proofs: list[list[bytes]] = []

    def prove() -> None:
        proofs[:] = [store.inclusion_proof(i, s) for i, s in pairs]

    prove_rate = median_rate(args.reps, len(pairs), prove)
    leaf_hashes = [store.leaf_hash_at(i) for i, _ in pairs]
    root = head.log_root
    assert all(
        merkle.verify_inclusion(h, i, s, p, root)
        for h, (i, s), p in zip(leaf_hashes, pairs, proofs, strict=True)
    )

    def verify() -> None:
        for h, (i, s), p in zip(leaf_hashes, pairs, proofs, strict=True):
            merkle.verify_inclusion(h, i, s, p, root)

    verify_rate = median_rate(args.reps, len(pairs), verify)
    sizes = [rng.randint(1, n) for _ in range(args.proofs // 4)]

    def consistency() -> None:
        for m in sizes:
            store.consistency_proof(m, n)

    def roots() -> None:
        for m in sizes:
            store.log_root(m)

    cons_rate = median_rate(args.reps, len(sizes), consistency)
    root_rate = median_rate(args.reps, len(sizes), roots)
    path_len = statistics.mean(len(p) for p in proofs)

    # 4. disk and memory
    data = base / "store" / "data.mdb"
    file_per_leaf = data.stat().st_size / n
    per_db = disk_report(store, n)
    used_per_leaf = sum(v for _, v in per_db)
    log_part = sum(v for k, v in per_db if k in ("blocks", "block_ends", "ids", "merkle", "meta"))
    rss_split = rss_now()
    store.close()
    rss_ours = rss_mib()
    shutil.rmtree(base / "store", ignore_errors=True)

    # 5. pymerkle in memory, same machine, same run, on a smaller count
    pn = args.pymerkle_leaves
    pm_leaves = [leaf for b in batches(pn, args.batch) for leaf in b]

    def pm_append() -> None:
        tree = pymerkle.InmemoryTree()
        for leaf in pm_leaves:
            tree.append_entry(leaf)

    pm_append_rate = median_rate(args.tree_reps, pn, pm_append)
    tree = pymerkle.InmemoryTree()
    for leaf in pm_leaves:
        tree.append_entry(leaf)
    pm_root = tree.get_root(pn)
    pm_idx = [rng.randrange(pn) + 1 for _ in range(args.proofs // 4)]
    pm_proofs: list[object] = []

    def pm_prove() -> None:
        pm_proofs[:] = [tree.prove_inclusion(i, pn) for i in pm_idx]

    pm_prove_rate = median_rate(args.reps, len(pm_idx), pm_prove)
    pm_bases = [tree.get_leaf(i) for i in pm_idx]

    def pm_verify() -> None:
        for b, p in zip(pm_bases, pm_proofs, strict=True):
            pymerkle.verify_inclusion(b, pm_root, p)

    pm_verify_rate = median_rate(args.reps, len(pm_idx), pm_verify)

    def k(x: Rate) -> str:
        return str(x)

    rows += [
        (
            f"append, Merkle tree on LMDB alone ({args.batch}/txn, durable)",
            f"{k(tree_rate)}; runs: {'; '.join(k(r) for r in tree_rates)}",
            f"pymerkle append_entry at {pn:,}: {k(pm_append_rate)}; "
            f"ours / pymerkle: {tree_rate.wall / pm_append_rate.wall:.1f}x wall, "
            f"{tree_rate.cpu / pm_append_rate.cpu:.1f}x CPU",
        ),
        (
            f"append, whole Store.append_block ({args.batch} records/block)",
            k(store_rate),
            "envelope, id, nonce, 1 code per record; 1 run",
        ),
        (
            f"inclusion proof at {n:,} (path {path_len:.1f})",
            k(prove_rate),
            f"pymerkle prove_inclusion at {pn:,}: {k(pm_prove_rate)}; "
            f"ours / pymerkle: {prove_rate.cpu / pm_prove_rate.cpu:.1f}x CPU",
        ),
        (
            "verify inclusion (node.merkle.verify_inclusion)",
            k(verify_rate),
            f"pymerkle verify_inclusion at {pn:,}: {k(pm_verify_rate)}; "
            f"ours / pymerkle: {verify_rate.cpu / pm_verify_rate.cpu:.1f}x CPU",
        ),
        (f"consistency proof (random size1, size2 = {n:,})", k(cons_rate), ""),
        ("log root at a random past size", k(root_rate), ""),
        (
            "disk bytes per leaf (data.mdb size / pages in use)",
            f"{file_per_leaf:.0f} / {used_per_leaf:.0f}",
            f"target <= {1.3 * LEAF_BYTES + 100:.0f}; blocks+ids+merkle: {log_part:.0f}",
        ),
        (
            "  pages in use per leaf, by sub-database",
            ", ".join(f"{name} {v:.1f}" for name, v in per_db),
            "",
        ),
        (
            "peak RSS after the store phases / at the end",
            f"{rss_ours:.0f} / {rss_mib():.0f} MiB",
            f"before closing the store: {rss_split}",
        ),
    ]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"leaves={n:,} x {LEAF_BYTES} B, batch={args.batch}, cpus={os.cpu_count()}, ")
    print(f"load average at start: {load0}, at end: {load}")
    print("| what | ours | comparison / note |")
    print("|---|---:|---|")
    for what, ours, note in rows:
        print(f"| {what} | {ours} | {note} |")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
