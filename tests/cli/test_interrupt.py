"""Ctrl-C while the CLI waits for a node: what was sent, and what was done, is named (it
printed nothing, though the node may have committed the record). The node here is a stub
Ledger on 127.0.0.1 whose Submit does not answer (a node that cannot commit)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from node.convert import envelope_from_proto
from node.keys import write_key_file
from node.records import make_record, sign_record
from proto import services_pb2, services_pb2_grpc
from tests.cli.helpers import SUYUAN
from tests.fixtures import genesis, key, object_event


class _Silent(services_pb2_grpc.LedgerServicer):
    """Answers the first ``answered`` Submits as committed, then holds the next one."""

    def __init__(self, answered: int = 0) -> None:
        self.answered = answered
        self.calls = 0
        self.called = threading.Event()  # the held Submit has arrived
        self.release = threading.Event()

    def Submit(self, request, context):
        self.calls += 1
        if self.calls <= self.answered:
            return services_pb2.SubmitResponse(committed=True, height=3, log_index=7)
        self.called.set()
        self.release.wait(30)
        context.abort(grpc.StatusCode.UNAVAILABLE, "gone")

    def SubmitStream(self, request_iterator, context):  # (an import's batches)
        for batch in request_iterator:
            self.calls += 1
            n = len(batch.envelopes)
            yield services_pb2.SubmitBatchResult(
                batch_id=batch.batch_id, results=[services_pb2.SubmitResult()] * n
            )  # every record admitted
            if self.calls <= self.answered:
                yield services_pb2.SubmitBatchResult(
                    batch_id=batch.batch_id,
                    committed=True,
                    results=[
                        services_pb2.SubmitResult(
                            record_id=envelope_from_proto(e).record_id, height=3, log_index=7 + i
                        )
                        for i, e in enumerate(batch.envelopes)
                    ],
                )
                continue
            self.called.set()
            self.release.wait(30)
            context.abort(grpc.StatusCode.UNAVAILABLE, "gone")

    def TraceHistory(self, request, context):  # (an import looks its events' ids up first)
        return services_pb2.TraceResponse()


def _interrupted(
    tmp_path: Path, servicer: _Silent | _Hung, *args: str, sig: int = signal.SIGINT
) -> tuple[int, str, str, str]:
    """Run ``suyuan ARGS --node STUB``, SIGINT it once the held Submit arrives; returns
    (exit code, stdout, stderr, the stub's address)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services_pb2_grpc.add_LedgerServicer_to_server(servicer, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    proc = subprocess.Popen(
        [SUYUAN, *args, "--node", address],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "SUYUAN_TESTNET"},
    )
    try:
        assert servicer.called.wait(30), "the CLI never reached the held Submit"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        servicer.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        server.stop(0)
    return proc.returncode, out, err, address


def test_ctrl_c_while_waiting_names_the_record(tmp_path):
    env = sign_record(make_record(genesis(), "farm", object_event(["urn:qa:int:1"])), key("farm"))
    (tmp_path / "env.json").write_text(env.to_json())
    args = ("record", "submit", "--envelope", "env.json", "--wait")
    rc, _, err, address = _interrupted(tmp_path, _Silent(), *args)
    assert rc == 130, err
    rid = env.record_id.hex()
    assert err.strip() == (
        f"interrupted: record {rid} was sent to {address}; its outcome is unknown: "
        f"`suyuan record get {rid} --node {address}` tells"  # (QA: --node was left out)
    )


def _three_batches(tag: str) -> dict[str, object]:
    """A document an import sends as three batches (an error declaration starts one):
    event 0; events 1 (a declaration of event 0) and 2; event 3."""
    first = dict(
        object_event([f"urn:qa:{tag}:0"]), eventID="urn:uuid:00000000-0000-4000-8000-0000000000a0"
    )
    declared = dict(first, errorDeclaration={"declarationTime": "2026-03-02T08:00:00Z"})
    again = dict(first, eventID="urn:uuid:00000000-0000-4000-8000-0000000000a1",
                 errorDeclaration={"declarationTime": "2026-03-02T08:00:00Z"})  # fmt: skip
    events = [first, declared, object_event([f"urn:qa:{tag}:2"]), again]
    return {"type": "EPCISDocument", "epcisBody": {"eventList": events}}


