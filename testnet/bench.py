"""``suyuan bench``: throughput, latency and resource use of a fresh local testnet (issue #8).

One run:
  1. a fresh N-node testnet on 127.0.0.1 in a temporary folder (or ``--dir``; ``--reuse``
     restarts the testnet already there, e.g. one pre-filled earlier), node configs
     optionally overridden (mempool size, proposal wait);
  2. this machine's limit, measured now: Ed25519 verifications per second on one core
     (``testnet.machine``), before the load and again after it;
  3. optional ``--prefill N``: the log is first filled to N records (not measured);
  4. the load: ``python -m testnet.loadgen`` in its own process pre-signs the records, then
     streams them (see its docstring); meanwhile a sampler polls ``Ledger.Status`` on every
     node every 0.5 s (its latency is reported) and reads each node's CPU time and RSS from
     ``/proc``;
  5. optional ``--catchup K``: the last node is killed, K records are committed by the
     others, the node is restarted and its catch-up rate (records/s until its log size
     reaches the others') is measured;
  6. every process this run started is stopped by PID in a ``finally``, also on Ctrl-C.

The report (``BenchReport.to_dict``; ``--json`` prints it) holds the committed rate over
the steady window (``testnet.bench_stats``), commit latency percentiles (send of a batch to
its commit answer from the node that received it), RESOURCE_EXHAUSTED and other refusals,
records accepted but not committed, per-node CPU seconds and peak RSS, the block size
distribution and the same-run ceiling ``cores x verify rate / validators``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from node.client import LedgerClient
from node.config import ConsensusConfig, MempoolConfig, NodeConfig
from node.errors import InputError, LedgerError, NotFoundError
from proto import types_pb2
from testnet import bench_stats as st
from testnet import manifest as mf
from testnet import net, procs
from testnet.machine import ceiling, machine_description, measure_verify_per_core

SAMPLE_S = 0.5
#: A steady window shorter than this holds a few blocks at most (commits come every
#: 0.3-0.5 s under load): its rate is then the whole run's, with a warning.
MIN_STEADY_S = 3.0
STATUS_TIMEOUT_S = 5.0
# how often the catch-up phase asks the restarted node's log size: the catch-up time is
# over-counted by up to this much (a Status answer costs the node well under 1 ms)
CATCHUP_POLL_S = 0.05
#: Longest the catch-up phase waits for the node it kills to apply the last block of the load.
DRAIN_WAIT_S = 30.0
RESOURCE_EXHAUSTED = 8
_CODE_NAMES = {
    0: "OK",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}

#: A progress callback: (phase, done, total, text).
Progress = Callable[[str, float, float, str], None]


@dataclass(frozen=True)
class BenchOptions:
    """Everything one ``suyuan bench`` run is told (see ``cli/bench_cmd.py`` for the flags)."""

    nodes: int = 4
    records: int = 20_000
    rate: float = 0.0
    batch: int = 200
    window: int = 40
    record_bytes: int = 400
    seconds: float | None = None
    directory: Path | None = None
    reuse: bool = False
    base_port: int | None = None
    keep: bool = False
    prefill: int = 0
    catchup: int = 0
    mempool_records: int | None = None
    proposal_wait_ms: int | None = None
    verify_seconds: float = 1.0
    verify_repeats: int = 3
    drain_s: float = 120.0
    sign_procs: int = 0


@dataclass
class _Sample:
    t: float
    cpu_s: float | None
    rss_kib: int | None
    hwm_kib: int | None
    status_s: float | None
    log_size: int | None
    mempool: int | None


@dataclass
class BenchReport:
    """The result of one run; ``to_dict`` is the ``--json`` document."""

    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.data


# ---------------------------------------------------------------------- /proc


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (/proc/PID/stat), or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def child_pids(pid: int) -> list[int]:
    """The PIDs of ``pid``'s child processes (/proc/PID/task/*/children); [] if unreadable."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except (OSError, ValueError):
        return out
    return out


