"""Trace query latency on a large ledger (issue #6).

    .venv/bin/python -m bench.bench_trace --records 1000000 [--dir DIR] [--keep] [--json]

Target: on a ledger of 1,000,000 records with a realistic supply-chain shape (depth 8,
fan-out 10), trace back and trace forward of a typical code answer in under 50 ms p50, and
the history of a code with 100 events in under 10 ms.

The ledger is built in-process into a real LMDB store through ``node.chain.ChainState``
(``build_block`` then ``commit``; the certificate is an empty placeholder). Records are real
trace records, built with ``make_record`` and run through every custody rule; what the
benchmark skips is signature work: each author signs once and that signature is reused on
every payload (the store and the queries never look at signatures, so the figures do not
depend on it; a node would have verified each one at admission).

Shape: ``chains`` independent production chains (about 20 records each), built in waves so
that every record's inputs are committed first:

    farm      commissions raw lot L(c)  (an LGTIN class)
    farm      T1: L(c), L(c+1) (inputQuantityList, partly consumed) -> O(c,1,0..9)
    farm      T2: O(c,1,0), O(c+1,1,1) -> O(c,2,0..9)              (fan-in 2, fan-out 10)
    farm -> slaughterhouse handoff of O(c,2,0..1); T3..T5 likewise; inspector inspects
              O(c,3,*); slaughterhouse packs O(c,4,2..9) into a case, hands it to distributor
    slaughterhouse -> processor handoff of O(c,5,0..1); T6..T8 -> O(c,8,0..9)
    processor packs O(c,8,*) into a case -> distributor -> retailer, who unpacks it, sells
              eight items (terminal) and keeps two on the shelf

so a raw lot's forward trace spans 8 levels and 9 chains (about 440 codes, the recall
scope), and a retail item's trace back reaches 9 raw lots through 8 transformations. One
extra code gets 100 events (commissioning, then 99 sensor reports).

Measured (p50/p95 over many random typical codes, after a warm-up pass over other codes):
``node.trace`` over ``node.indexes.StoreTraceIndex`` (the query itself), and the gRPC
service handler (``node.service.LedgerService.TraceBack/TraceForward/TraceHistory``, which
adds building the protobuf answer and, for history, reading each record's info) without the
network. Trace queries page at 100 nodes (the server default): the first page, and the whole
graph (every page at the 1,000-node maximum) are both timed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from node import trace
from node.chain import EXTRA_DBS, ChainState
from node.convert import envelope_to_proto
from node.envelope import PAYLOAD_TYPE, Envelope, Signature
from node.genesis import Genesis
from node.indexes import StoreTraceIndex
from node.records import VerifiedRecord, make_record
from node.service import LedgerService
from node.store import Store
from proto import services_pb2, types_pb2
from tests.fixtures import genesis as test_genesis
from tests.fixtures import key

RECORDS_PER_CHAIN = 20
FAN_OUT = 10
DEPTH = 8
HOT_EVENTS = 100
BLOCK_RECORDS = 1000
T0_MS = 1_780_000_000_000

TARGET_GRAPH_MS = 50.0
TARGET_HISTORY_MS = 10.0

ENTERPRISE_BY_LEVEL = {1: "farm", 2: "farm", 3: "slaughterhouse", 4: "slaughterhouse"}
ENTERPRISE_BY_LEVEL |= {5: "slaughterhouse", 6: "processor", 7: "processor", 8: "processor"}

HOT_CODE = "urn:epc:id:sgtin:6909999.099999.100"


def lot(c: int) -> str:
    return f"urn:epc:class:lgtin:6901234.000000.L{c}"


def out(c: int, level: int, j: int) -> str:
    """Output j of chain c's transformation at ``level`` (a GTIN per level and j, serial c)."""
    return f"urn:epc:id:sgtin:6901234.{level:02d}{j:04d}.{c}"


def case(c: int, which: int) -> str:
    return f"urn:epc:id:sscc:6903456.{which}{c:09d}"


def _time(step: int) -> dict[str, str]:
    day, hour = divmod(step, 24)
    return {
        "eventTime": f"2026-03-{day + 1:02d}T{hour:02d}:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
    }


def _obj(step: int, action: str, biz: str, codes: list[str], **kw: Any) -> dict[str, Any]:
    ev = {"type": "ObjectEvent", **_time(step), "action": action, "bizStep": biz, **kw}
    return {**ev, "epcList": codes} if codes else ev


