"""Proofs and audit benchmark (issue #7): prove and verify latency at a large log, and audit
throughput. Not a test: run it by hand and copy the figures into BENCHMARKS.md.

    .venv/bin/python -m bench.proofs_bench --records 1000000 [--dir DIR] [--json]

It builds (once; reused from ``--dir`` afterwards) a store of ``--records`` genuine records:
distinct commissioning events by ``farm`` signed with the fixed test key, in blocks of
``--block`` records, each block with a real 4-validator commit certificate, written through
``Store.append_block`` (the custody tables are not filled: neither prove nor audit reads
them; audit replays the custody rules itself). Then:

* prove: ``node.proofs.build_bundle`` for random committed records (the node's side of
  ``Ledger.Prove``), and the same plus the JSON encoding the CLI writes;
* verify: ``node.verify.verify_bundle`` on parsed bundles, and JSON parse + verify;
* audit: ``node.audit.audit_blocks`` over every committed block read from the store (no
  gRPC), for each thread count in ``--threads``, with ``--processes`` worker processes
  (default: one per CPU; 0: threads only, as before).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from consensus.certificate import make_certificate
from consensus.messages import VoteType
from consensus.signing import Ed25519Signer, sign_vote
from consensus.validators import ChainContext, ValidatorSet
from node.audit import audit_blocks
from node.chain import EXTRA_DBS, records_hash
from node.convert import envelope_to_proto
from node.envelope import PAYLOAD_TYPE, Envelope, Signature, envelope_leaf_bytes
from node.proofs import build_bundle
from node.records import TraceRecord
from node.store import BlockWrite, Store
from node.verify import bundle_to_json, parse_bundle_json, verify_bundle
from proto import types_pb2
from testnet.machine import machine_description, measure_verify_per_core
from tests.fixtures import genesis as test_genesis
from tests.fixtures import key, object_event

T0_MS = 1_780_000_000_000


def _envelope(g, farm, i: int) -> Envelope:
    code = f"urn:epc:id:sgtin:6901234.000001.{i}"
    rec = TraceRecord(g.chain_id, g.hash.hex(), "farm", f"{i:016x}", "meat", object_event([code]))
    env = Envelope(rec.to_payload(), PAYLOAD_TYPE)
    return Envelope(env.payload, PAYLOAD_TYPE, (Signature("farm", farm.sign(env.signed_bytes())),))


def build_store(path: Path, records: int, block: int) -> Store:
    g = test_genesis()
    store = Store.open(path, g.hash, extra_dbs=EXTRA_DBS, map_size=64 << 30)
    head = store.head()
    if head.log_size >= records:
        return store
    farm = key("farm")
    vs = ValidatorSet.from_pairs(g.validator_keys())
    ctx = ChainContext(vs, g.hash, g.chain_id)
    signers = [Ed25519Signer(v, key(v).signing_key) for v in vs.ids]
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    t0 = time.perf_counter()
    start = head.log_size
    while start < records:
        n = min(block, records - start)
        envs = list(pool.map(lambda i: _envelope(g, farm, i), range(start, start + n)))
        head = store.head()
        h = head.height + 1
        leaves = [envelope_leaf_bytes(e) for e in envs]
        size, root = store.preview_root(leaves)
        header = types_pb2.BlockHeader(
            chain_id=g.chain_id,
            genesis_hash=g.hash,
            height=h,
            time_ms=T0_MS + h * 1000,
            proposer=vs.proposer(h, 0),
            prev_block_hash=head.block_hash,
            log_size=size,
            log_root=root,
            num_records=n,
            records_hash=records_hash(e.record_id for e in envs),
        )
        raw = header.SerializeToString()
        bh = hashlib.sha256(raw).digest()
        votes = [sign_vote(s, ctx, VoteType.PRECOMMIT, h, 0, bh) for s in signers]
        cert = make_certificate(vs, h, 0, bh, votes)
        rec_codes = [[f"urn:epc:id:sgtin:6901234.000001.{i}"] for i in range(start, start + n)]
        store.append_block(
            BlockWrite(
                height=h,
                block_hash=bh,
                header_bytes=raw,
                certificate_bytes=cert.SerializeToString(),
                envelopes=[envelope_to_proto(e).SerializeToString() for e in envs],
                record_ids=[e.record_id for e in envs],
                leaf_data=leaves,
                codes=rec_codes,
                nonces=[("farm", f"{i:016x}") for i in range(start, start + n)],
            )
        )
        start += n
        if h % 25 == 0:
            print(f"  built {start:,} records ({time.perf_counter() - t0:.0f} s)", flush=True)
    pool.shutdown()
    return store


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    return {
        "p50_ms": round(statistics.median(s) / 1e6, 3),
        "p90_ms": round(s[int(len(s) * 0.9)] / 1e6, 3),
        "p99_ms": round(s[int(len(s) * 0.99)] / 1e6, 3),
        "n": len(s),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--block", type=int, default=4000)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--threads", default="2,4")
    ap.add_argument(
        "--processes", type=int, default=None, help="audit worker processes (default: CPUs)"
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-audit", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    d = args.dir or Path(f"/tmp/suyuan-bench-proofs-{args.records}")
    g = test_genesis()
    t0 = time.perf_counter()
    store = build_store(d, args.records, args.block)
    built_s = time.perf_counter() - t0
    head = store.head()
    rng = random.Random(args.seed)
    indexes = [rng.randrange(head.log_size) for _ in range(args.samples)]
    ids = []
    for i in indexes:
        raw = store.get_envelope_at(i)
        assert raw is not None
        ids.append(hashlib.sha256(types_pb2.Envelope.FromString(raw).payload).digest())
    for rid in ids[:50]:  # warm-up
        build_bundle(store, g, rid)
    prove_ns, prove_json_ns, bundles, texts = [], [], [], []
    for rid in ids:
        t = time.perf_counter_ns()
        b = build_bundle(store, g, rid)
        t1 = time.perf_counter_ns()
        text = bundle_to_json(b)
        t2 = time.perf_counter_ns()
        prove_ns.append(t1 - t)
        prove_json_ns.append(t2 - t)
        bundles.append(b)
        texts.append(text)
    # cold: the first proof in a block reads the block (Store.get_block copies every
    # envelope); later proofs in that block hit node.proofs' header/certificate LRU
    from node import proofs

    cold_ns = []
    for rid in ids[: max(1, args.samples // 10)]:
        proofs._cache.clear()
        t = time.perf_counter_ns()
        build_bundle(store, g, rid)
        cold_ns.append(time.perf_counter_ns() - t)
    verify_ns, verify_json_ns = [], []
    for b, text in zip(bundles, texts, strict=True):
        t = time.perf_counter_ns()
        ok = verify_bundle(b, g)
        t1 = time.perf_counter_ns()
        ok2 = verify_bundle(parse_bundle_json(text), g)
        t2 = time.perf_counter_ns()
        assert ok, ok.describe()
        assert ok2
        verify_ns.append(t1 - t)
        verify_json_ns.append(t2 - t1)
    out = {
        "machine": machine_description(),
        "ed25519_verify_per_core": measure_verify_per_core(seconds=1.0),
        "log_size": head.log_size,
        "blocks": head.height,
        "store_build_s": round(built_s, 1),
        "prove": _percentiles(prove_ns),
        "prove_plus_json": _percentiles(prove_json_ns),
        "prove_cold_block": _percentiles(cold_ns),
        "verify": _percentiles(verify_ns),
        "json_parse_plus_verify": _percentiles(verify_json_ns),
    }
    audit_rows: list[dict[str, float]] = []
    out["audit"] = audit_rows
    print(json.dumps({k: v for k, v in out.items() if k != "audit"}, indent=2), flush=True)
    if not args.skip_audit:
        for threads in [int(t) for t in args.threads.split(",")]:

            def blocks():
                for h in range(1, head.height + 1):
                    b = store.get_block(h)
                    assert b is not None
                    yield types_pb2.CommittedBlock.FromString(b.committed_block_bytes())

            rep = audit_blocks(blocks(), g, threads=threads, processes=args.processes)
            assert rep.ok, rep.error
            row = {
                "threads": threads,
                "processes": (os.cpu_count() or 1) if args.processes is None else args.processes,
                "records": rep.records,
                "seconds": round(rep.seconds, 2),
                "records_per_s": round(rep.records_per_second),
            }
            print(json.dumps(row), flush=True)
            audit_rows.append(row)
    store.close()
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