def proc_memory_kib(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS, VmHWM) of ``pid`` in KiB from /proc/PID/status; None when unreadable."""
    rss = hwm = None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, hwm


# ---------------------------------------------------------------------- sampler


class Sampler:
    """Polls Status, CPU time and memory of every node every ``SAMPLE_S`` (a thread per node)."""

    def __init__(self, man: mf.Manifest) -> None:
        self.man = man
        self.samples: dict[int, list[_Sample]] = {n.index: [] for n in man.nodes}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._run, args=(n.index,), daemon=True, name=f"sampler-{n.index}"
            )
            for n in man.nodes
        ]

    def set_manifest(self, man: mf.Manifest) -> None:
        """Follow a node restarted with a new PID."""
        self.man = man

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=STATUS_TIMEOUT_S + 1)

    def _run(self, index: int) -> None:
        client: LedgerClient | None = None
        try:
            while not self._stop.is_set():
                n = self.man.nodes[index]
                t = time.monotonic()
                if client is None or client.address != n.address:
                    client = LedgerClient(n.address, timeout=STATUS_TIMEOUT_S, plain=True)
                alive = n.pid is not None and procs.is_ours(n.pid, n.config)
                cpu = proc_cpu_seconds(n.pid) if alive and n.pid else None
                rss, hwm = proc_memory_kib(n.pid) if alive and n.pid else (None, None)
                status_s = log_size = mempool = None
                if alive:
                    t0 = time.monotonic()
                    try:
                        s = client.status()
                        log_size, mempool = int(s.log_size), int(s.mempool_size)
                        status_s = time.monotonic() - t0
                    except LedgerError:
                        status_s = time.monotonic() - t0
                self.samples[index].append(_Sample(t, cpu, rss, hwm, status_s, log_size, mempool))
                self._stop.wait(max(0.0, SAMPLE_S - (time.monotonic() - t)))
        finally:
            if client is not None:
                client.close()


# ---------------------------------------------------------------------- helpers


def free_base_port(nodes: int, start: int = 26900) -> int:
    """The first base port from ``start`` (step 20) whose ``nodes`` ports are all free."""
    for base in range(start, 65000 - nodes, 20):
        if not net.busy_addresses([f"127.0.0.1:{base + i}" for i in range(nodes)]):
            return base
    raise InputError("no free ports for the testnet on 127.0.0.1")


def _override_configs(man: mf.Manifest, opts: BenchOptions) -> None:
    for n in man.nodes:
        cfg = NodeConfig.load(n.config)
        if opts.mempool_records is not None:
            cfg = replace(cfg, mempool=MempoolConfig(opts.mempool_records, cfg.mempool.max_bytes))
        if opts.proposal_wait_ms is not None:
            cfg = replace(cfg, consensus=ConsensusConfig(opts.proposal_wait_ms))
        mf.write_atomic(n.config, mf.config_text(man, n.index, cfg))


def _status(address: str, timeout: float = STATUS_TIMEOUT_S) -> Any:
    with LedgerClient(address, timeout=timeout, plain=True) as c:
        return c.status()


def source_info() -> dict[str, Any]:
    """The git commit of the code under test and its modified files (None outside a checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "node", "consensus"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "modified": None}
    return {"commit": head, "modified": [ln[3:] for ln in dirty if ln.strip()]}  # fmt: skip


def _verify(opts: BenchOptions) -> dict[str, Any]:
    return measure_verify_per_core(seconds=opts.verify_seconds, repeats=opts.verify_repeats)