def _transform(step: int, inputs: list[str], outputs: list[str], lots: bool) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": "TransformationEvent", **_time(step), "bizStep": "commissioning"}
    if lots:
        ev["inputQuantityList"] = [{"epcClass": c, "quantity": 50, "uom": "KGM"} for c in inputs]
    else:
        ev["inputEPCList"] = inputs
    ev["outputEPCList"] = outputs
    return ev


def _agg(step: int, action: str, biz: str, parent: str, children: list[str]) -> dict[str, Any]:
    return {"type": "AggregationEvent", **_time(step), "action": action, "bizStep": biz,
            "parentID": parent, "childEPCs": children}  # fmt: skip


Draft = tuple[str, dict[str, Any], str]  # (author, event, handoff_to)


def waves(n: int, sensor: int = 0, base: int = 0) -> Iterator[list[Draft]]:
    """The drafts of chains ``base .. base+n-1``, wave by wave (a wave's inputs are all in
    earlier waves); chain c's neighbour is the next one, wrapping round within the group.

    ``sensor``: cold-chain sensor reports per chain, by the distributor on the case it keeps
    (one code each), after the structure. The history code's events are not included."""
    nb = {base + i: base + (i + 1) % n for i in range(n)}
    chains = range(base, base + n)
    outs = lambda c, lv: [out(c, lv, j) for j in range(FAN_OUT)]  # noqa: E731
    step = 0
    yield [("farm", _obj(step, "ADD", "commissioning", [], quantityList=[
        {"epcClass": lot(c), "quantity": 1000, "uom": "KGM"}]), "") for c in chains]  # fmt: skip
    for level in range(1, DEPTH + 1):
        step += 1
        who = ENTERPRISE_BY_LEVEL[level]
        if level == 1:
            yield [(who, _transform(step, [lot(c), lot(nb[c])], outs(c, 1), True), "")
                   for c in chains]  # fmt: skip
        else:
            yield [(who, _transform(step, [out(c, level - 1, 0), out(nb[c], level - 1, 1)],
                                    outs(c, level), False), "") for c in chains]  # fmt: skip
        nxt = ENTERPRISE_BY_LEVEL.get(level + 1)
        if nxt and nxt != who:  # hand the two codes the next level consumes to its maker
            step += 1
            yield [(who, _obj(step, "OBSERVE", "shipping", [out(c, level, 0), out(c, level, 1)],
                              disposition="in_transit"), nxt) for c in chains]  # fmt: skip
        if level == 3:
            step += 1
            yield [("inspector", _obj(step, "OBSERVE", "inspecting", outs(c, 3)), "")
                   for c in chains]  # fmt: skip
        if level == 4:
            step += 1
            side = lambda c: [out(c, 4, j) for j in range(2, FAN_OUT)]  # noqa: E731
            yield [(who, _agg(step, "ADD", "packing", case(c, 1), side(c)), "") for c in chains]
            step += 1
            yield [(who, _obj(step, "OBSERVE", "shipping", [case(c, 1)]), "distributor")
                   for c in chains]  # fmt: skip
    step += 1
    yield [("processor", _agg(step, "ADD", "packing", case(c, 2), outs(c, 8)), "")
           for c in chains]  # fmt: skip
    step += 1
    yield [("processor", _obj(step, "OBSERVE", "shipping", [case(c, 2)]), "distributor")
           for c in chains]  # fmt: skip
    step += 1
    yield [("distributor", _obj(step, "OBSERVE", "receiving", [case(c, 2)]), "")
           for c in chains]  # fmt: skip
    step += 1
    yield [("distributor", _obj(step, "OBSERVE", "shipping", [case(c, 2)]), "retailer")
           for c in chains]  # fmt: skip
    step += 1
    yield [("retailer", _agg(step, "DELETE", "unpacking", case(c, 2), outs(c, 8)), "")
           for c in chains]  # fmt: skip
    step += 1
    yield [("retailer", _obj(step, "OBSERVE", "retail_selling",
                             [out(c, 8, j) for j in range(2, FAN_OUT)],
                             disposition="retail_sold"), "") for c in chains]  # fmt: skip
    for k in range(sensor):
        t = _time(step + 1 + k // 4)
        yield [("distributor", {**_obj(0, "OBSERVE", "sensor_reporting", [case(c, 1)]), **t,
                                "sensorElementList": [{"sensorReport": [
                                    {"type": "Temperature", "value": 2.0 + (c + k) % 40 / 10,
                                     "uom": "CEL"}]}]}, "") for c in chains]  # fmt: skip


def hot_wave() -> list[Draft]:
    """One code with HOT_EVENTS events: commissioning, then sensor reports."""
    return [("farm", _obj(0, "ADD", "commissioning", [HOT_CODE]), "")] + [
        ("inspector", _obj(1 + i // 24, "OBSERVE", "sensor_reporting", [HOT_CODE]), "")
        for i in range(HOT_EVENTS - 1)
    ]


def records_per_chain(sensor: int) -> int:
    return sum(len(w) for w in waves(1, sensor))


class Builder:
    """Signs each author once and reuses the signature; feeds ChainState block by block."""

    def __init__(self, store: Store, genesis: Genesis) -> None:
        self.genesis = genesis
        self.chain = ChainState(store, genesis)
        self.store = store
        self._sig: dict[str, bytes] = {}
        self._nonce = 0
        self.records = 0
        self.codes_touched = 0

    def sig(self, member: str) -> bytes:
        if member not in self._sig:
            self._sig[member] = key(member).sign(b"suyuan bench: one signature per author")
        return self._sig[member]

    def candidate(self, d: Draft) -> tuple[types_pb2.Envelope, VerifiedRecord]:
        author, event, to = d
        self._nonce += 1
        rec = make_record(self.genesis, author, event, category="meat", handoff_to=to,
                          nonce=f"{self._nonce:024x}")  # fmt: skip
        sigs = [Signature(author, self.sig(author))] + ([Signature(to, self.sig(to))] if to else [])
        env = Envelope(rec.to_payload(), PAYLOAD_TYPE, tuple(sigs))
        return envelope_to_proto(env), VerifiedRecord(env.record_id, rec, env)

    def commit(self, drafts: Sequence[Draft]) -> None:
        cands = [self.candidate(d) for d in drafts]
        h = self.store.head().height + 1
        block, dropped = self.chain.build_block(
            h, 0, self.chain.validators.proposer(h, 0), cands, T0_MS + h * 1000,
            known_fresh=lambda _rid: True,
        )  # fmt: skip
        if dropped:
            raise SystemExit(f"block {h}: {len(dropped)} refused, first: {dropped[0].reason}")
        prepared = self.chain.validate_block(block)  # the proposer's own block: cached
        self.chain.commit(prepared, types_pb2.CommitCertificate())
        self.records += len(drafts)


def build(
    path: Path, records: int, sensor: int, group: int, budget_s: float, say: Callable[[str], None]
) -> dict[str, Any]:
    """Build groups of ``group`` chains until ``records`` or ``budget_s`` seconds; then the
    history code. Returns the build figures (and how many chains were built)."""
    g = test_genesis("suyuan-bench-trace")
    store = Store.open(path, g.hash, extra_dbs=EXTRA_DBS, map_size=64 << 30)
    b = Builder(store, g)
    per_group = group * records_per_chain(sensor)
    t0 = time.perf_counter()
    last = t0
    chains = 0
    stopped = ""
    try:
        while b.records + per_group + HOT_EVENTS <= max(records, per_group + HOT_EVENTS):
            if time.perf_counter() - t0 > budget_s:
                stopped = f"time budget of {budget_s:g} s reached"
                break
            for wave in waves(group, sensor, base=chains):
                for i in range(0, len(wave), BLOCK_RECORDS):
                    b.commit(wave[i : i + BLOCK_RECORDS])
                    now = time.perf_counter()
                    if now - last > 30:
                        last = now
                        say(f"  {b.records:,} records, {b.records / (now - t0):,.0f}/s")
            chains += group
        b.commit(hot_wave())
        seconds = time.perf_counter() - t0
        head = store.head()
    finally:
        store.close()
    size = sum(f.stat().st_size for f in path.iterdir())
    return {"records": b.records, "chains": chains, "blocks": head.height,
            "log_size": head.log_size, "build_s": round(seconds, 1),
            "build_rate": round(b.records / seconds), "store_bytes": size,
            "stopped": stopped or "size reached", "records_per_chain": records_per_chain(sensor),
            "sensor_per_chain": sensor}  # fmt: skip


# ------------------------------------------------------------------------------ timing


def pct(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def timed(fn: Callable[[str], int], codes: Sequence[str]) -> dict[str, float]:
    """Wall-clock and this process's CPU time per call (the CPU figure is what the query
    costs when the machine is not shared; this VM is)."""
    ms: list[float] = []
    cpu: list[float] = []
    sizes: list[int] = []
    for c in codes:
        t, tc = time.perf_counter(), time.process_time()
        sizes.append(fn(c))
        ms.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - tc) * 1000)
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 3),
            "p95_ms": round(pct(ms, 0.95), 3), "max_ms": round(max(ms), 3),
            "cpu_p50_ms": round(statistics.median(cpu), 3),
            "nodes_median": statistics.median(sizes)}  # fmt: skip


