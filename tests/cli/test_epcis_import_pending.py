"""`suyuan epcis import` run again while the first run's records are still pending on a
live node (the quorum lost): its events are reported "pending", not "refused", and the
import stops with the outcome-unknown error (exit 5); once they commit, a re-run skips
them (QA-V)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli import epcis_cmd
from cli import main as cli_main
from node.errors import NodeUnavailableError
from node.keys import write_key_file
from tests.fixtures import key, object_event
from tests.node.livenode import config, live_node, run, solo_genesis

CODES = [f"urn:epc:id:sgtin:6901234.012345.{n}" for n in (2001, 2002)]


def test_a_rerun_names_an_earlier_runs_pending_events_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = solo_genesis()
    (tmp_path / "g.json").write_text(g.to_json())
    write_key_file(tmp_path / "farm.key", key("farm"), None)
    doc = {"type": "EPCISDocument", "epcisBody": {"eventList": [object_event([c]) for c in CODES]}}
    (tmp_path / "doc.jsonld").write_text(json.dumps(doc))
    monkeypatch.setattr(epcis_cmd, "BATCH_TIMEOUT_S", 1.0)
    monkeypatch.setattr(epcis_cmd, "PENDING_WAIT_S", 1.0)

    async def body() -> list[Result]:
        async with live_node(config(tmp_path), g) as live:
            args = ["epcis", "import", str(tmp_path / "doc.jsonld"), "--key",
                    str(tmp_path / "farm.key"), "--genesis", str(tmp_path / "g.json"),
                    "--node", live.address, "--json"]  # fmt: skip
            # the quorum is lost: blocks commit, but take nothing from the pool
            take = live.node.mempool.take
            live.node.mempool.take = lambda *a, **kw: []  # type: ignore[method-assign]
            runs = [await asyncio.to_thread(CliRunner().invoke, cli_main.app, args)]
            runs.append(await asyncio.to_thread(CliRunner().invoke, cli_main.app, args))
            live.node.mempool.take = take  # type: ignore[method-assign]
            for _ in range(300):  # (the first run's records commit: bounded, 30 s)
                if not len(live.node.mempool):
                    break
                await asyncio.sleep(0.1)
            runs.append(await asyncio.to_thread(CliRunner().invoke, cli_main.app, args))
            return runs

    first, again, late = run(body)
    assert isinstance(first.exception, NodeUnavailableError), first.output
    sent = [row["record_id"] for row in _rows(first)]
    assert [row["status"] for row in _rows(first)] == ["unknown", "unknown"]
    assert isinstance(again.exception, NodeUnavailableError), again.output  # (exit 5, not 1)
    assert "2 event(s) are on records an earlier run sent, still pending" in str(again.exception)
    rows = _rows(again)
    assert [row["status"] for row in rows] == ["pending", "pending"]
    assert [row["record_id"] for row in rows] == sent  # (the first run's, named)
    assert json.loads(again.stdout)["pending"] == 2
    assert late.exit_code == 0, late.output
    assert [row["status"] for row in _rows(late)] == ["skipped", "skipped"]


def _rows(result: Result) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(result.stdout)["events"]
    return events
