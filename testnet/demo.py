"""The README's main job.

For now an offline walk-through: create member keys and a genesis, sign a farm's
commissioning record, have a handoff countersigned, and verify both envelopes, exactly as
an auditor would with only the genesis file. (The 4-node consortium demo replaces this once
nodes exist.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from node.genesis import Genesis, Member
from node.keys import KeyPair, write_key_file
from node.records import cosign, make_record, sign_record, verify_envelope

console = Console(highlight=False, soft_wrap=True)


def offline_walkthrough(workdir: Path) -> None:
    """Keys -> genesis -> sign -> cosign -> verify, writing every file into ``workdir``."""
    roles = {
        "farm": ("enterprise",),
        "slaughterhouse": ("enterprise",),
        "inspector": ("inspector",),
        "regulator": ("regulator", "association"),
    }
    keys = {name: KeyPair.generate(name) for name in roles}
    for name, k in keys.items():
        write_key_file(workdir / "keys" / f"{name}.key", k, None)
    members = [Member(n, r, keys[n].public_key) for n, r in roles.items()]
    genesis = Genesis.build("suyuan-demo", members, ["regulator"])
    (workdir / "genesis.json").write_text(genesis.to_json(), encoding="utf-8")
    console.print(f"[bold]genesis[/] chain suyuan-demo, identity {genesis.hash.hex()}")

    batch = "urn:epc:class:lgtin:6901234.00001.PIG-2026-0301"
    commission = make_record(
        genesis,
        "farm",
        {
            "type": "ObjectEvent",
            "eventTime": "2026-03-01T08:00:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "action": "ADD",
            "bizStep": "commissioning",
            "disposition": "active",
            "quantityList": [{"epcClass": batch, "quantity": 120, "uom": "H87"}],
            "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.0"},
        },
        category="meat",
        attributes={"breed": "长白猪 Landrace", "farm": "示范养殖场"},
    )
    env = sign_record(commission, keys["farm"])
    (workdir / "commission.json").write_text(env.to_json(), encoding="utf-8")
    v = verify_envelope(env, genesis)
    console.print(
        f"[green]verified[/] commissioning {v.record_id.hex()[:16]}… by {v.record.author}"
    )

    handoff = make_record(
        genesis,
        "farm",
        {
            "type": "ObjectEvent",
            "eventTime": "2026-06-01T06:00:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "action": "OBSERVE",
            "bizStep": "shipping",
            "disposition": "in_transit",
            "quantityList": [{"epcClass": batch, "quantity": 120, "uom": "H87"}],
        },
        category="meat",
        handoff_to="slaughterhouse",
    )
    offer = sign_record(handoff, keys["farm"])
    both = cosign(offer, keys["slaughterhouse"])
    (workdir / "handoff.json").write_text(both.to_json(), encoding="utf-8")
    v = verify_envelope(both, genesis)
    console.print(
        f"[green]verified[/] handoff {v.record_id.hex()[:16]}… signed by "
        f"{' + '.join(v.envelope.signers())}"
    )
    console.print(f"files in {workdir}: keys/, genesis.json, commission.json, handoff.json")
    console.print(
        "check them yourself: suyuan record verify "
        f"{workdir / 'handoff.json'} --genesis {workdir / 'genesis.json'}"
    )


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="suyuan-demo-"))
    offline_walkthrough(workdir)


if __name__ == "__main__":
    main()
