"""`suyuan recall` when the forward trace hit the depth limit: report, then fail (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli import main as cli_main
from cli import recall_cmd
from node.errors import LedgerError
from node.keys import write_key_file
from node.recall import RecallResult
from proto import services_pb2
from tests.cli.helpers import StubClient
from tests.fixtures import genesis, key


class _Client(StubClient):
    def status(self, timeout: float | None = None) -> services_pb2.StatusResponse:
        return services_pb2.StatusResponse(chain_id="suyuan-test", genesis_hash=genesis().hash)


def test_a_recall_asked_of_another_chains_node_names_the_mismatch(
    files: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # QA-Q: it answered "not known", a believable "no such batch"
    from node.errors import ChainMismatchError

    class Other(StubClient):
        def status(self, timeout: float | None = None) -> services_pb2.StatusResponse:
            return services_pb2.StatusResponse(chain_id="other", genesis_hash=b"\x01" * 32)

    monkeypatch.setattr(recall_cmd, "LedgerClient", Other)
    monkeypatch.setattr(recall_cmd, "run_recall", lambda *a, **kw: pytest.fail("recalled"))
    result = CliRunner().invoke(cli_main.app, files)
    assert isinstance(result.exception, ChainMismatchError)
    assert "serves chain 'other'" in str(result.exception)


def _scope(truncated: bool) -> RecallResult:
    nodes = [services_pb2.TraceNode(code=f"urn:x:{d}", depth=d, custodian="farm") for d in range(4)]
    rec = {"record_id": "ab" * 32, "height": 7, "log_index": 9, "codes": ["urn:x:0"]}
    return RecallResult("urn:x:0", nodes, [rec], truncated=truncated)


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    (tmp_path / "g.json").write_text(genesis().to_json())
    write_key_file(tmp_path / "r.key", key("regulator"), None)
    return [
        "recall", "urn:x:0", "--key", str(tmp_path / "r.key"), "--reason", "test",
        "--node", "127.0.0.1:9", "--genesis", str(tmp_path / "g.json"),
    ]  # fmt: skip


@pytest.mark.parametrize("as_json", [False, True])
def test_truncated_scope_is_reported_and_fails(
    files: list[str], monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    monkeypatch.setattr(recall_cmd, "LedgerClient", _Client)
    monkeypatch.setattr(recall_cmd, "run_recall", lambda *a, **kw: _scope(True))
    result = CliRunner().invoke(cli_main.app, [*files, *(["--json"] if as_json else [])])
    assert isinstance(result.exception, LedgerError)  # cli.main.run: one line, exit 1
    assert result.exception.exit_code == 1
    assert "is INCOMPLETE" in str(result.exception)
    assert "urn:x:3" in str(result.exception)  # the deepest code reached
    if as_json:
        doc = json.loads(result.stdout)
        assert doc["truncated"] is True
        assert doc["frontier"] == ["urn:x:3"]
    else:
        assert "4 codes affected" in result.stdout
        # the record, named (QA: only --json named it; `record declare` needs it)
        assert f"  record {'ab' * 32} at height 7, log index 9 (1 code)\n" in result.stdout


def test_complete_scope_succeeds(files: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recall_cmd, "LedgerClient", _Client)
    monkeypatch.setattr(recall_cmd, "run_recall", lambda *a, **kw: _scope(False))
    result = CliRunner().invoke(cli_main.app, files)
    assert result.exit_code == 0, result.output


def test_a_lot_known_by_its_items_is_in_a_regulators_scope_only() -> None:
    """A lot never commissioned itself: a regulator's recall names it (so items made in it
    later are born recalled); a producer's own recall names only the items it made (the lot
    is no one's, and naming it would have the whole recall refused)."""
    from node.recall import forward_scope

    lot = "https://id.gs1.org/01/06901234123456/10/L9"
    item = lot + "/21/S1"

    class Fwd:
        def trace_forward(self, code: str, page_token: str = "") -> services_pb2.TraceResponse:
            return services_pb2.TraceResponse(code=lot, nodes=[
                services_pb2.TraceNode(code=lot, depth=0, status="unknown"),
                services_pb2.TraceNode(code=item, depth=1, status="active", commissioned_by="farm"),
            ])  # fmt: skip

    _, scope, _ = forward_scope(Fwd(), lot, lot_root=True)  # type: ignore[arg-type]
    assert [(n.code, n.is_class) for n in scope] == [(lot, True), (item, False)]
    _, scope, _ = forward_scope(Fwd(), lot)  # type: ignore[arg-type]
    assert [n.code for n in scope] == [item]


