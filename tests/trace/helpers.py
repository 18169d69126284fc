"""Deterministic members, genesis and signed records for the traceability tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from node.custody import CustodyUpdate, InMemoryCustody, apply, apply_block
from node.genesis import Genesis, Member
from node.keys import KeyPair
from node.records import TraceRecord, cosign, make_record, sign_record, verify_envelope

ROLES: dict[str, tuple[str, ...]] = {
    "assoc": ("association",),
    "farm": ("enterprise",),
    "slaughterhouse": ("enterprise",),
    "processor": ("enterprise",),
    "distributor": ("enterprise",),
    "retailer": ("enterprise",),
    "inspector": ("inspector",),
    "regulator": ("regulator",),
}


def key(name: str) -> KeyPair:
    return KeyPair.from_seed(name, hashlib.sha256(b"trace:" + name.encode()).digest())


def genesis() -> Genesis:
    members = [Member(n, r, key(n).public_key) for n, r in ROLES.items()]
    return Genesis.build("suyuan-trace-test", members, ["assoc"])


GENESIS = genesis()
_counter = [0]


def event(etype: str = "ObjectEvent", action: str | None = "OBSERVE", step: str = "", **kw: Any):
    ev: dict[str, Any] = {
        "type": etype,
        "eventTime": "2026-03-01T08:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
    }
    if action is not None:
        ev["action"] = action
    if step:
        ev["bizStep"] = step
    ev.update(kw)
    return ev


def signed(
    author: str,
    ev: dict[str, Any],
    *,
    to: str = "",
    category: str = "meat",
    attributes: dict[str, Any] | None = None,
):
    """A verified record (and its signers) signed by the author and, for a handoff, the receiver."""
    _counter[0] += 1
    rec = make_record(
        GENESIS,
        author,
        ev,
        category=category,
        handoff_to=to,
        nonce=f"{_counter[0]:016x}",
        attributes=attributes,
    )
    env = sign_record(rec, key(author))
    if to:
        env = cosign(env, key(to))
    v = verify_envelope(env, GENESIS)
    return v.record, env.signers()


class Chain:
    """Applies records one at a time to an InMemoryCustody, keeping the log."""

    def __init__(self, genesis: Genesis = GENESIS) -> None:
        self.custody = InMemoryCustody()
        self.log: list[TraceRecord] = []
        self.genesis = genesis  # (records are signed under GENESIS, with the same members)

    def add(self, author: str, ev: dict[str, Any], *, to: str = "") -> CustodyUpdate:
        rec, signers = signed(author, ev, to=to)
        upd = apply(self.custody, rec, signers, self.genesis, len(self.log))
        self.custody.commit(upd)
        self.log.append(rec)
        return upd

    def block(self, items: Sequence[tuple[str, dict[str, Any], str]]):
        recs = [signed(a, e, to=t) for a, e, t in items]
        bu = apply_block(self.custody, recs, self.genesis, len(self.log))
        self.custody.commit(bu)
        for pos, _ in bu.accepted:
            self.log.append(recs[pos][0])
        return bu
