"""LedgerClient against an in-process fake Ledger server: calls, and the one error mapping."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from node import errors
from node.client import LedgerClient, RemoteRuleError
from node.envelope import Envelope, Signature
from proto import services_pb2, services_pb2_grpc, types_pb2


class FakeLedger(services_pb2_grpc.LedgerServicer):
    """Submit answers with the status code named in the payload ("code:NAME")."""

    def __init__(self) -> None:
        self.seen: list[types_pb2.Envelope] = []

    def Submit(self, request, context):
        self.seen.append(request.envelope)
        text = request.envelope.payload.decode()
        if text.startswith("code:"):
            name, _, msg = text[5:].partition(":")
            context.abort(getattr(grpc.StatusCode, name), msg)
        return services_pb2.SubmitResponse(
            record_id=b"\x01" * 32, committed=request.wait, height=7, log_index=3
        )

    def Status(self, request, context):
        return services_pb2.StatusResponse(chain_id="c", height=5, head_hash=b"\xab" * 32)

    def GetRecord(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, f"record {request.record_id.hex()} not found")

    def StreamBlocks(self, request, context):
        for h in range(1, 4):
            yield types_pb2.CommittedBlock(certificate=types_pb2.CommitCertificate(height=h))
        context.abort(grpc.StatusCode.INTERNAL, "disk on fire")


@pytest.fixture
def served():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    fake = FakeLedger()
    services_pb2_grpc.add_LedgerServicer_to_server(fake, server)
    hs = health.HealthServicer()
    hs.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with LedgerClient(f"127.0.0.1:{port}", timeout=5) as c:
            yield c, fake
    finally:
        server.stop(0).wait(5)


def test_submit_sends_envelope_and_returns_response(served):
    client, fake = served
    env = Envelope(b"hello", signatures=(Signature("farm", b"s" * 64),))
    resp = client.submit(env, wait=True)
    assert (resp.committed, resp.height, resp.log_index) == (True, 7, 3)
    assert fake.seen[0].payload == b"hello"
    assert fake.seen[0].signatures[0].keyid == "farm"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("INVALID_ARGUMENT", errors.InputError),
        ("UNAUTHENTICATED", errors.VerificationError),
        ("PERMISSION_DENIED", errors.MembershipError),
        ("ALREADY_EXISTS", errors.ReplayError),
        ("RESOURCE_EXHAUSTED", errors.OverloadError),
        ("FAILED_PRECONDITION", RemoteRuleError),
        ("NOT_FOUND", errors.NotFoundError),
        ("UNAVAILABLE", errors.NodeUnavailableError),
        ("DATA_LOSS", errors.DamagedStoreError),  # the node's store is damaged: exit 4
        ("UNIMPLEMENTED", errors.NodeUnavailableError),  # not a Suyuan node: exit 5
    ],
)
def test_status_codes_map_to_ledger_errors_keeping_the_message(served, code, cls):
    client, _ = served
    with pytest.raises(cls) as ei:
        client.submit(Envelope(f"code:{code}:because reasons".encode()))
    assert type(ei.value) is cls
    assert "because reasons" in str(ei.value)


def test_failed_precondition_is_a_rule_error_with_the_rule_name(served):
    client, _ = served
    with pytest.raises(errors.RuleError) as ei:
        client.submit(Envelope(b"code:FAILED_PRECONDITION:rule custody: not the custodian"))
    assert ei.value.rule == "custody"
    assert str(ei.value) == "rule custody: not the custodian"


def test_unknown_code_is_plain_ledger_error(served):
    client, _ = served
    with pytest.raises(errors.LedgerError, match="INTERNAL: boom"):
        client.submit(Envelope(b"code:INTERNAL:boom"))


def test_status_and_not_found(served):
    client, _ = served
    assert client.status().height == 5
    with pytest.raises(errors.NotFoundError, match="not found"):
        client.get_record(b"\x02" * 32)


def test_stream_errors_are_mapped_midway(served):
    client, _ = served
    got: list[int] = []
    with pytest.raises(errors.LedgerError, match="disk on fire"):
        got.extend(b.certificate.height for b in client.stream_blocks())
    assert got == [1, 2, 3]


def test_health(served):
    client, _ = served
    assert client.healthy()
    assert not client.healthy(service="no-such-service")


def test_unreachable_node_names_the_address():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with LedgerClient(f"127.0.0.1:{port}", timeout=1) as c:
        with pytest.raises(errors.NodeUnavailableError, match=f"127.0.0.1:{port}"):
            c.status()
        assert not c.healthy(timeout=0.5)


def test_same_event_compares_event_and_author_not_the_signing():
    from node.client import same_event
    from node.records import make_record, sign_record
    from tests.fixtures import genesis, key, object_event

    g = genesis()
    ev = {**object_event(["urn:epc:id:sgtin:6901234.012345.1"]), "eventID": "urn:uuid:1"}

    def payload(author: str, event: dict[str, Any], category: str = "meat") -> bytes:
        return sign_record(make_record(g, author, event, category=category), key(author)).payload

    a = payload("farm", ev)
    assert same_event(a, payload("farm", ev))  # signed anew: another nonce
    assert a != payload("farm", ev)
    assert not same_event(a, payload("processor", ev))
    assert not same_event(a, payload("farm", {**ev, "bizStep": "inspecting"}))
    assert not same_event(a, payload("farm", ev, category="dairy"))
    assert not same_event(a, b"not a record")
    # one event written two ways (QA re-check: another offset, or a Digital Link, was not
    # taken for a retry though it derives the same eventID)
    utc = {**ev, "eventTime": "2026-03-01T00:00:00Z", "eventTimeZoneOffset": "+00:00"}
    assert same_event(a, payload("farm", utc))
    dl = {**ev, "epcList": ["https://id.gs1.org/01/06901234123456/21/1"]}
    assert same_event(a, payload("farm", dl))
    assert not same_event(a, payload("farm", {**ev, "eventTime": "2026-03-01T00:00:01Z"}))
    # an error declaration run again: its declarationTime is stamped anew, the rest repeats
    decl = {**ev, "errorDeclaration": {"declarationTime": "2026-03-02T00:00:00Z",
                                       "reason": "did_not_occur"}}  # fmt: skip
    later = {**decl, "errorDeclaration": {**decl["errorDeclaration"],
                                          "declarationTime": "2026-03-02T00:05:00Z"}}  # fmt: skip
    assert same_event(payload("farm", decl), payload("farm", later))
    other = {**decl, "errorDeclaration": {**decl["errorDeclaration"], "reason": "incorrect_data"}}
    assert not same_event(payload("farm", decl), payload("farm", other))


def test_a_stream_cut_short_is_said_plainly() -> None:
    # QA: "timed out: Stream removed (Deadline Exceeded)" in an import's exit-5 line
    import grpc

    from node.client import map_rpc_error
    from node.errors import NodeUnavailableError

    class Cut(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode, details: str) -> None:
            self._code, self._details = code, details

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return self._details

    err = map_rpc_error(
        Cut(grpc.StatusCode.DEADLINE_EXCEEDED, "Stream removed (Deadline Exceeded)"), "h:1"
    )
    assert isinstance(err, NodeUnavailableError)
    assert str(err) == (
        "node h:1 timed out: deadline exceeded (no answer in time: is it paused, hung or "
        "overloaded?)"
    )
    err = map_rpc_error(Cut(grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)"), "h:1")
    assert str(err) == "node h:1 is unreachable: socket closed"
