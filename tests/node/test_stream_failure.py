"""A batch of ``SubmitStream`` that fails in the node ends the stream with an error status,
not OK without its result (review: the client's ``next(answers)`` then hit
``StopIteration``, which nothing caught)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from proto import services_pb2
from tests.fixtures import genesis
from tests.node.livenode import config, live_node, rpc_error, run, signed

G = genesis()


@pytest.mark.parametrize("fails_with", ["bug", "storage"])
def test_a_failed_batch_ends_the_stream_with_its_status(tmp_path: Path, fails_with: str) -> None:
    from node.errors import StorageError

    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), G) as live:
            node = live.node

            def admit(*a: object, **kw: object) -> bool:
                raise TypeError("a rule's bug")

            def checks(*a: object, **kw: object) -> object:
                raise StorageError("cannot read the store (test)")

            if fails_with == "bug":
                node.admit = admit  # type: ignore[method-assign]
            else:
                node.chain.admission_checks = checks  # type: ignore[method-assign,assignment]
            batch = services_pb2.SubmitBatch(envelopes=[signed(G, "urn:x:s1")], batch_id=1)
            stream = live.stub.SubmitStream(iter([batch]), timeout=10)

            async def drain() -> None:
                async for _ in stream:
                    pass

            err = await rpc_error(drain())
            if fails_with == "bug":
                assert err.code() == grpc.StatusCode.INTERNAL
                assert "a batch could not be checked (TypeError: a rule's bug)" in (
                    err.details() or ""
                )
            else:
                assert err.code() == grpc.StatusCode.INTERNAL
                assert err.details() == "cannot read the store (test)"

    run(body)


def test_a_proposal_that_cannot_be_built_is_proposed_empty(tmp_path: Path, caplog) -> None:
    """Review: an exception other than ``InputError`` from ``build_block`` (a rule's bug on a
    pending record) ended the proposal task without a word, and the validator proposed
    nothing. It now logs it and proposes an empty block, so the chain goes on."""
    import asyncio

    from tests.node.livenode import solo_genesis

    g = solo_genesis()

    async def body() -> None:
        async with live_node(config(tmp_path, "v0"), g) as live:
            node = live.node
            real = node.chain.build_block

            def build(height, round_, proposer, cands, *a, **kw):
                if cands:
                    raise TypeError("a rule's bug")
                return real(height, round_, proposer, cands, *a, **kw)

            node.chain.build_block = build  # type: ignore[method-assign,assignment]
            await live.stub.Submit(
                services_pb2.SubmitRequest(envelope=signed(g, "urn:x:bug")), timeout=10
            )
            start = node.store.head().height
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while node.store.head().height < start + 2:
                assert loop.time() < deadline, "no block was committed"
                await asyncio.sleep(0.05)  # poll the condition until the deadline
            assert node.store.head().log_size == 0  # the blocks were empty
            assert len(node.mempool) == 1  # the record waits (its rule's bug is logged)

    run(body)
    assert "failed; proposing it empty" in caplog.text