def test_ctrl_c_during_epcis_import_reports_what_was_imported(tmp_path):
    (tmp_path / "genesis.json").write_text(genesis().to_json())
    write_key_file(tmp_path / "farm.key", key("farm"), None)
    (tmp_path / "doc.json").write_text(json.dumps(_three_batches("int")))
    args = ("epcis", "import", "doc.json", "--key", "farm.key", "--genesis", "genesis.json")
    rc, out, err, _ = _interrupted(tmp_path, _Silent(answered=1), *args)
    assert rc == 130, err
    lines = out.splitlines()
    assert lines[0].startswith("  event   0: imported ")
    assert lines[0].endswith("(log index 7)")
    for i in (1, 2):  # the second batch: sent, no answer
        assert lines[i].startswith(f"  event   {i}: unknown ")
        assert "interrupted while submitting" in lines[i]
    assert lines[3:] == ["1 of 4 events imported"]  # event 3, of a third batch, was never sent
    assert err.startswith("interrupted: 1 event(s) imported")


def test_sigterm_during_epcis_import_reports_too_with_exit_143(tmp_path):
    # QA: stopped by `timeout` (SIGTERM), an import left an empty report
    (tmp_path / "genesis.json").write_text(genesis().to_json())
    write_key_file(tmp_path / "farm.key", key("farm"), None)
    (tmp_path / "doc.json").write_text(json.dumps(_three_batches("term")))
    args = ("epcis", "import", "doc.json", "--key", "farm.key", "--genesis", "genesis.json",
            "--json")  # fmt: skip
    rc, out, err, _ = _interrupted(tmp_path, _Silent(answered=1), *args, sig=signal.SIGTERM)
    assert rc == 143, err
    report = json.loads(out)
    assert [e["status"] for e in report["events"]] == ["imported", "unknown", "unknown"]
    assert err.startswith("interrupted: 1 event(s) imported")


