"""Comparison benchmark: PySyncObj (Raft, crash-fault tolerant) on this machine (issue #8).

Not part of the product. Starts ``--nodes`` PySyncObj node processes on
127.0.0.1 (free ports), each a ``SyncObj`` whose ``@replicated append(rec)``
appends a ``--record-bytes`` bytes record to a list. Once every node agrees
on a leader, the leader process issues asynchronous ``append`` calls with
callbacks, at most ``--window`` in flight, for ``--warmup`` + ``--seconds``;
only SUCCESS callbacks that arrive inside the steady window are counted.

Honesty checks, reported in the JSON: every record carries a unique
sequence number; at the end each node reports its applied length, the
number of duplicate sequence numbers and SHA-256 checkpoints of its applied
prefix (every 10,000 entries and at the end); the leader checks that every
record it saw acknowledged is in its own state machine. ``honest`` is True
only if all nodes applied the identical sequence, no record twice, and every
acknowledged record is in it. Leader changes (Raft term increases) and
PySyncObj's "truncating already-applied log entries" log lines are counted
and reported separately.

The PySyncObj journal is in memory (not durable) and the entries are
unsigned, so the figure is not comparable one-to-one with Suyuan, which
signs, verifies and fsyncs. The same run also measures this machine's
Ed25519 verify rate (bench.machine) and the CPU ceiling it implies.

Usage::

    .venv/bin/python -m bench.pysyncobj_bench --nodes 4 --seconds 20 --record-bytes 400 --json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import IO, Any

HOST = "127.0.0.1"
CHECKPOINT_EVERY = 10_000
NOTE = (
    "PySyncObj journal is in memory (not durable; no fsync) and entries are unsigned; "
    "every node is a separate process on 127.0.0.1; client calls come from the leader process."
)


# --------------------------------------------------------------------------- node process


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class _CriticalCounter(logging.Handler):
    """Counts PySyncObj log records at WARNING and above (e.g. truncation of applied entries)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.truncations = 0
        self.warnings = 0
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        self.warnings += 1
        if "truncating already-applied" in msg:
            self.truncations += 1
        if len(self.samples) < 5:
            self.samples.append(msg[:200])


