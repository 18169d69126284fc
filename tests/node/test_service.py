"""The Ledger service of an in-process node over a real gRPC channel: status codes of
refusals (issue #5, "Submission")."""

from __future__ import annotations

from pathlib import Path

import grpc

from proto import services_pb2
from tests.fixtures import genesis
from tests.node.livenode import config, live_node, rpc_error, run, signed


def test_config_record_limit_applies_at_submit_only(tmp_path: Path) -> None:
    g = genesis()
    big = signed(g, "urn:x:big", attributes={"blob": "x" * 5000})

    async def body() -> None:
        cfg = config(tmp_path, "v1", limits={"max_record_bytes": 2000})
        async with live_node(cfg, g) as live:
            err = await rpc_error(live.stub.Submit(services_pb2.SubmitRequest(envelope=big)))
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "this node's limit is 2000" in (err.details() or "")
            # a block carrying the same record (within the genesis limit) is valid here
            block, dropped = live.node.chain.build_block(
                1, 0, "v1", [(big, live.node.chain.verify(big))]
            )
            assert not dropped
            live.node.chain._prepared.clear()  # validate it as another node would
            live.node.chain.validate_block(block)

    run(body)


def test_malformed_request_bytes_are_invalid_argument(tmp_path: Path) -> None:
    g = genesis()
    garbage = b"\x0a\xff\xff\xff"  # field 1, length-delimited, length runs past the end

    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), g) as live:
            ch = live.channel
            for path in ("/suyuan.v1.Ledger/Submit", "/suyuan.v1.Ledger/GetRecord"):
                raw = ch.unary_unary(path, None, None)
                err = await rpc_error(raw(garbage, timeout=10))
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
                assert "malformed" in (err.details() or "")
            blocks = ch.unary_stream("/suyuan.v1.Ledger/StreamBlocks", None, None)
            err = await rpc_error(blocks(garbage, timeout=10).read())
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
            stream = ch.stream_stream("/suyuan.v1.Ledger/SubmitStream", None, None)
            err = await rpc_error(stream(iter([garbage]), timeout=10).read())
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
            # the server still answers well-formed requests
            status = await live.stub.Status(services_pb2.StatusRequest(), timeout=10)
            assert status.member == "v1"

    run(body)


def test_replay_of_a_pending_record_is_already_exists(tmp_path: Path) -> None:
    g = genesis()  # four validators, one running: nothing commits, records stay pending
    env = signed(g, "urn:x:pending")

    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), g) as live:
            first = await live.stub.Submit(services_pb2.SubmitRequest(envelope=env), timeout=10)
            assert len(live.node.mempool) == 1
            err = await rpc_error(
                live.stub.Submit(services_pb2.SubmitRequest(envelope=env), timeout=10)
            )
            assert err.code() == grpc.StatusCode.ALREADY_EXISTS
            assert f"record {first.record_id.hex()} is already pending" in (err.details() or "")

            # a batch says the same for that record
            call = live.stub.SubmitStream(
                iter([services_pb2.SubmitBatch(envelopes=[env], batch_id=7)]), timeout=10
            )
            result: services_pb2.SubmitBatchResult = await call.read()
            call.cancel()
            assert result.results[0].code == grpc.StatusCode.ALREADY_EXISTS.value[0]
            # resubmitting with wait (a client retrying) still waits for the commit
            again = await live.stub.Submit(
                services_pb2.SubmitRequest(envelope=env, wait=True), timeout=1.0
            )
            assert again.record_id == first.record_id
            assert not again.committed
            assert len(live.node.mempool) == 1

    run(body)


def test_interceptor_keeps_context_write_handlers_working() -> None:
    """grpc.health's Watch writes with context.write (not an async generator)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_health.v1._async import HealthServicer

    from node.grpc_errors import MalformedRequests

    async def body() -> None:
        server = grpc.aio.server(interceptors=[MalformedRequests()])
        hs = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(hs, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            await hs.set("", health_pb2.HealthCheckResponse.SERVING)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                watch = health_pb2_grpc.HealthStub(ch).Watch(
                    health_pb2.HealthCheckRequest(), timeout=10
                )
                first = await watch.read()
                assert first.status == health_pb2.HealthCheckResponse.SERVING
                watch.cancel()
                raw = ch.unary_stream("/grpc.health.v1.Health/Watch", None, None)
                err = await rpc_error(raw(b"\x0a\xff", timeout=10).read())
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await server.stop(0)

    run(body)


def test_a_too_deep_record_in_a_batch_is_refused_alone(tmp_path: Path) -> None:
    """Regression: one signed record nesting 5,000 arrays deep failed its whole batch (the
    parser's RecursionError escaped); now it alone is INVALID_ARGUMENT."""
    from node.convert import envelope_from_proto, envelope_to_proto
    from tests.fixtures import key

    g = genesis()
    good = signed(g, "urn:x:good")
    base = envelope_from_proto(signed(g, "urn:x:deep"))
    payload = base.payload.replace(
        b'"author"', b'"attributes":{"x":' + b"[" * 5000 + b"]" * 5000 + b'},"author"'
    )
    unsigned = type(base)(payload)
    deep = envelope_to_proto(
        unsigned.with_signature("farm", key("farm").sign(unsigned.signed_bytes()))
    )

    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), g) as live:
            call = live.stub.SubmitStream(
                iter([services_pb2.SubmitBatch(envelopes=[deep, good], batch_id=1)]), timeout=10
            )
            result: services_pb2.SubmitBatchResult = await call.read()
            call.cancel()
            assert result.results[0].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert "nests deeper than 64 levels" in result.results[0].message
            assert result.results[1].code == 0
            assert len(live.node.mempool) == 1

    run(body)