def _against(servicer: _Silent, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``suyuan ARGS --node STUB`` to its end against a stub that holds every Submit."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services_pb2_grpc.add_LedgerServicer_to_server(servicer, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        return subprocess.run(
            [SUYUAN, *args, "--node", address],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        servicer.release.set()
        server.stop(0)


class _SilentRecall(_Silent):
    """Traces one code forward; holds the recall's Submit."""

    def TraceForward(self, request, context):
        node = services_pb2.TraceNode(code=request.code, relation="root", status="active")
        return services_pb2.TraceResponse(code=request.code, nodes=[node])


def test_a_recall_whose_submit_times_out_names_its_record(tmp_path):
    # QA: with two of four validators down, `recall` said only "timed out: Deadline
    # Exceeded" after 60 s (no --timeout), and the recall committed later unnamed
    (tmp_path / "genesis.json").write_text(genesis().to_json())
    write_key_file(tmp_path / "regulator.key", key("regulator"), None)
    res = _against(
        _SilentRecall(),
        tmp_path,
        "recall",
        "urn:qa:recall:1",
        "--key",
        "regulator.key",
        "--reason",
        "test",
        "--genesis",
        "genesis.json",
        "--timeout",
        "1",
    )
    assert res.returncode == 5, res.stderr
    [line] = res.stderr.strip().splitlines()
    assert re.search(r"recall record [0-9a-f]{64} \(0 of 1 committed before it\): its outcome is "
                     r"unknown; `suyuan record get [0-9a-f]{64} --node 127.0.0.1:\d+` tells",
                     line), line  # fmt: skip


def test_a_json_submit_whose_outcome_is_unknown_names_the_record_on_stdout(tmp_path):
    # QA: `record submit --wait --json` that timed out printed nothing on stdout
    env = sign_record(make_record(genesis(), "farm", object_event(["urn:qa:json:1"])), key("farm"))
    (tmp_path / "env.json").write_text(env.to_json())
    res = _against(
        _Silent(),
        tmp_path,
        "record",
        "submit",
        "--envelope",
        "env.json",
        "--wait",
        "--json",
        "--timeout",
        "1",
    )
    assert res.returncode == 5, res.stderr
    out = json.loads(res.stdout)
    assert out["record_id"] == env.record_id.hex()
    assert out["committed"] is False
    assert out["sent"] is True
    assert "outcome is unknown" in out["error"]


def test_sigterm_while_waiting_names_the_record_with_exit_143(tmp_path):
    # QA: SIGTERM during `record submit --wait` exited 143 with nothing on stderr
    env = sign_record(make_record(genesis(), "farm", object_event(["urn:qa:term:9"])), key("farm"))
    (tmp_path / "env.json").write_text(env.to_json())
    args = ("record", "submit", "--envelope", "env.json", "--wait")
    rc, _, err, address = _interrupted(tmp_path, _Silent(), *args, sig=signal.SIGTERM)
    assert rc == 143, err
    assert err.strip().startswith(
        f"interrupted: record {env.record_id.hex()} was sent to {address}"
    )


class _Hung(services_pb2_grpc.LedgerServicer):
    """Answers nothing: a node that is paused (SIGSTOP) or hung."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.release = threading.Event()

    def Status(self, request, context):
        self.called.set()
        self.release.wait(30)
        context.abort(grpc.StatusCode.UNAVAILABLE, "gone")


@pytest.mark.parametrize(("sig", "rc"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_call_to_a_hung_node_is_an_interruption(tmp_path, sig, rc):
    # QA: SIGTERM exited 130 saying nothing (typer's own exit), and Ctrl-C read as a node
    # timing out, exit 5
    got, _, err, _ = _interrupted(tmp_path, _Hung(), "node", "status", "--timeout", "30",
                                  sig=sig)  # fmt: skip
    assert got == rc, err
    assert err.strip().startswith("interrupted"), err


def test_a_json_accept_whose_outcome_is_unknown_names_the_record_on_stdout(tmp_path):
    # QA: `handoff accept --wait --json` timed out after 10 s (no --timeout) with nothing on
    # stdout
    (tmp_path / "genesis.json").write_text(genesis().to_json())
    write_key_file(tmp_path / "slaughterhouse.key", key("slaughterhouse"), None)
    ev = object_event(["urn:qa:acc:1"], "shipping", "OBSERVE")
    offer = sign_record(
        make_record(genesis(), "farm", ev, handoff_to="slaughterhouse"), key("farm")
    )
    (tmp_path / "offer.json").write_text(offer.to_json())
    res = _against(
        _Silent(),
        tmp_path,
        "handoff",
        "accept",
        "offer.json",
        "--key",
        "slaughterhouse.key",
        "--genesis",
        "genesis.json",
        "--wait",
        "--timeout",
        "1",
        "--json",
    )
    assert res.returncode == 5, res.stderr
    out = json.loads(res.stdout)
    assert out["committed"] is False
    assert out["record_id"] in res.stderr
    assert "its outcome is unknown" in res.stderr


def test_an_interrupted_recall_names_its_record_in_flight(tmp_path):
    # QA: Ctrl-C or SIGTERM during `recall` said only "interrupted"; the recall committed later
    (tmp_path / "genesis.json").write_text(genesis().to_json())
    write_key_file(tmp_path / "regulator.key", key("regulator"), None)
    args = ("recall", "urn:qa:recall:2", "--key", "regulator.key", "--reason", "test",
            "--genesis", "genesis.json", "--json")  # fmt: skip
    rc, out, err, address = _interrupted(tmp_path, _SilentRecall(), *args, sig=signal.SIGTERM)
    assert rc == 143, err
    rid = json.loads(out)["record_id"]
    assert err.strip().startswith(f"interrupted: record {rid} was sent to {address}")


def test_a_call_interrupted_by_a_signal_is_cancelled_and_its_channel_closes():
    # QA (a loaded machine): KeyboardInterrupt raised by the signal handler inside gRPC's
    # locks left one held, and the channel's close then waited for ever. The handler now
    # cancels the call from another thread; the caller raises KeyboardInterrupt itself.
    from node import client as client_mod

    servicer = _Silent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services_pb2_grpc.add_LedgerServicer_to_server(servicer, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    env = sign_record(make_record(genesis(), "farm", object_event(["urn:qa:int:9"])), key("farm"))
    interrupted: list[bool] = []

    def signal_when_held() -> None:
        if servicer.called.wait(30):
            interrupted.append(client_mod.interrupt_calls())

    helper = threading.Thread(target=signal_when_held, daemon=True)
    helper.start()
    client = client_mod.LedgerClient(address, timeout=60)
    try:
        with pytest.raises(KeyboardInterrupt):
            client.submit(env, wait=True)
        helper.join(10)
        assert len(interrupted) == 1  # (False: the Submit reached the stub before the call
        # was registered; it was cancelled as it was)
        with pytest.raises(KeyboardInterrupt):  # every later call stops at once
            client.status()
        closing = threading.Thread(target=client.close, daemon=True)
        closing.start()
        closing.join(10)
        assert not closing.is_alive(), "the channel's close hung"
    finally:
        client_mod._IN_FLIGHT.requested = False  # (this process goes on testing)
        servicer.release.set()
        server.stop(0)
        helper.join(10)
