"""`suyuan record get` tells a pending record from a committed one (no node needed)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli import main as cli_main
from cli import record_cmd
from node.convert import envelope_to_proto
from node.records import make_record, sign_record
from proto import services_pb2, types_pb2
from tests.cli.helpers import StubClient
from tests.fixtures import genesis, key, object_event

ENV = sign_record(make_record(genesis(), "farm", object_event(["urn:x:1"])), key("farm"))


def _client(height: int, log_index: int) -> type:
    class Client(StubClient):
        def get_record(self, rid: bytes) -> services_pb2.RecordResponse:
            info = types_pb2.RecordInfo(
                record_id=rid, height=height, log_index=log_index, author="farm"
            )
            return services_pb2.RecordResponse(envelope=envelope_to_proto(ENV), info=info)

    return Client


ARGS = ["record", "get", ENV.record_id.hex(), "--node", "127.0.0.1:9"]


def test_pending_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_cmd, "LedgerClient", _client(0, 0))
    text = CliRunner().invoke(cli_main.app, ARGS)
    assert text.exit_code == 0, text.output
    assert "pending (not yet committed)" in text.stdout
    assert "height" not in text.stdout
    doc = json.loads(CliRunner().invoke(cli_main.app, [*ARGS, "--json"]).stdout)
    assert doc["committed"] is False
    assert doc["height"] is None
    assert doc["log_index"] is None


def test_committed_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_cmd, "LedgerClient", _client(3, 0))
    text = CliRunner().invoke(cli_main.app, ARGS)
    assert "at height 3, log index 0" in text.stdout
    doc = json.loads(CliRunner().invoke(cli_main.app, [*ARGS, "--json"]).stdout)
    assert (doc["committed"], doc["height"], doc["log_index"]) == (True, 3, 0)
