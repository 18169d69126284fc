"""Ctrl-C while `record submit --wait` waits: the record and how to find its outcome are
named (it printed nothing, though the node may have committed the record)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from concurrent import futures

import grpc

from node.keys import write_key_file
from node.records import make_record, sign_record
from proto import services_pb2, services_pb2_grpc
from tests.cli.helpers import SUYUAN
from tests.fixtures import genesis, key, object_event


class _Silent(services_pb2_grpc.LedgerServicer):
    """A Ledger whose Submit never answers (a node that cannot commit)."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.release = threading.Event()

    def Submit(self, request, context):
        self.called.set()
        self.release.wait(30)
        context.abort(grpc.StatusCode.UNAVAILABLE, "gone")


def test_ctrl_c_while_waiting_names_the_record(tmp_path):
    g = genesis()
    env = sign_record(make_record(g, "farm", object_event(["urn:qa:int:1"])), key("farm"))
    (tmp_path / "env.json").write_text(env.to_json())
    servicer = _Silent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services_pb2_grpc.add_LedgerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    proc = subprocess.Popen(
        [
            SUYUAN,
            "record",
            "submit",
            "--envelope",
            "env.json",
            "--node",
            f"127.0.0.1:{port}",
            "--wait",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "SUYUAN_TESTNET"},
    )
    try:
        assert servicer.called.wait(30), "the CLI never reached Submit"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        servicer.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        server.stop(0)
    assert proc.returncode == 130, err
    rid = env.record_id.hex()
    assert err.strip() == (
        f"interrupted: record {rid} was sent to 127.0.0.1:{port}; its outcome is unknown: "
        f"`suyuan record get {rid}` tells"
    )


class _OneThenSilent(_Silent):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def Submit(self, request, context):
        self.calls += 1
        if self.calls == 1:
            return services_pb2.SubmitResponse(record_id=b"", committed=True, height=3, log_index=7)
        return super().Submit(request, context)


def test_ctrl_c_during_epcis_import_reports_what_was_imported(tmp_path):
    # it printed nothing, though events before the interrupt were committed
    g = genesis()
    (tmp_path / "genesis.json").write_text(g.to_json())
    write_key_file(tmp_path / "farm.key", key("farm"), None)
    doc = {
        "type": "EPCISDocument",
        "epcisBody": {"eventList": [object_event([f"urn:qa:int:{i}"]) for i in range(3)]},
    }
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    servicer = _OneThenSilent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services_pb2_grpc.add_LedgerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    proc = subprocess.Popen(
        [
            SUYUAN,
            "epcis",
            "import",
            "doc.json",
            "--key",
            "farm.key",
            "--genesis",
            "genesis.json",
            "--node",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "SUYUAN_TESTNET"},
    )
    try:
        assert servicer.called.wait(30), "the import never reached its second Submit"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        servicer.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        server.stop(0)
    assert proc.returncode == 130, err
    lines = out.splitlines()
    assert lines[0].startswith("  event   0: imported ")
    assert lines[0].endswith("(log index 7)")
    assert lines[1].startswith("  event   1: unknown ")
    assert "interrupted while submitting" in out
    assert lines[2:] == ["1 of 3 events imported"]  # event 2 was never sent
    assert err.startswith("interrupted: 1 event(s) imported")
