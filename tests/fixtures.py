"""Deterministic members, keys and genesis for tests (fixed seeds, no randomness)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from node.genesis import Genesis, Member
from node.keys import KeyPair

EPCIS_DIR = Path(__file__).resolve().parents[2] / "shared" / "epcis"

MEMBERS: dict[str, tuple[str, ...]] = {
    "v0": ("association",),
    "v1": ("association",),
    "v2": ("regulator",),
    "v3": ("association",),
    "farm": ("enterprise",),
    "slaughterhouse": ("enterprise",),
    "processor": ("enterprise",),
    "distributor": ("enterprise",),
    "retailer": ("enterprise",),
    "inspector": ("inspector",),
    "regulator": ("regulator",),
    "auditor": ("auditor",),
}


def key(name: str) -> KeyPair:
    """The fixed test key of ``name`` (seed = SHA-256 of the name)."""
    return KeyPair.from_seed(name, hashlib.sha256(name.encode()).digest())


def genesis(chain_id: str = "suyuan-test", **kw: Any) -> Genesis:
    members = [Member(n, roles, key(n).public_key) for n, roles in MEMBERS.items()]
    return Genesis.build(chain_id, members, ["v0", "v1", "v2", "v3"], **kw)


def object_event(
    codes: list[str], biz_step: str = "commissioning", action: str = "ADD"
) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T08:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": action,
        "bizStep": biz_step,
        "epcList": codes,
    }


def epcis_documents() -> list[Path]:
    return sorted((EPCIS_DIR / "JSON").rglob("*.json*"))


def epcis_events() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, event) for every event in every shared EPCIS example document."""
    for path in epcis_documents():
        doc = json.loads(path.read_text(encoding="utf-8"))
        body = doc.get("epcisBody", {})
        events = body.get("eventList")
        if events is None:
            events = body.get("queryResults", {}).get("resultsBody", {}).get("eventList", [])
        for i, ev in enumerate(events):
            yield f"{path.relative_to(EPCIS_DIR)}#{i}", ev
