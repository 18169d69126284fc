"""The load process of ``suyuan bench``: pre-sign records, stream them to a testnet, time them.

Run as ``python -m testnet.loadgen --dir DIR --records N --out results.json [...]``; the
orchestrator (``testnet.bench``) starts it as a separate process so that the client's
work (signing above all) is not what the nodes' figures measure.

1. Pre-sign (``--sign-procs`` processes): record ``i`` is an EPCIS ObjectEvent ADD
   ``commissioning`` of a fresh unique SGTIN, authored round-robin by the testnet's
   enterprise members (their keys in ``DIR/keys``), padded with an attribute so that the
   signed record (the envelope's payload) is ``--record-bytes`` long (the smallest such
   record is about 370 bytes; the protobuf envelope adds the signature and payload type,
   about 120 bytes). Records are grouped into ``--batch``-sized ``SubmitBatch`` messages.
2. Send: one ``Ledger.SubmitStream`` per target node (``--targets``, default all); batch
   ``k`` goes to target ``k mod T``, with ``wait=true``. A token bucket enforces
   ``--rate`` records/s (0 = open loop) and at most ``--window`` batches are in flight
   (sent and neither refused outright nor commit-acknowledged).
3. Write ``--out``: per batch the send time, the admission answer's time and result codes,
   the commit answer's time and counts (times are ``time.monotonic()``, which on Linux is
   one clock for every process), and the ids of accepted records that never got a commit
   answer.

Progress goes to stdout as JSON lines (``{"event": "signed"|"progress"|"done", ...}``).
Everything has a deadline: sending stops after ``--seconds`` (if given) and waiting for the
last commit answers after ``--drain`` seconds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from node.convert import envelope_to_proto
from node.genesis import Genesis
from node.keys import KeyPair, load_key_file
from node.records import make_record, sign_record
from proto import services_pb2, services_pb2_grpc
from testnet.manifest import Manifest

#: Enterprise members of a testnet (``testnet.manifest.DEMO_MEMBERS``) that may commission.
AUTHORS = ("farm", "slaughterhouse", "processor", "distributor", "retailer")
_OK = 0
_PROGRESS_S = 0.5


# ---------------------------------------------------------------------- token bucket


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up.

    ``rate <= 0`` means unlimited. Time is passed in explicitly so the arithmetic can be
    tested without sleeping; ``take`` is the sleeping convenience.
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.tokens = self.burst if rate > 0 else 0.0
        self.last = now

    def delay(self, n: float, now: float) -> float:
        """Seconds to wait from ``now`` until ``n`` tokens are available (0: take now).

        Tokens are deducted at once (they may go negative), so callers that wait the
        returned delay send at exactly ``rate`` on average.
        """
        if self.rate <= 0:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def take(self, n: float) -> None:
        """Block until ``n`` tokens have been taken."""
        d = self.delay(n, time.monotonic())
        if d > 0:
            time.sleep(d)


# ---------------------------------------------------------------------- pre-signing


def code_for(tag: str, index: int) -> str:
    """The unique SGTIN commissioned by record ``index`` of the load tagged ``tag``."""
    return f"urn:epc:id:sgtin:6901234.012345.{tag}{index:010d}"  # a valid SGTIN: tag <= 10


def commissioning_event(code: str) -> dict[str, Any]:
    """The bench's EPCIS event: an ObjectEvent ADD commissioning ``code``."""
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T08:00:00+08:00",
        "action": "ADD",
        "bizStep": "commissioning",
        "epcList": [code],
    }


def sign_one(genesis: Genesis, key: KeyPair, tag: str, index: int, pad: int) -> bytes:
    """Record ``index`` as a serialized protobuf envelope (payload padded by ``pad``)."""
    rec = make_record(
        genesis,
        key.name,
        commissioning_event(code_for(tag, index)),
        category="meat",
        attributes={"pad": "x" * (pad - _PAD_OVERHEAD)} if pad >= _PAD_OVERHEAD else None,
        nonce=f"{tag}{index:012x}",
    )
    return bytes(envelope_to_proto(sign_record(rec, key)).SerializeToString())


#: Bytes that ``"attributes":{"pad":""}`` adds to the payload.
_PAD_OVERHEAD = len(',"attributes":{"pad":""}')


def sizes(genesis: Genesis, key: KeyPair, tag: str, pad: int) -> tuple[int, int]:
    """(payload bytes, protobuf envelope bytes) of a record with ``pad``."""
    env = services_pb2.SubmitBatch().envelopes.add()
    env.ParseFromString(sign_one(genesis, key, tag, 0, pad))
    return len(env.payload), env.ByteSize()