def whole(fn: Callable[..., trace.TracePage], index: StoreTraceIndex, code: str) -> int:
    n, token = 0, ""
    while True:
        page = fn(index, code, limit=trace.MAX_LIMIT, token=token)
        n += len(page.nodes)
        token = page.next_token
        if not token:
            return n


def measure(path: Path, chains: int, samples: int, seed: int) -> dict[str, Any]:
    g = test_genesis("suyuan-bench-trace")
    store = Store.open(path, g.hash, create=False, extra_dbs=EXTRA_DBS, map_size=64 << 30)
    try:
        index = StoreTraceIndex(store)
        svc = LedgerService(SimpleNamespace(store=store))  # type: ignore[arg-type]
        loop = asyncio.new_event_loop()
        rng = random.Random(seed)

        def pick(make: Callable[[int], str], k: int) -> list[str]:
            return [make(rng.randrange(chains)) for _ in range(k)]

        items = lambda c: out(c, 8, rng.randrange(FAN_OUT))  # noqa: E731
        warm = pick(items, samples) + pick(lot, samples)
        for c in warm:  # page cache and interpreter warm-up, on other codes
            trace.trace_back(index, c)
            trace.trace_forward(index, c)
        back_codes, fwd_codes = pick(items, samples), pick(lot, samples)
        mid_codes = [out(rng.randrange(chains), rng.randrange(1, DEPTH + 1), rng.randrange(10))
                     for _ in range(samples)]  # fmt: skip

        def rpc(method: Any, code: str, **kw: Any) -> Any:
            return loop.run_until_complete(method(services_pb2.TraceRequest(code=code, **kw), None))

        res: dict[str, Any] = {
            "back_page": timed(lambda c: len(trace.trace_back(index, c).nodes), back_codes),
            "back_all": timed(lambda c: whole(trace.trace_back, index, c), back_codes),
            "forward_page": timed(lambda c: len(trace.trace_forward(index, c).nodes), fwd_codes),
            "forward_all": timed(lambda c: whole(trace.trace_forward, index, c), fwd_codes),
            "forward_any_level_all": timed(
                lambda c: whole(trace.trace_forward, index, c), mid_codes
            ),
            "history_100": timed(
                lambda c: len(trace.history(index, c, limit=100).log_indexes), [HOT_CODE] * samples
            ),
            "svc_back_page": timed(lambda c: len(rpc(svc.TraceBack, c).nodes), back_codes),
            "svc_forward_page": timed(lambda c: len(rpc(svc.TraceForward, c).nodes), fwd_codes),
            "svc_history_100": timed(
                lambda c: len(rpc(svc.TraceHistory, c, limit=100).records), [HOT_CODE] * samples
            ),
        }
        loop.close()
        return res
    finally:
        store.close()


