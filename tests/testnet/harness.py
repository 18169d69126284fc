"""Helpers for multi-process tests against a real local testnet.

wait_for(cond, timeout, interval, what)   poll until cond() is truthy, or fail clearly
free_base_port(n)                          a random base port with n free ports after it
pid_alive(pid)                             the process exists and is not a zombie
RunningTestnet                             a testnet brought up in a tmp folder
  .submit_records(count, nodes, ...)       sign and submit records, round-robin
  .heads()                                 (height, head hash) of every node, None if mute
  .client(i)                               a LedgerClient for node i
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from node.client import LedgerClient
from node.envelope import Envelope
from node.errors import LedgerError
from node.genesis import Genesis
from node.keys import KeyPair, load_key_file
from node.records import make_record, sign_record
from testnet import procs
from testnet.manifest import Manifest
from testnet.net import busy_addresses

T = TypeVar("T")

# Below Linux's ephemeral range (32768-60999), so outgoing connections never take them.
_PORT_LO, _PORT_HI = 20000, 32000


def wait_for(
    cond: Callable[[], T], timeout: float, interval: float = 0.1, what: str = "condition"
) -> T:
    """Poll ``cond`` until it returns a truthy value (which is returned), at most ``timeout``.

    Exceptions raised by ``cond`` count as "not yet"; the last one (or the last value) is
    shown in the AssertionError raised at the deadline.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    for _ in range(int(timeout / max(interval, 0.001)) + 2):
        try:
            value = cond()
        except Exception as e:
            last = e
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")


def free_base_port(n: int, attempts: int = 50) -> int:
    """A random base port P with P..P+n-1 all free on 127.0.0.1 right now."""
    rng = random.Random()
    for _ in range(attempts):
        base = rng.randrange(_PORT_LO, _PORT_HI - n)
        if not busy_addresses([f"127.0.0.1:{base + i}" for i in range(n)]):
            return base
    raise AssertionError(f"no {n} consecutive free ports found in {attempts} attempts")


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    return pid is not None and procs.proc_state(pid) not in (None, "Z", "X")


def commissioning_event(code: str) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T08:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "epcList": [code],
    }


@dataclass
class RunningTestnet:
    """A testnet brought up by the fixture. Every PID it ever had is in ``pids_seen``."""

    dir: Path
    pids_seen: set[int] = field(default_factory=set)

    @property
    def manifest(self) -> Manifest:
        man = Manifest.load(self.dir)
        self.pids_seen.update(n.pid for n in man.nodes if n.pid)
        return man

    @property
    def addresses(self) -> list[str]:
        return [n.address for n in self.manifest.nodes]

    @property
    def genesis(self) -> Genesis:
        return Genesis.load(self.dir / "genesis.json")

    def key(self, member: str) -> KeyPair:
        return load_key_file(self.dir / "keys" / f"{member}.key")

    def client(self, index: int, timeout: float = 10.0) -> LedgerClient:
        return LedgerClient(self.addresses[index], timeout=timeout)

    def signed_record(self, code: str, author: str = "farm", **kw: Any) -> Envelope:
        """A commissioning record of ``code`` by ``author``, signed with its testnet key."""
        g = self.genesis
        rec = make_record(g, author, commissioning_event(code), category="meat", **kw)
        return sign_record(rec, self.key(author))

    def submit_records(
        self,
        count: int,
        nodes: Sequence[int] = (0,),
        *,
        author: str = "farm",
        wait: bool = False,
        prefix: str = "",
    ) -> list[bytes]:
        """Sign ``count`` new commissioning records and submit them round-robin to ``nodes``.

        Returns the record ids in submission order. Any refusal raises its LedgerError.
        """
        tag = prefix or f"{time.time_ns() % 16**10:x}"  # a serial is at most 20 characters
        clients = {i: self.client(i, timeout=30.0) for i in set(nodes)}
        try:
            ids = []
            for k in range(count):
                env = self.signed_record(f"urn:epc:id:sgtin:6901234.000001.{tag}-{k}", author)
                resp = clients[nodes[k % len(nodes)]].submit(env, wait=wait)
                ids.append(resp.record_id or env.record_id)
            return ids
        finally:
            for c in clients.values():
                c.close()

    def heads(self, timeout: float = 2.0) -> list[tuple[int, bytes] | None]:
        """(height, head hash) of every node; None for a node that does not answer."""
        out: list[tuple[int, bytes] | None] = []
        for addr in self.addresses:
            try:
                with LedgerClient(addr, timeout=timeout) as c:
                    st = c.status()
                out.append((int(st.height), bytes(st.head_hash)))
            except LedgerError:
                out.append(None)
        return out

    def wait_same_head(
        self, nodes: Sequence[int] | None = None, min_height: int = 1, timeout: float = 30.0
    ) -> tuple[int, bytes]:
        """Wait until ``nodes`` (default all) report one head at height >= ``min_height``."""
        idx = list(range(len(self.addresses))) if nodes is None else list(nodes)

        def same() -> tuple[int, bytes] | None:
            hs = self.heads()
            chosen = [hs[i] for i in idx]
            first = chosen[0]
            if first is None or first[0] < min_height or any(h != first for h in chosen):
                return None
            return first

        head = wait_for(same, timeout, 0.2, f"nodes {idx} to agree on a head >= {min_height}")
        assert head is not None
        return head