def pad_for(genesis: Genesis, key: KeyPair, tag: str, record_bytes: int) -> int:
    """The pad that makes a record's signed payload ``record_bytes`` long (0: cannot shrink)."""
    base, _ = sizes(genesis, key, tag, 0)
    if record_bytes < base + _PAD_OVERHEAD:
        return 0
    return record_bytes - base


@dataclass(frozen=True)
class SignJob:
    """Sign records ``start .. start+count-1`` into ``SubmitBatch`` bytes of ``batch``."""

    directory: str
    tag: str
    start: int
    count: int
    batch: int
    pad: int


def _sign_chunk(job: SignJob) -> list[bytes]:
    man = Manifest.load(Path(job.directory))
    genesis = Genesis.load(man.genesis)
    keys = [load_key_file(man.key_file(a)) for a in AUTHORS]
    out: list[bytes] = []
    i = job.start
    end = job.start + job.count
    while i < end:
        msg = services_pb2.SubmitBatch()
        for j in range(i, min(end, i + job.batch)):
            raw = sign_one(genesis, keys[j % len(keys)], job.tag, j, job.pad)
            msg.envelopes.add().ParseFromString(raw)
        out.append(msg.SerializeToString())
        i += job.batch
    return out


def presign(
    directory: Path, tag: str, records: int, batch: int, record_bytes: int, procs: int
) -> tuple[list[services_pb2.SubmitBatch], tuple[int, int]]:
    """Sign ``records`` records in ``procs`` processes.

    Returns the batches and (payload bytes, envelope bytes) of one record.
    """
    man = Manifest.load(directory)
    genesis = Genesis.load(man.genesis)
    key = load_key_file(man.key_file(AUTHORS[0]))
    pad = pad_for(genesis, key, tag, record_bytes)
    size = sizes(genesis, key, tag, pad)
    per_job = max(batch, (20_000 // batch) * batch)
    jobs = [
        SignJob(str(directory), tag, s, min(per_job, records - s), batch, pad)
        for s in range(0, records, per_job)
    ]
    blobs: list[bytes] = []
    done = 0
    if procs <= 1 or len(jobs) == 1:
        for job in jobs:
            blobs += _sign_chunk(job)
            done += job.count
            _emit({"event": "signed", "done": done, "total": records})
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(procs) as pool:
            for job, part in zip(jobs, pool.imap(_sign_chunk, jobs), strict=True):
                blobs += part
                done += job.count
                _emit({"event": "signed", "done": done, "total": records})
    batches = [services_pb2.SubmitBatch.FromString(b) for b in blobs]
    return batches, size


# ---------------------------------------------------------------------- sending


@dataclass
class BatchLog:
    """What happened to one batch (times are ``time.monotonic()``)."""

    batch_id: int
    node: int
    n: int
    t_send: float
    t_admit: float | None = None
    codes: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    t_commit: float | None = None
    committed: int = 0
    dropped: int = 0
    accepted_ids: list[bytes] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "node": self.node,
            "n": self.n,
            "t_send": self.t_send,
            "t_admit": self.t_admit,
            "codes": self.codes,
            "accepted": self.accepted,
            "t_commit": self.t_commit,
            "committed": self.committed,
            "dropped": self.dropped,
        }


class _Stream:
    """One SubmitStream to one node: a request queue and a thread reading the answers."""

    def __init__(
        self, index: int, address: str, logs: dict[int, BatchLog], window: threading.Semaphore
    ) -> None:
        self.index = index
        self.address = address
        self.q: queue.Queue[services_pb2.SubmitBatch | None] = queue.Queue()
        self.logs = logs
        self.window = window
        self.lock = threading.Lock()
        self.error: str | None = None
        self.channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ],
        )
        stub: Any = services_pb2_grpc.LedgerStub(self.channel)  # type: ignore[no-untyped-call, unused-ignore]
        self.call = stub.SubmitStream(self._requests())
        self.thread = threading.Thread(target=self._read, name=f"answers-{index}", daemon=True)
        self.thread.start()

    def _requests(self) -> Iterator[services_pb2.SubmitBatch]:
        while (b := self.q.get()) is not None:
            yield b

    def _read(self) -> None:
        try:
            for ans in self.call:
                now = time.monotonic()
                log = self.logs.get(int(ans.batch_id))
                if log is None:
                    continue
                if not ans.committed:
                    codes = Counter(str(r.code) for r in ans.results)
                    log.t_admit = now
                    log.codes = dict(codes)
                    log.accepted = codes.get(str(_OK), 0)
                    log.accepted_ids = [bytes(r.record_id) for r in ans.results if r.code == _OK]
                    if log.accepted == 0:
                        self.window.release()
                else:
                    log.t_commit = now
                    log.committed = sum(1 for r in ans.results if r.code == _OK)
                    log.dropped = len(ans.results) - log.committed
                    self.window.release()
        except grpc.RpcError as e:
            self.error = f"{e.code()}: {e.details()}"

    def close(self) -> None:
        self.q.put(None)

    def cancel(self) -> None:
        self.call.cancel()
        self.channel.close()


