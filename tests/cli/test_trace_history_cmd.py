"""`suyuan trace history` as a reader sees it (no node needed: a stub client)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli import main as cli_main
from cli import trace_cmd
from proto import services_pb2, types_pb2
from tests.cli.helpers import StubClient

CODE = "urn:epc:id:sgtin:0614141.107346.2017"


class _Client(StubClient):
    def trace_history(self, code: str, limit: int, page_token: str) -> services_pb2.TraceResponse:
        records = [
            types_pb2.RecordInfo(log_index=0, event_time="2026-03-01T08:00:00Z", author="farm",
                                 event_type="ObjectEvent", biz_step="commissioning"),
            types_pb2.RecordInfo(log_index=1, event_time="2005-04-03T20:33:31.116000-06:00",
                                 author="a-member-with-a-long-name", event_type="ObjectEvent",
                                 biz_step="shipping"),
        ]  # fmt: skip
        state = services_pb2.TraceNode(code=code, custodian="farm", status="active")
        return services_pb2.TraceResponse(code=code, records=records, nodes=[state])


def test_history_columns_stay_in_line_with_long_times_and_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # QA: an eventTime with a fraction and an offset pushed the later columns out of line
    monkeypatch.setattr(trace_cmd, "LedgerClient", _Client)
    out = CliRunner().invoke(
        cli_main.app, ["trace", "history", CODE, "--node", "127.0.0.1:9"], env={"COLUMNS": "200"}
    )
    assert out.exit_code == 0, out.output
    rows = [ln for ln in out.stdout.splitlines() if ln.startswith("  #")]
    assert len(rows) == 2
    assert len({r.index("ObjectEvent") for r in rows}) == 1  # the type column lines up
    assert len({r.index("farm" if "farm" in r else "a-member") for r in rows}) == 1


def test_a_code_not_known_to_a_node_of_another_chain_names_the_mismatch(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    # QA-Q: trace and recall asked of another chain's node answered "not known", a
    # believable "no such batch"
    from node.errors import ChainMismatchError, NotFoundError
    from tests.fixtures import genesis

    ours, theirs = genesis("formula-cn"), genesis("other")
    (tmp_path / "genesis.json").write_text(ours.to_json())

    class Other(StubClient):
        def trace_history(self, code: str, limit: int, page_token: str) -> None:
            raise NotFoundError(f"trace: code {code!r} is not known")

        def status(self, timeout: float | None = None) -> services_pb2.StatusResponse:
            return services_pb2.StatusResponse(chain_id="other", genesis_hash=theirs.hash)

    monkeypatch.setattr(trace_cmd, "LedgerClient", Other)
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(cli_main.app, ["trace", "history", CODE, "--node", "127.0.0.1:9"])
    assert isinstance(out.exception, ChainMismatchError)  # cli.main.run: one line, exit 3
    assert "serves chain 'other'" in str(out.exception)
    assert "not 'formula-cn' of genesis.json" in str(out.exception)

    class Ours(Other):
        def status(self, timeout: float | None = None) -> services_pb2.StatusResponse:
            return services_pb2.StatusResponse(chain_id="formula-cn", genesis_hash=ours.hash)

    monkeypatch.setattr(trace_cmd, "LedgerClient", Ours)  # this chain's node: not known
    out = CliRunner().invoke(cli_main.app, ["trace", "history", CODE, "--node", "127.0.0.1:9"])
    assert isinstance(out.exception, NotFoundError)
    assert "is not known" in str(out.exception)


def test_a_lot_known_by_its_items_is_said_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # QA-Q: "not known" from history, "lot · unknown, unknown" from trace back
    lot = "https://id.gs1.org/01/06905678001110/10/GIFT01"

    class Lot(StubClient):
        def trace_history(self, code: str, limit: int, page_token: str):
            state = services_pb2.TraceNode(code=lot, status="unknown")
            return services_pb2.TraceResponse(code=lot, records=[], nodes=[state])

    monkeypatch.setattr(trace_cmd, "LedgerClient", Lot)
    out = CliRunner().invoke(
        cli_main.app, ["trace", "history", lot, "--node", "127.0.0.1:9"], env={"COLUMNS": "200"}
    )
    assert out.exit_code == 0, out.output
    assert f"no record names {lot} itself: a lot known by the items made in it" in out.stdout
    assert trace_cmd._desc(services_pb2.TraceNode(code=lot, status="unknown")) == (
        "known by the items made in it"
    )