def _node_main(args: argparse.Namespace) -> int:
    """Run one PySyncObj node; obey line commands on stdin; answer with JSON lines on stdout."""
    from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

    counter = _CriticalCounter()
    logging.getLogger("pysyncobj").addHandler(counter)
    logging.getLogger("pysyncobj").setLevel(logging.WARNING)

    ports = [int(p) for p in args.ports.split(",")]
    self_addr = f"{HOST}:{ports[args.index]}"
    partners = [f"{HOST}:{p}" for i, p in enumerate(ports) if i != args.index]
    state_changes: list[tuple[float, int, int]] = []

    def on_state(old: int, new: int) -> None:
        state_changes.append((time.monotonic(), old, new))

    mib = 2**20
    conf = SyncObjConf(
        bindAddress=self_addr,  # the default would bind 0.0.0.0
        appendEntriesBatchSizeBytes=mib,
        sendBufferSize=mib,
        recvBufferSize=mib,
        commandsQueueSize=args.queue_size,
        raftMinTimeout=args.election_min,
        raftMaxTimeout=args.election_max,
        appendEntriesPeriod=args.ae_period,
        connectionTimeout=max(3.5, args.election_max * 1.5),
        onStateChanged=on_state,
        autoTick=not args.manual_tick,
        dynamicMembershipChange=False,
        logCompactionMinEntries=10**9,  # no snapshots during the run
        logCompactionMinTime=10**6,
    )

    class Ledger(SyncObj):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(self_addr, partners, conf)
            self.records: list[bytes] = []

        @replicated  # type: ignore[untyped-decorator]
        def append(self, rec: bytes) -> int:
            self.records.append(rec)
            return len(self.records)

    obj = Ledger()
    commands: queue.Queue[str] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("quit")  # parent went away

    threading.Thread(target=read_stdin, daemon=True).start()

    def tick(wait: float) -> None:
        if args.manual_tick:
            obj.doTick(wait)
        elif wait > 0:
            time.sleep(wait)

    def status() -> dict[str, Any]:
        st = obj.getStatus()
        leader = obj._getLeader()
        return {
            "event": "status",
            "index": args.index,
            "self": self_addr,
            "leader": str(leader.address) if leader is not None else None,
            "is_leader": bool(obj._isLeader()),
            "ready": bool(obj.isReady()),
            "term": st["raft_term"],
            "commit_idx": st["commit_idx"],
            "applied_len": len(obj.records),
        }

    def drive(warmup: float, seconds: float, window: int, drain: float) -> dict[str, Any]:
        """Submit appends from this (leader) process and count callbacks."""
        pad = b"\x00" * (args.record_bytes - 12)
        tag = args.index.to_bytes(4, "big")
        st0 = obj.getStatus()
        term0 = st0["raft_term"]
        changes0 = len(state_changes)
        done = [0]
        success_window = [0]
        success_total = [0]
        errors: Counter[str] = Counter()
        errors_window = [0]
        acked: list[int] = []
        t_start = time.monotonic()
        t_w0 = t_start + warmup
        t_w1 = t_w0 + seconds
        names = {v: k for k, v in vars(FAIL_REASON).items() if isinstance(v, int)}

        def make_cb(seq: int) -> Any:
            def cb(result: Any, err: int) -> None:
                now = time.monotonic()
                done[0] += 1
                if err == FAIL_REASON.SUCCESS:
                    success_total[0] += 1
                    acked.append(seq)
                    if t_w0 <= now < t_w1:
                        success_window[0] += 1
                else:
                    errors[names.get(err, str(err))] += 1
                    if t_w0 <= now < t_w1:
                        errors_window[0] += 1

            return cb

        submitted = 0
        now = t_start
        while now < t_w1:
            burst = 0
            while submitted - done[0] < window and burst < 2000:
                rec = submitted.to_bytes(8, "big") + tag + pad
                obj.append(rec, callback=make_cb(submitted))
                submitted += 1
                burst += 1
            tick(0.0 if args.manual_tick else 0.0005)
            now = time.monotonic()
        # Drain: wait (bounded) for callbacks of records still in flight.
        t_drain = time.monotonic() + drain
        while done[0] < submitted and time.monotonic() < t_drain:
            tick(0.005)
        in_window = t_w1 - t_w0
        st1 = obj.getStatus()
        own = {int.from_bytes(r[:8], "big") for r in obj.records if r[8:12] == tag}
        missing_acked = sum(1 for s in acked if s not in own)
        return {
            "event": "drive",
            "submitted": submitted,
            "callbacks": done[0],
            "unanswered": submitted - done[0],
            "success_window": success_window[0],
            "success_total": success_total[0],
            "committed_per_s": success_window[0] / in_window,
            "errors_window": errors_window[0],
            "errors_total": sum(errors.values()),
            "errors_by_reason": dict(errors),
            "term_start": term0,
            "term_end": st1["raft_term"],
            "state_changes_during_drive": len(state_changes) - changes0,
            "still_leader": bool(obj._isLeader()),
            "acked_missing_from_leader_state": missing_acked,
            "window_s": in_window,
        }

    def report() -> dict[str, Any]:
        recs = obj.records
        h = hashlib.sha256()
        checkpoints: dict[str, str] = {}
        seqs: set[tuple[bytes, bytes]] = set()
        dups = 0
        for i, r in enumerate(recs, 1):
            h.update(r)
            key = (r[:8], r[8:12])
            if key in seqs:
                dups += 1
            seqs.add(key)
            if i % CHECKPOINT_EVERY == 0:
                checkpoints[str(i)] = h.hexdigest()[:16]
        checkpoints[str(len(recs))] = h.hexdigest()[:16]
        st = status()
        st.update(
            {
                "event": "report",
                "duplicates": dups,
                "checkpoints": checkpoints,
                "truncations_logged": counter.truncations,
                "warnings_logged": counter.warnings,
                "warning_samples": counter.samples,
                "state_changes": len(state_changes),
            }
        )
        return st

    _emit({"event": "started", "index": args.index, "pid": os.getpid(), "self": self_addr})
    hard_deadline = time.monotonic() + args.node_lifetime
    try:
        while time.monotonic() < hard_deadline:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                tick(0.01)
                continue
            parts = cmd.split()
            if not parts:
                continue
            if parts[0] == "status":
                _emit(status())
            elif parts[0] == "drive":
                warmup, seconds, window, drain = map(float, parts[1:5])
                _emit(drive(warmup, seconds, int(window), drain))
            elif parts[0] == "report":
                _emit(report())
            elif parts[0] == "quit":
                break
    finally:
        with contextlib.suppress(Exception):
            obj.destroy()
    return 0