def send(
    addresses: list[tuple[int, str]],
    batches: list[services_pb2.SubmitBatch],
    *,
    rate: float,
    window: int,
    seconds: float | None,
    drain: float,
) -> tuple[list[BatchLog], float, float, list[str]]:
    """Stream ``batches`` to the nodes; returns (logs, start, end of sending, errors)."""
    logs: dict[int, BatchLog] = {}
    sem = threading.Semaphore(window)
    streams = [_Stream(i, a, logs, sem) for i, a in addresses]
    batch_n = len(batches[0].envelopes) if batches else 1
    start = time.monotonic()
    bucket = TokenBucket(rate, burst=max(batch_n, rate * 0.05), now=start)
    deadline = start + seconds if seconds else None
    last_progress = start
    ordered: list[BatchLog] = []
    try:
        for k, b in enumerate(batches):
            if deadline is not None and time.monotonic() >= deadline:
                break
            bucket.take(len(b.envelopes))
            while not sem.acquire(timeout=0.2):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if all(s.error for s in streams):
                    break
            else:
                s = streams[k % len(streams)]
                b.batch_id = k + 1
                b.wait = True
                log = BatchLog(k + 1, s.index, len(b.envelopes), time.monotonic())
                logs[k + 1] = log
                ordered.append(log)
                s.q.put(b)
                now = time.monotonic()
                if now - last_progress >= _PROGRESS_S:
                    last_progress = now
                    _progress(ordered)
                continue
            break
        end_send = time.monotonic()
        for s in streams:
            s.close()
        stop = time.monotonic() + drain
        for s in streams:
            while s.thread.is_alive() and time.monotonic() < stop:
                s.thread.join(timeout=_PROGRESS_S)
                _progress(ordered)
    finally:
        for s in streams:
            s.cancel()
        for s in streams:
            s.thread.join(timeout=2.0)
    errors = [f"node {s.index}: {s.error}" for s in streams if s.error]
    return ordered, start, end_send, errors


def _progress(logs: list[BatchLog]) -> None:
    sent = sum(b.n for b in logs)
    committed = sum(b.committed for b in logs)
    refused = sum(b.n - b.accepted for b in logs if b.t_admit is not None)
    _emit({"event": "progress", "sent": sent, "committed": committed, "refused": refused})


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m testnet.loadgen", description=__doc__.split("\n")[0]
    )
    p.add_argument("--dir", type=Path, required=True, help="the testnet directory")
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--out", type=Path, required=True, help="results JSON file")
    p.add_argument("--rate", type=float, default=0.0, help="records/s offered; 0 = open loop")
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--window", type=int, default=40, help="batches in flight at most")
    p.add_argument("--record-bytes", type=int, default=400)
    p.add_argument("--seconds", type=float, default=None, help="stop sending after this")
    p.add_argument("--drain", type=float, default=60.0, help="wait this long for commits")
    p.add_argument("--targets", default="", help="node indexes, comma-separated (default all)")
    p.add_argument("--tag", default="", help="unique code prefix (default: random)")
    p.add_argument("--sign-procs", type=int, default=os.cpu_count() or 1)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Pre-sign, send, write the results file; exit 0 (errors are in the results)."""
    a = parse_args(argv)
    man = Manifest.load(a.dir)
    tag = a.tag or os.urandom(4).hex()
    targets = [int(t) for t in a.targets.split(",") if t.strip()] or [n.index for n in man.nodes]
    t0 = time.monotonic()
    batches, size = presign(a.dir, tag, a.records, a.batch, a.record_bytes, a.sign_procs)
    sign_s = time.monotonic() - t0
    _emit({"event": "ready", "records": a.records, "sign_seconds": sign_s})
    logs, start, end_send, errors = send(
        [(i, man.node(i).address) for i in targets],
        batches,
        rate=a.rate,
        window=a.window,
        seconds=a.seconds,
        drain=a.drain,
    )
    unacked = [
        rid.hex() for b in logs if b.accepted and b.t_commit is None for rid in b.accepted_ids
    ]
    doc = {
        "tag": tag,
        "records_signed": a.records,
        "record_bytes": size[0],
        "envelope_bytes": size[1],
        "batch": a.batch,
        "rate": a.rate,
        "window": a.window,
        "targets": targets,
        "sign_seconds": sign_s,
        "start": start,
        "end_send": end_send,
        "end": time.monotonic(),
        "errors": errors,
        "unacked_ids": unacked,
        "batches": [b.to_dict() for b in logs],
    }
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(a.out)
    _progress(logs)
    _emit({"event": "done", "out": str(a.out)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
