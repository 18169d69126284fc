"""`suyuan recall` run again (``node.recall.run_recall``) against a live node: a recall
record's eventID is derived from its author, codes and reason, so a re-run while the
first run's record is pending waits for that record instead of writing a second (QA-V),
and a recall made again after its record was declared in error gets the next eventID."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from node.client import LedgerClient
from node.envelope import Envelope
from node.errors import NodeUnavailableError
from node.genesis import Genesis
from node.recall import RecallResult, recall_event_id, run_recall
from node.records import TraceRecord, make_record, sign_record
from tests.fixtures import key, object_event
from tests.node.livenode import config, live_node, run, solo_genesis

ITEM = "urn:epc:id:sgtin:6901234.012345.1001"


def _recall(address: str, g: Genesis, code: str, timeout: float) -> RecallResult:
    with LedgerClient(address, timeout=timeout) as client:
        return run_recall(client, g, key("regulator"), code, "test", timeout=timeout)


def test_a_rerun_while_the_recall_record_is_pending_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = solo_genesis()

    async def body() -> tuple[list[str], int, list[dict[str, Any]], str]:
        async with live_node(config(tmp_path), g) as live:
            await _commission(live.address, g)
            # the quorum is lost: blocks commit, but take nothing from the pool
            monkeypatch.setattr(live.node.mempool, "take", lambda *a, **kw: [])
            errors = []
            for _ in range(2):
                with pytest.raises(NodeUnavailableError) as e:
                    await asyncio.to_thread(_recall, live.address, g, ITEM, 0.5)
                errors.append(str(e.value))
            pending = len(live.node.mempool)
            monkeypatch.undo()  # the quorum is back: the first run's record commits
            late = (await asyncio.to_thread(_recall, live.address, g, ITEM, 30)).records
            return errors, pending, late, await asyncio.to_thread(_trace_recalled_by, live.address)

    (first, second), pending, late, recalled_by = run(body)
    rid = first.split("recall record ", 1)[1][:64]
    assert pending == 1, (first, second)  # (the re-run wrote no second record)
    assert f"an earlier run's recall record {rid}" in second, second
    # (waited for and named as this run's, or committed before this run read its scope:
    # then its codes are held and it writes nothing; review, under load)
    assert [r["record_id"] for r in late] in ([rid], [])
    assert recalled_by == "regulator"


async def _commission(address: str, g: Genesis) -> None:
    made = sign_record(make_record(g, "farm", object_event([ITEM])), key("farm"))
    with LedgerClient(address, timeout=30) as client:
        await asyncio.to_thread(client.submit, made, True, 30)


def _trace_recalled_by(address: str) -> str:
    with LedgerClient(address, timeout=30) as client:
        return client.trace_back(ITEM, max_depth=1, limit=1).nodes[0].recalled_by


def test_a_recall_made_again_after_its_declaration_gets_the_next_event_id(tmp_path: Path) -> None:
    g = solo_genesis()

    async def body() -> tuple[list[list[dict[str, Any]]], list[str]]:
        async with live_node(config(tmp_path), g) as live:
            await _commission(live.address, g)
            runs = [(await asyncio.to_thread(_recall, live.address, g, ITEM, 30)).records]
            runs.append((await asyncio.to_thread(_recall, live.address, g, ITEM, 30)).records)
            [first] = runs[0]
            declared = await asyncio.to_thread(_declaration, g, first["record_id"], live.address)
            with LedgerClient(live.address, timeout=30) as client:
                await asyncio.to_thread(client.submit, declared, True, 30)
            runs.append((await asyncio.to_thread(_recall, live.address, g, ITEM, 30)).records)
            runs.append((await asyncio.to_thread(_recall, live.address, g, ITEM, 30)).records)
            ids = [
                await asyncio.to_thread(_event_id, live.address, r[0]["record_id"])
                for r in (runs[0], runs[2])
                if r
            ]
            return runs, ids

    (first, rerun, again, rerun_again), ids = run(body)
    assert len(first) == 1
    assert rerun == []  # (a recall of its own holds the code: nothing new)
    assert len(again) == 1
    assert again[0]["record_id"] != first[0]["record_id"]
    assert rerun_again == []
    codes = first[0]["codes"]  # (the code as the node has it: its Digital Link)
    assert again[0]["codes"] == codes
    assert ids == [recall_event_id(g.chain_id, "regulator", codes, "test", n) for n in (0, 1)]


def _declaration(g: Genesis, record_id: Any, address: str) -> Envelope:
    with LedgerClient(address, timeout=30) as client:
        rr = client.get_record(bytes.fromhex(str(record_id)))
    event = dict(TraceRecord.from_payload(rr.envelope.payload).event)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["errorDeclaration"] = {"declarationTime": now, "reason": "did_not_occur"}
    return sign_record(make_record(g, "regulator", event), key("regulator"))


def _event_id(address: str, record_id: Any) -> str:
    with LedgerClient(address, timeout=30) as client:
        return client.get_record(bytes.fromhex(str(record_id))).info.event_id


class _Node:
    """A node whose rule event-id refuses the first submit: ``holder`` (an earlier run's
    record of the recall's eventID, committed, declared in error or not) has it."""

    address = "127.0.0.1:9"

    def __init__(self, holder: bytes, declared: bool) -> None:
        self.holder, self.declared, self.sent = holder, declared, 0

    def submit(self, env: Any, wait: bool = False, timeout: float | None = None) -> Any:
        from node.client import RemoteRuleError
        from proto import services_pb2

        self.sent += 1
        if self.sent == 1:
            raise RemoteRuleError(
                f"rule event-id: eventID 'urn:uuid:x' is already on the chain (record "
                f"{self.holder.hex()}): EPCIS gives each event its own eventID"
            )
        return services_pb2.SubmitResponse(committed=True, height=8, log_index=20)

    def get_record(self, record_id: bytes, timeout: float | None = None) -> Any:
        from proto import services_pb2, types_pb2

        info = types_pb2.RecordInfo(record_id=record_id, author="regulator", height=5,
                                    log_index=9, declared_by=b"\x01" * 32 if self.declared
                                    else b"")  # fmt: skip
        return services_pb2.RecordResponse(info=info)


@pytest.mark.parametrize("declared", [False, True])
def test_an_earlier_runs_record_committed_meanwhile_is_this_runs(declared: bool) -> None:
    # review: run 2 read its scope while run 1's record was pending; it committed before
    # run 2 submitted, and run 2 committed a second recall record of the same codes
    from node.recall import _commit_chunk, recall_event

    g = solo_genesis()
    node = _Node(b"\x07" * 32, declared)
    event = recall_event([ITEM], set(), "2026-03-01T00:00:00Z")
    resp = _commit_chunk(node, g, key("regulator"), event, "r", "other", "0 of 1", 5.0)  # type: ignore[arg-type]
    if declared:  # (a declared recall of ours: the next eventID, a record of this run)
        assert (node.sent, resp.height, resp.log_index) == (2, 8, 20)
    else:
        assert (node.sent, resp.record_id, resp.log_index) == (1, b"\x07" * 32, 9)