# --------------------------------------------------------------------------- orchestrator


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class _Node:
    """A child node process with a background reader of its JSON lines."""

    def __init__(self, index: int, cmd: list[str]) -> None:
        self.index = index
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches only us; we stop children by PID
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr_tail: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._read_err, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        for line in stream:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def _read_err(self, stream: IO[str] | None) -> None:
        if stream is None:
            return
        for line in stream:
            self.stderr_tail.append(line.rstrip())
            del self.stderr_tail[:-20]

    def send(self, line: str) -> None:
        if self.proc.stdin is not None and self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self.proc.stdin.write(line + "\n")
                self.proc.stdin.flush()

    def ask(self, line: str, event: str, timeout: float) -> dict[str, Any] | None:
        self.send(line)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if msg.get("event") == event:
                return msg
        return None

    def stop(self, grace: float = 3.0) -> None:
        """Stop this process by PID: quit command, then SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            self.send("quit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)


def _compare_checkpoints(reports: list[dict[str, Any]]) -> list[str]:
    """Return the checkpoints at which nodes' applied prefixes differ."""
    bad: list[str] = []
    keys: set[str] = set()
    for r in reports:
        keys.update(r["checkpoints"])
    for k in sorted(keys, key=int):
        values = {r["checkpoints"][k] for r in reports if k in r["checkpoints"]}
        if len(values) > 1:
            bad.append(k)
    return bad


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    """Start a cluster, drive it from the leader, collect results, stop every process."""
    ports = _free_ports(args.nodes)
    base = [
        sys.executable,
        "-m",
        "bench.pysyncobj_bench",
        "--_node",
        "--ports",
        ",".join(map(str, ports)),
        "--record-bytes",
        str(args.record_bytes),
        "--queue-size",
        str(args.queue_size),
        "--election-min",
        str(args.election_min),
        "--election-max",
        str(args.election_max),
        "--ae-period",
        str(args.ae_period),
        "--node-lifetime",
        str(args.leader_wait + args.warmup + args.seconds + args.drain + 60),
    ]
    base.append("--manual-tick" if args.manual_tick else "--auto-tick")
    nodes: list[_Node] = []
    result: dict[str, Any] = {"ports": ports}
    try:
        for i in range(args.nodes):
            nodes.append(_Node(i, [*base, "--index", str(i)]))
        result["pids"] = [n.proc.pid for n in nodes]
        # Wait (bounded) until every node is ready and names the same leader.
        leader_idx: int | None = None
        t0 = time.monotonic()
        deadline = t0 + args.leader_wait
        while time.monotonic() < deadline and leader_idx is None:
            sts = [n.ask("status", "status", 2.0) for n in nodes]
            if all(s is not None for s in sts):
                leaders = {s["leader"] for s in sts if s is not None}
                ready = all(s["ready"] for s in sts if s is not None)
                cand = [s["index"] for s in sts if s is not None and s["is_leader"]]
                if ready and len(leaders) == 1 and None not in leaders and len(cand) == 1:
                    leader_idx = cand[0]
                    break
            if any(n.proc.poll() is not None for n in nodes):
                raise RuntimeError("a node exited early: " + " | ".join(nodes[0].stderr_tail))
            time.sleep(0.2)
        if leader_idx is None:
            raise RuntimeError(f"no agreed leader within {args.leader_wait} s")
        result["leader_elected_after_s"] = round(time.monotonic() - t0, 2)
        result["leader_index"] = leader_idx
        leader = nodes[leader_idx]
        drive_timeout = args.warmup + args.seconds + args.drain + 30
        cmd = f"drive {args.warmup} {args.seconds} {args.window} {args.drain}"
        drv = leader.ask(cmd, "drive", drive_timeout)
        if drv is None:
            raise RuntimeError("the leader did not report within the drive timeout")
        result["drive"] = drv
        # Let followers catch up (bounded), then collect reports.
        target = drv["success_total"]
        t_catch = time.monotonic() + args.drain
        while time.monotonic() < t_catch:
            sts = [n.ask("status", "status", 2.0) for n in nodes]
            if all(s is not None and s["applied_len"] >= target for s in sts):
                break
            time.sleep(0.3)
        reports = [n.ask("report", "report", 30.0) for n in nodes]
        if any(r is None for r in reports):
            raise RuntimeError("a node did not report")
        reps = [r for r in reports if r is not None]
        mismatched = _compare_checkpoints(reps)
        result["nodes"] = [
            {
                k: r[k]
                for k in (
                    "index",
                    "applied_len",
                    "term",
                    "is_leader",
                    "duplicates",
                    "truncations_logged",
                    "warnings_logged",
                    "warning_samples",
                    "state_changes",
                )
            }
            for r in reps
        ]
        result["checkpoint_mismatches"] = mismatched
        lengths = {r["applied_len"] for r in reps}
        result["leader_changes"] = drv["term_end"] - drv["term_start"]
        result["truncations_logged"] = sum(r["truncations_logged"] for r in reps)
        # Honest: every node applied the same sequence (equal lengths, equal SHA-256
        # checkpoints including the final one), no record twice, and every
        # SUCCESS-acked record is in the (shared) final state. Leader changes and
        # PySyncObj's "truncating already-applied" log lines are reported separately.
        result["honest"] = (
            not mismatched
            and len(lengths) == 1
            and min(lengths) >= drv["success_total"]
            and all(r["duplicates"] == 0 for r in reps)
            and drv["acked_missing_from_leader_state"] == 0
        )
        return result
    finally:
        for n in nodes:
            n.stop()
        result["all_stopped"] = all(n.proc.poll() is not None for n in nodes)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--seconds", type=float, default=20.0, help="steady window per repetition")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--record-bytes", type=int, default=400)
    p.add_argument("--window", type=int, default=20_000, help="max calls in flight")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--queue-size", type=int, default=200_000, help="commandsQueueSize")
    # Defaults are the fastest honest settings found on this machine (BENCHMARKS.md):
    # 2-4 s election timeouts and autoTick=False (one thread per node).
    p.add_argument("--election-min", type=float, default=2.0, help="raftMinTimeout (s)")
    p.add_argument("--election-max", type=float, default=4.0, help="raftMaxTimeout (s)")
    p.add_argument("--ae-period", type=float, default=0.1, help="appendEntriesPeriod (s)")
    p.add_argument(
        "--auto-tick",
        dest="manual_tick",
        action="store_false",
        help="use PySyncObj's autoTick thread instead of ticking from the node's main loop",
    )
    p.add_argument("--manual-tick", dest="manual_tick", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--leader-wait", type=float, default=40.0)
    p.add_argument("--drain", type=float, default=10.0)
    p.add_argument("--verify-seconds", type=float, default=2.0)
    p.add_argument("--verify-repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--_node", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--ports", default="", help=argparse.SUPPRESS)
    p.add_argument("--node-lifetime", type=float, default=300.0, help=argparse.SUPPRESS)
    p.set_defaults(manual_tick=True)
    args = p.parse_args(argv)
    if args._node:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return _node_main(args)
    if args.record_bytes < 16:
        p.error("--record-bytes must be >= 16")

    def _on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited as ignored

    from bench.machine import ceiling, machine_description, measure_verify_per_core

    machine = machine_description()
    verify = measure_verify_per_core(args.verify_seconds, args.verify_repeats)
    runs: list[dict[str, Any]] = []
    try:
        for i in range(args.repeats):
            try:
                runs.append(run_once(args))
            except RuntimeError as exc:
                runs.append({"error": str(exc)})
            if not args.json:
                print(f"run {i + 1}: {json.dumps(runs[-1].get('drive', runs[-1]))}", flush=True)
    except KeyboardInterrupt:
        runs.append({"error": "interrupted"})
    rates = [r["drive"]["committed_per_s"] for r in runs if "drive" in r]
    summary: dict[str, Any] = {
        "benchmark": "pysyncobj",
        "note": NOTE,
        "settings": {
            "nodes": args.nodes,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "record_bytes": args.record_bytes,
            "window": args.window,
            "commandsQueueSize": args.queue_size,
            "appendEntriesBatchSizeBytes": 2**20,
            "sendBufferSize": 2**20,
            "recvBufferSize": 2**20,
            "raftMinTimeout": args.election_min,
            "raftMaxTimeout": args.election_max,
            "appendEntriesPeriod": args.ae_period,
            "autoTick": not args.manual_tick,
            "journal": "memory",
        },
        "committed_per_s": {
            "median": statistics.median(rates) if rates else None,
            "min": min(rates) if rates else None,
            "max": max(rates) if rates else None,
            "runs": rates,
        },
        "errors_window": [r["drive"]["errors_window"] for r in runs if "drive" in r],
        "errors_total": [r["drive"]["errors_total"] for r in runs if "drive" in r],
        "leader_changes": [r.get("leader_changes") for r in runs if "drive" in r],
        "honest": [r.get("honest") for r in runs],
        "truncations_logged": [r.get("truncations_logged") for r in runs if "drive" in r],
        "machine": machine,
        "verify_per_core": verify,
        "ceiling_records_per_s": {
            "validators": args.nodes,
            "cores": machine["nproc"],
            "value": ceiling(verify["median"], machine["nproc"], args.nodes),
            "formula": "cores * verify_per_core / validators",
        },
        "runs": runs,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        c = summary["committed_per_s"]
        print(f"committed/s median {c['median']} min {c['min']} max {c['max']}")
        print(f"verify/core {verify['median']:.0f}/s; ceiling {summary['ceiling_records_per_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
