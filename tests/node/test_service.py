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
                1, 0, "v1", [(big, live.node.chain.verify(big))], 1
            )
            assert not dropped
            live.node.chain._prepared.clear()  # validate it as another node would
            live.node.chain.validate_block(block)

    run(body)