class _Loadgen:
    """One ``python -m testnet.loadgen`` process; its progress lines go to a callback."""

    def __init__(self, args: list[str], on_line: Callable[[dict[str, Any]], None]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "testnet.loadgen", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )
        self.on_line = on_line
        self.stderr = ""
        self._out = threading.Thread(target=self._read, daemon=True)
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out.start()
        self._err.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.on_line(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()[-4000:]

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._out.join(timeout=2)
        self._err.join(timeout=2)
        return rc

    def stop(self) -> None:
        """SIGTERM then SIGKILL this process (by its PID) if it still runs."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def run_loadgen(
    directory: Path,
    out: Path,
    records: int,
    opts: BenchOptions,
    progress: Progress,
    phase: str,
    *,
    rate: float | None = None,
    seconds: float | None = None,
    targets: list[int] | None = None,
    holder: list[_Loadgen] | None = None,
) -> dict[str, Any]:
    """Run the load process to completion and return its results document.

    Raises LedgerError when it fails or exceeds its time budget.
    """
    args = [
        "--dir", str(directory),
        "--records", str(records),
        "--out", str(out),
        "--rate", str(opts.rate if rate is None else rate),
        "--batch", str(opts.batch),
        "--window", str(opts.window),
        "--record-bytes", str(opts.record_bytes),
        "--drain", str(opts.drain_s),
    ]  # fmt: skip
    if seconds:
        args += ["--seconds", str(seconds)]
    if targets:
        args += ["--targets", ",".join(map(str, targets))]
    if opts.sign_procs:
        args += ["--sign-procs", str(opts.sign_procs)]

    def on_line(doc: dict[str, Any]) -> None:
        ev = doc.get("event")
        if ev == "signed":
            progress(f"{phase}: signing", doc["done"], doc["total"], "")
        elif ev == "progress":
            text = f"sent {doc['sent']:,} refused {doc['refused']:,}"
            progress(f"{phase}: committing", doc["committed"], records, text)

    lg = _Loadgen(args, on_line)
    if holder is not None:
        holder.append(lg)
    try:
        # Signing ~ 10k/s/process is a generous floor; sending is bounded by seconds/drain.
        budget = 120 + records / 2000 + (seconds or records / 50) + opts.drain_s
        try:
            rc = lg.wait(timeout=budget)
        except subprocess.TimeoutExpired as e:
            raise LedgerError(f"load process exceeded its {budget:.0f}s budget") from e
        if rc != 0 or not out.exists():
            raise LedgerError(f"load process failed (exit {rc}): {lg.stderr.strip()[-2000:]}")
        doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return doc
    finally:
        lg.stop()


# ---------------------------------------------------------------------- analysis


def analyse_load(doc: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    """Rates, latency and admission counts from a loadgen results document."""
    batches = doc["batches"]
    commits = [(b["t_commit"], b["committed"]) for b in batches if b["t_commit"] is not None]
    if seconds:
        lo, hi = st.middle(doc["start"], doc["end_send"])
        w = st.time_window(commits, lo, hi)
    else:
        w = st.steady_window(commits)
    lat = [
        ((b["t_commit"] - b["t_send"]) * 1000.0, b["committed"])
        for b in batches
        if b["t_commit"] is not None and b["committed"]
    ]
    admit = [((b["t_admit"] - b["t_send"]) * 1000.0, b["n"]) for b in batches if b["t_admit"]]
    codes: Counter[str] = Counter()
    for b in batches:
        for c, n in b["codes"].items():
            codes[_CODE_NAMES.get(int(c), f"code {c}")] += n
    sent = sum(b["n"] for b in batches)
    accepted = sum(b["accepted"] for b in batches)
    committed = sum(b["committed"] for b in batches)
    dropped = sum(b["dropped"] for b in batches)
    unanswered = sum(b["n"] for b in batches if b["t_admit"] is None)
    last_commit = max((t for t, _ in commits), default=doc["start"])
    overall = committed / (last_commit - doc["start"]) if last_commit > doc["start"] else 0.0
    steady = w.seconds >= MIN_STEADY_S
    warning = (
        ""
        if steady
        else f"run too short for a steady window ({w.seconds:.2f} s, {w.records} records): "
        "committed_rps is the whole run's rate; give more --records or a longer --seconds"
    )
    return {
        "committed_rps": w.rate if steady else overall,
        "steady": steady,
        "warning": warning,
        "window": {"start": w.start, "end": w.end, "seconds": w.seconds, "records": w.records},
        "latency_ms": {
            f"p{q}": (st.weighted_percentile(lat, q) if lat else None) for q in (50, 95, 99)
        },
        "admission_ms": {
            f"p{q}": (st.weighted_percentile(admit, q) if admit else None) for q in (50, 99)
        },
        "sent": sent,
        "accepted": accepted,
        "committed": committed,
        "dropped_after_accept": dropped,
        "no_admission_answer": unanswered,
        "admission_codes": dict(codes),
        "resource_exhausted": codes.get("RESOURCE_EXHAUSTED", 0),
        "offered_rate": doc["rate"],
        "achieved_send_rps": sent / (doc["end_send"] - doc["start"])
        if doc["end_send"] > doc["start"]
        else None,
        "overall_rps": overall,
        "sign_seconds": doc["sign_seconds"],
        "record_bytes": doc["record_bytes"],
        "envelope_bytes": doc["envelope_bytes"],
        "errors": doc["errors"],
        "unacked_ids": doc["unacked_ids"],
    }


def check_unacked(address: str, ids: list[str], deadline_s: float = 60.0) -> dict[str, int]:
    """Look up accepted records that got no commit answer: committed, missing or unchecked."""
    found = missing = 0
    stop = time.monotonic() + deadline_s
    with LedgerClient(address, timeout=5.0, plain=True) as c:
        for i, rid in enumerate(ids):
            if time.monotonic() > stop:
                return {"committed": found, "missing": missing, "unchecked": len(ids) - i}
            try:
                resp = c.get_record(bytes.fromhex(rid))
                if resp.info.height:
                    found += 1
                else:
                    missing += 1
            except NotFoundError:
                missing += 1
    return {"committed": found, "missing": missing, "unchecked": 0}


def node_usage(
    samples: dict[int, list[_Sample]], man: mf.Manifest, start: float, end: float
) -> list[dict[str, Any]]:
    """CPU seconds over [start, end], over the whole run, and peak RSS, per node."""
    out = []
    for n in man.nodes:
        ss = samples.get(n.index, [])
        cpu = [(s.t, s.cpu_s) for s in ss if s.cpu_s is not None]
        window_cpu = st.interpolate(cpu, end) - st.interpolate(cpu, start) if cpu else None
        hwm = max((s.hwm_kib for s in ss if s.hwm_kib is not None), default=None)
        rss = [s.rss_kib for s in ss if s.rss_kib is not None]
        lat = [s.status_s for s in ss if s.status_s is not None]
        out.append(
            {
                "index": n.index,
                "member": n.member,
                "cpu_s_window": window_cpu,
                "cpu_util_window": window_cpu / (end - start)
                if window_cpu and end > start
                else None,
                "cpu_s_run": cpu[-1][1] - cpu[0][1] if len(cpu) > 1 else None,
                "peak_rss_mib": hwm / 1024 if hwm is not None else None,
                "rss_start_mib": rss[0] / 1024 if rss else None,
                "rss_end_mib": rss[-1] / 1024 if rss else None,
                "status_max_ms": max(lat) * 1000 if lat else None,
                "status_over_1s": sum(1 for x in lat if x > 1.0),
                "status_polls": len(lat),
                "status_failed": sum(
                    1 for s in ss if s.status_s is not None and s.log_size is None
                ),
            }
        )
    return out


def block_sizes(address: str, from_height: int, to_height: int) -> dict[str, Any]:
    """Distribution of ``num_records`` over blocks ``from_height..to_height`` (node 0)."""
    sizes: list[int] = []
    if to_height >= from_height >= 1:
        with LedgerClient(address, timeout=120.0, plain=True) as c:
            for cb in c.stream_blocks(from_height, to_height):
                sizes.append(types_pb2.BlockHeader.FromString(cb.block.header).num_records)
    nonempty = [s for s in sizes if s > 0]
    return {
        "heights": [from_height, to_height],
        "blocks": len(sizes),
        "empty_blocks": len(sizes) - len(nonempty),
        "non_empty": st.distribution(nonempty),
    }


# ---------------------------------------------------------------------- the run


def _noop(phase: str, done: float, total: float, text: str) -> None:
    pass


def run(opts: BenchOptions, progress: Progress = _noop) -> BenchReport:
    """One benchmark run (module docstring); stops every process it started before returning."""
    if opts.nodes < 1 or opts.records < 1 or opts.batch < 1 or opts.window < 1:
        raise InputError("--nodes, --records, --batch and --window must be >= 1")
    created_tmp = opts.directory is None
    d = Path(tempfile.mkdtemp(prefix="suyuan-bench-")) if created_tmp else opts.directory
    assert d is not None
    d = d.resolve()
    loadgens: list[_Loadgen] = []
    node_pids: dict[int, tuple[int, Path]] = {}
    started = False
    sampler: Sampler | None = None
    report: dict[str, Any] = {}
    try:
        progress("machine limit (before)", 0, 1, "")
        machine = machine_description()
        verify_before = _verify(opts)
        progress("starting testnet", 0, 1, "")
        if mf.is_testnet_dir(d) and opts.reuse:
            man = mf.Manifest.load(d)
            _override_configs(man, opts)
            started = True
            man = net.up(d)
            node_pids.update(_pids(man))
        else:
            if mf.is_testnet_dir(d) or (d.exists() and any(d.iterdir())):
                raise InputError(f"{d}: not empty; pass --reuse to run on the testnet there")
            man = mf.create(d, opts.nodes, opts.base_port or free_base_port(opts.nodes))
            _override_configs(man, opts)
            started = True
            man = net.up(d)
            node_pids.update(_pids(man))
        source = source_info()
        work = d / "bench"
        work.mkdir(exist_ok=True)
        n_nodes = len(man.nodes)
        addr0 = man.nodes[0].address

        prefill: dict[str, Any] | None = None
        if opts.prefill:
            prefill = _prefill(d, work, opts, progress, addr0, loadgens)

        st0 = _status(addr0)
        h0, size0 = int(st0.height), int(st0.log_size)
        sampler = Sampler(man)
        sampler.start()
        doc = run_loadgen(
            d, work / "load.json", opts.records, opts, progress, "load",
            seconds=opts.seconds, holder=loadgens,
        )  # fmt: skip
        sampler.stop()
        load = analyse_load(doc, opts.seconds)
        st1 = _status(addr0)
        h1 = int(st1.height)
        w = load["window"]
        usage = node_usage(sampler.samples, man, w["start"], w["end"])
        progress("checking", 0, 1, "")
        unacked = load.pop("unacked_ids")
        lost_check = check_unacked(addr0, unacked) if unacked else None
        blocks = block_sizes(addr0, h0 + 1, h1)

        catchup: dict[str, Any] | None = None
        if opts.catchup:
            catchup = _catchup(d, work, opts, progress, loadgens)
            node_pids.update(_pids(mf.Manifest.load(d)))

        progress("machine limit (after)", 0, 1, "")
        verify_after = _verify(opts)
        runs = verify_before["runs"] + verify_after["runs"]
        vmed = statistics.median(runs)
        ceil = ceiling(vmed, machine["nproc"], n_nodes)
        lost = 0
        if lost_check is not None:
            lost = lost_check["missing"] + lost_check["unchecked"]
        report = {
            "committed_rps": load["committed_rps"],
            "latency_ms": load["latency_ms"],
            "verify_per_core_per_s": vmed,
            "ceiling_rps": ceil,
            "ratio": load["committed_rps"] / ceil if ceil else None,
            "nodes": n_nodes,
            "records": opts.records,
            "record_bytes": load["record_bytes"],
            "envelope_bytes": load["envelope_bytes"],
            "committed": load["committed"],
            "accepted": load["accepted"],
            "sent": load["sent"],
            "lost": lost,
            "dropped_after_accept": load["dropped_after_accept"],
            "unacked_check": lost_check,
            "resource_exhausted": load["resource_exhausted"],
            "admission_codes": load["admission_codes"],
            "admission_ms": load["admission_ms"],
            "offered_rate": opts.rate,
            "achieved_send_rps": load["achieved_send_rps"],
            "overall_rps": load["overall_rps"],
            "steady": load["steady"],
            "warning": load["warning"],
            "batch": opts.batch,
            "window_batches": opts.window,
            "steady_window": w,
            "status_max_ms": max((u["status_max_ms"] or 0.0) for u in usage),
            "status_over_1s": sum(u["status_over_1s"] for u in usage),
            "status_failed": sum(u["status_failed"] for u in usage),
            "per_node": usage,
            "blocks": blocks,
            "log_size_before": size0,
            "log_size_after": int(st1.log_size),
            "verify": {
                "before": _brief(verify_before),
                "after": _brief(verify_after),
                "median_all": vmed,
                "method": verify_before["method"],
            },
            "cores": machine["nproc"],
            "machine": machine,
            "prefill": prefill,
            "catchup": catchup,
            "sign_seconds": load["sign_seconds"],
            "errors": load["errors"],
            "directory": str(d),
            "source": source,
            "mempool_records": opts.mempool_records,
        }
        return BenchReport(report)
    finally:
        if sampler is not None:
            sampler.stop()
        for lg in loadgens:
            lg.stop()
        if started and not opts.keep:
            with contextlib.suppress(LedgerError, OSError):
                net.down(d)
            # Also by the PIDs this run recorded, should the manifest have been replaced.
            left = [(p, c) for p, c in node_pids.values() if procs.is_ours(p, c)]
            if left:
                procs.stop_many(left, 10.0)
        if created_tmp and not opts.keep:
            shutil.rmtree(d, ignore_errors=True)


def _pids(man: mf.Manifest) -> dict[int, tuple[int, Path]]:
    return {n.pid: (n.pid, n.config) for n in man.nodes if n.pid}


def _brief(v: dict[str, Any]) -> dict[str, Any]:
    return {"median": v["median"], "min": v["min"], "max": v["max"], "runs": v["runs"]}


def _prefill(
    d: Path,
    work: Path,
    opts: BenchOptions,
    progress: Progress,
    addr0: str,
    loadgens: list[_Loadgen],
) -> dict[str, Any]:
    """Fill the log up to ``opts.prefill`` records, in chunks of 200k (open loop)."""
    t0 = time.monotonic()
    size = int(_status(addr0).log_size)
    start_size = size
    chunks = 0
    while size < opts.prefill:
        n = min(200_000, opts.prefill - size)
        doc = run_loadgen(
            d, work / f"prefill{chunks}.json", n, opts, progress,
            f"prefill {size:,}/{opts.prefill:,}", rate=0.0, holder=loadgens,
        )  # fmt: skip
        chunks += 1
        new = int(_status(addr0).log_size)
        if new <= size:
            raise LedgerError(f"prefill made no progress: {doc['errors']}")
        size = new
    elapsed = time.monotonic() - t0
    return {
        "target": opts.prefill,
        "log_size": size,
        "added": size - start_size,
        "seconds": elapsed,
        "rps_including_signing": (size - start_size) / elapsed if elapsed > 0 else None,
    }


def _catchup(
    d: Path, work: Path, opts: BenchOptions, progress: Progress, loadgens: list[_Loadgen]
) -> dict[str, Any]:
    """Kill the last node, commit ``opts.catchup`` records on the others, time its catch-up."""
    man = mf.Manifest.load(d)
    last = len(man.nodes) - 1
    others = [n.index for n in man.nodes if n.index != last]
    addr0 = man.nodes[0].address
    # the node's own log just before the kill. The load before has drained at the nodes
    # that acknowledged it, but this node may still be applying the last block: wait
    # (bounded) until it holds node 0's log, so the gap is exactly what it misses while down
    drained = int(_status(addr0).log_size)
    with LedgerClient(man.nodes[last].address, timeout=STATUS_TIMEOUT_S, plain=True) as c:
        size_at_kill = int(c.status().log_size)
        deadline = time.monotonic() + DRAIN_WAIT_S
        while size_at_kill < drained and time.monotonic() < deadline:
            time.sleep(CATCHUP_POLL_S)  # poll the condition until the deadline
            size_at_kill = int(c.status().log_size)
    net.kill(d, last)
    doc = run_loadgen(
        d, work / "catchup_load.json", opts.catchup, opts, progress, "catch-up load",
        rate=0.0, targets=others, holder=loadgens,
    )  # fmt: skip
    target = int(_status(addr0).log_size)
    behind_st = None
    t_start = time.monotonic()
    pid = net.restart(d, last)
    t_healthy = time.monotonic()
    helper_cpu: dict[int, float] = {}  # the sync helper's CPU, last seen, per child PID
    addr = man.nodes[last].address
    first_size: int | None = None
    t_first_progress: float | None = None
    size = 0
    timeout = 120 + opts.catchup / 100
    stop = t_start + timeout
    samples: list[tuple[float, int]] = []
    with LedgerClient(addr, timeout=STATUS_TIMEOUT_S, plain=True) as c:
        while time.monotonic() < stop:
            try:
                s = c.status()
                size = int(s.log_size)
                now = time.monotonic()
                samples.append((now - t_start, size))
                if first_size is None:
                    first_size = size
                    behind_st = size
                elif t_first_progress is None and size > first_size:
                    t_first_progress = now
                progress("catch-up", size - size_at_kill, target - size_at_kill, "")
                for child in child_pids(pid):
                    cpu = proc_cpu_seconds(child)
                    if cpu is not None:
                        helper_cpu[child] = cpu
                if size >= target:
                    break
            except LedgerError:
                pass
            time.sleep(CATCHUP_POLL_S)
    t_done = time.monotonic()
    node_cpu = proc_cpu_seconds(pid)
    helper_s = sum(helper_cpu.values())
    caught = size >= target
    # the node syncs while it starts: by its first Status answer it may hold much of the gap
    gap = target - size_at_kill
    per_record = 1e6 / gap if gap > 0 else None  # us per record of the gap, per CPU second
    healthy = behind_st if behind_st is not None else size_at_kill
    return {
        "records_committed_while_down": doc["batches"]
        and sum(b["committed"] for b in doc["batches"]),
        "log_size_at_kill": size_at_kill,
        "target_log_size": target,
        "log_size_when_healthy": behind_st,
        "caught_up": caught,
        "restart_to_healthy_s": t_healthy - t_start,
        "restart_to_caught_up_s": t_done - t_start if caught else None,
        "catchup_rps": gap / (t_done - t_start) if caught and t_done > t_start else None,
        "catchup_rps_from_healthy": (target - healthy) / (t_done - t_healthy)
        if caught and t_done > t_healthy
        else None,
        "samples": samples[:: max(1, len(samples) // 50)],
        # CPU from the restart to caught up (start-up included): the node's own, and its
        # sync helper's (child processes, as last seen); per record of the gap
        "node_cpu_s": node_cpu,
        "helper_cpu_s": helper_s,
        "cpu_us_per_record": (node_cpu + helper_s) * per_record
        if node_cpu is not None and per_record is not None
        else None,
        "node_cpu_us_per_record": node_cpu * per_record
        if node_cpu is not None and per_record is not None
        else None,
    }


__all__ = [
    "BenchOptions",
    "BenchReport",
    "Sampler",
    "analyse_load",
    "block_sizes",
    "check_unacked",
    "child_pids",
    "free_base_port",
    "node_usage",
    "proc_cpu_seconds",
    "proc_memory_kib",
    "run",
    "run_loadgen",
]
