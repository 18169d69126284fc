"""`suyuan record declare` of a recall, against a live node: a code it frees that came from
a code another recall still holds is named on stderr (QA-X M3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import main as cli_main
from node.client import LedgerClient
from node.keys import write_key_file
from node.recall import run_recall
from node.records import make_record, sign_record
from tests.fixtures import key, object_event
from tests.node.livenode import config, live_node, run, solo_genesis
from tests.trace.helpers import event

A = "urn:epc:id:sgtin:6901234.012345.4001"
B = "urn:epc:id:sgtin:6901234.012345.4002"


@pytest.mark.parametrize("as_json", [False, True])
def test_declaring_a_recall_names_what_an_upstream_recall_still_holds(
    tmp_path: Path, as_json: bool
) -> None:
    g = solo_genesis()
    (tmp_path / "g.json").write_text(g.to_json())
    write_key_file(tmp_path / "regulator.key", key("regulator"), None)

    def prepare(address: str) -> str:
        with LedgerClient(address, timeout=30) as c:
            for ev in (
                object_event([A]),
                event("TransformationEvent", None, "commissioning", inputEPCList=[A],
                      outputEPCList=[B]),
            ):  # fmt: skip
                c.submit(sign_record(make_record(g, "farm", ev), key("farm")), True, 30)
            first = run_recall(c, g, key("regulator"), B, "b", timeout=30)  # B alone
            run_recall(c, g, key("regulator"), A, "a", timeout=30)  # A (B: held already)
        return str(first.records[0]["record_id"])

    async def body() -> tuple[str, str]:
        async with live_node(config(tmp_path), g) as live:
            rid = await asyncio.to_thread(prepare, live.address)
            args = ["record", "declare", rid, "--key", str(tmp_path / "regulator.key"),
                    "--genesis", str(tmp_path / "g.json"), "--node", live.address,
                    "--wait", *(["--json"] if as_json else [])]  # fmt: skip
            res = await asyncio.to_thread(CliRunner().invoke, cli_main.app, args)
            assert res.exit_code == 0, res.output
            return res.stdout, res.stderr

    out, err = run(body)
    assert ('"committed": true' if as_json else "committed at height") in out  # (QA-Z: --json)
    [line] = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert "is no longer recalled, but it came from" in line
    assert "(input), still recalled by regulator, log #" in line