def measure_grpc(base: Path, chains: int, samples: int, seed: int) -> dict[str, Any]:
    """The same queries through a live node's gRPC on 127.0.0.1 (one node process serving the
    built store; with no quorum it commits nothing, and reads are all it is asked for)."""
    from node.client import LedgerClient
    from node.keys import write_key_file
    from tests.testnet.harness import free_base_port, wait_for

    g = test_genesis("suyuan-bench-trace")
    (base / "genesis.json").write_text(g.to_json())
    kf = base / "keys" / "v0.key"
    if not kf.exists():
        kf.parent.mkdir(parents=True, exist_ok=True)
        write_key_file(kf, key("v0"), None)
    addr = f"127.0.0.1:{free_base_port(1)}"
    (base / "node.toml").write_text(
        f'member = "v0"\nkey_file = "keys/v0.key"\ngenesis = "genesis.json"\n'
        f'data_dir = "."\nlisten = "{addr}"\npeers = []\n'
    )
    suyuan = str(Path(sys.executable).with_name("suyuan"))
    with (base / "node.log").open("w") as log:
        proc = subprocess.Popen(
            [suyuan, "node", "start", "--config", str(base / "node.toml")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        with LedgerClient(addr, timeout=30) as client:
            wait_for(lambda: client.status(timeout=2).log_size > 0, 120, 0.5, f"node at {addr}")
            rng = random.Random(seed + 1)
            back = [out(rng.randrange(chains), 8, rng.randrange(FAN_OUT)) for _ in range(samples)]
            fwd = [lot(rng.randrange(chains)) for _ in range(samples)]
            for c in back[:20] + fwd[:20]:  # warm-up: channel, node caches
                client.trace_back(c)
                client.trace_forward(c)
            return {
                "grpc_back_page": timed(lambda c: len(client.trace_back(c).nodes), back),
                "grpc_forward_page": timed(lambda c: len(client.trace_forward(c).nodes), fwd),
                "grpc_history_100": timed(
                    lambda c: len(client.trace_history(c, limit=100).records),
                    [HOT_CODE] * samples,
                ),
            }
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_trace", description=__doc__)
    ap.add_argument("--records", type=int, default=1_000_000, help="ledger size (at most)")
    ap.add_argument("--budget", type=float, default=900, help="build time limit, seconds")
    ap.add_argument("--sensor", type=int, default=30, help="sensor reports per chain")
    ap.add_argument("--group", type=int, default=1000, help="chains per group")
    ap.add_argument("--dir", type=Path, default=None, help="store folder (default: a temp dir)")
    ap.add_argument("--reuse", action="store_true", help="measure the store in --dir; no build")
    ap.add_argument("--samples", type=int, default=300, help="codes timed per query kind")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--keep", action="store_true", help="keep the store (with --dir)")
    ap.add_argument("--grpc", action="store_true", help="also time a live node's gRPC")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args(argv)
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else print
    base = args.dir or Path(tempfile.mkdtemp(prefix="suyuan-bench-trace-"))
    path = base / "store"
    report: dict[str, Any] = {"command": "python -m bench.bench_trace " + " ".join(sys.argv[1:])}
    try:
        if args.reuse:
            report["build"] = bd = json.loads((base / "build.json").read_text())
        else:
            if path.exists():
                shutil.rmtree(path)
            say(
                f"building up to {args.records:,} records ({records_per_chain(args.sensor)} per "
                f"chain, {args.group} chains per group, budget {args.budget:g} s) into {path}"
            )
            report["build"] = bd = build(
                path, args.records, args.sensor, args.group, args.budget, say
            )
            if args.keep:
                (base / "build.json").write_text(json.dumps(bd))
        say(f"built {bd['records']:,} records ({bd['chains']:,} chains) in {bd['blocks']:,} "
            f"blocks in {bd['build_s']} s ({bd['build_rate']:,} records/s; {bd['stopped']}), "
            f"store {bd['store_bytes'] / 2**30:.2f} GiB")  # fmt: skip
        report["queries"] = q = measure(path, bd["chains"], args.samples, args.seed)
        if args.grpc:
            q |= measure_grpc(base, bd["chains"], args.samples, args.seed)
    finally:
        if not (args.keep or args.reuse):
            shutil.rmtree(base if args.dir is None else path, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'query':<24}{'n':>5}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'cpu p50':>9}"
          f"{'nodes':>7}")  # fmt: skip
    for name, r in q.items():
        print(f"{name:<24}{r['n']:>5}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['max_ms']:>9.2f}"
              f"{r['cpu_p50_ms']:>9.2f}{r['nodes_median']:>7g}")  # fmt: skip
    ok_graph = max(q["back_page"]["p50_ms"], q["forward_page"]["p50_ms"]) < TARGET_GRAPH_MS
    ok_hist = q["history_100"]["p50_ms"] < TARGET_HISTORY_MS
    print(f"target trace back/forward p50 < {TARGET_GRAPH_MS:g} ms: "
          f"{'met' if ok_graph else 'MISSED'}; history of {HOT_EVENTS} events < "
          f"{TARGET_HISTORY_MS:g} ms: {'met' if ok_hist else 'MISSED'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