def test_a_recall_tells_sold_from_destroyed() -> None:
    # QA: the regulator's question was which units were already sold; all read "(closed)"
    nodes = [
        services_pb2.TraceNode(code="a", status="closed", disposition="retail_sold"),
        services_pb2.TraceNode(
            code="b", status="closed", disposition="urn:epcglobal:cbv:disp:destroyed"
        ),
        services_pb2.TraceNode(code="c", status="closed"),  # consumed by a transformation
        services_pb2.TraceNode(code="d", status="active", disposition="in_transit"),
        # consumed after a handoff: its last disposition tells nothing of how it closed
        services_pb2.TraceNode(code="e", status="closed", disposition="in_transit"),
    ]
    r = RecallResult("a", nodes)
    assert r.closed_as() == {"a": "retail_sold", "b": "destroyed", "c": "", "e": ""}
    assert r.closed() == ["a", "b", "c", "e"]


def test_a_rerun_names_the_recalls_already_in_force() -> None:
    n = [services_pb2.TraceNode(code=c, recalled=True, recalled_by="regulator", recalled_at=7)
         for c in ("a", "b")]  # fmt: skip
    n.append(services_pb2.TraceNode(code="c", recalled=True, recalled_by="farm", recalled_at=3))
    n.append(services_pb2.TraceNode(code="d"))
    assert RecallResult("a", n).earlier() == [
        {"by": "farm", "log_index": 3, "codes": 1},
        {"by": "regulator", "log_index": 7, "codes": 2},
    ]


def test_a_lot_a_recall_made_is_listed_as_having_no_custodian() -> None:
    # QA re-check: it read "(unknown)", as a code the node does not know
    n = [services_pb2.TraceNode(code="lot", status="recalled", recalled=True, is_class=True),
         services_pb2.TraceNode(code="x", status="unknown")]  # fmt: skip
    assert RecallResult("lot", n).by_custodian() == {"(no custodian)": ["lot"], "(unknown)": ["x"]}
    # the first recall of it, when the node does not know it yet (QA-J: "(unknown)")
    first = [services_pb2.TraceNode(code="lot", status="unknown", is_class=True)]
    assert RecallResult("lot", first).by_custodian() == {"(no custodian)": ["lot"]}


def test_a_member_a_lots_prefix_is_bound_to_recalls_it_as_a_lot() -> None:
    """With gs1_prefixes in the genesis, a producer recalls a lot under its own prefix that
    it never commissioned itself (the lot too: items made in it later are born recalled),
    and a brand owner what its contract manufacturer made (QA)."""
    from node.genesis import Genesis
    from node.recall import run_recall
    from node.records import verify_envelope

    doc = genesis().to_dict()
    for m in doc["members"]:
        if m["id"] in ("farm", "processor"):
            m["gs1_prefixes"] = ["6901234"]
    g = Genesis.from_dict(doc)
    lot = "https://id.gs1.org/01/06901234123456/10/L9"
    made = lot.replace("/10/L9", "/21/S1")  # (made by processor, its contract manufacturer)
    sent: list[Any] = []

    class Node:
        address = "127.0.0.1:1"

        def trace_forward(self, code: str, page_token: str = "") -> services_pb2.TraceResponse:
            return services_pb2.TraceResponse(code=lot, nodes=[
                services_pb2.TraceNode(code=lot, depth=0, status="unknown"),
                services_pb2.TraceNode(code=made, depth=1, status="active",
                                       commissioned_by="processor", custodian="processor"),
            ])  # fmt: skip

        def submit(self, env: Any, wait: bool, timeout: float) -> Any:
            sent.append(env)
            return services_pb2.SubmitResponse(committed=True, height=3, log_index=9)

    result = run_recall(Node(), g, key("farm"), lot, "salmonella")  # type: ignore[arg-type]
    assert result.others == {}
    [env] = sent
    ev = verify_envelope(env, g).record.event
    assert ev["quantityList"] == [{"epcClass": lot}]
    assert ev["epcList"] == [made]
    # a member the prefix is not bound to is refused, as before
    with pytest.raises(LedgerError, match="or a member its GS1 company prefix is bound to"):
        run_recall(Node(), g, key("retailer"), lot, "x")  # type: ignore[arg-type]
