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


def test_a_record_the_build_fails_on_is_dropped_and_the_rest_commit(tmp_path: Path, caplog) -> None:
    """Review: an exception other than ``InputError`` from ``build_block`` (a rule's bug on a
    pending record) ended the proposal task without a word, and the validator proposed
    nothing; a first mend proposed empty blocks, for ever, with the record still at the
    head of the pool. The records the build fails on are now found one by one and dropped
    (their senders told), and the rest commit."""
    import asyncio
    import logging

    from tests.node.livenode import solo_genesis

    caplog.set_level(logging.INFO, logger="suyuan.node")
    g = solo_genesis()

    async def body() -> None:
        async with live_node(config(tmp_path, "v0"), g) as live:
            node = live.node
            real = node.chain.build_block
            bug = signed(g, "urn:x:bug")

            def build(height, round_, proposer, cands, *a, **kw):
                if any(pb.payload == bug.payload for pb, _ in cands):
                    raise TypeError("a rule's bug")
                return real(height, round_, proposer, cands, *a, **kw)

            node.chain.build_block = build  # type: ignore[method-assign,assignment]
            await live.stub.Submit(services_pb2.SubmitRequest(envelope=bug), timeout=10)
            good = signed(g, "urn:x:fine")
            await live.stub.Submit(services_pb2.SubmitRequest(envelope=good), timeout=10)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while node.store.head().log_size < 1:
                assert loop.time() < deadline, "the good record was not committed"
                await asyncio.sleep(0.05)  # poll the condition until the deadline
            assert node.store.head().log_size == 1
            assert len(node.mempool) == 0  # the bad one dropped, not proposed for ever
            assert node.store.get_envelope(_rid(good)) is not None

    run(body)
    assert "finding the records it fails on" in caplog.text
    assert "cannot be checked (TypeError: a rule's bug)" in caplog.text


def _rid(pb) -> bytes:
    import hashlib

    return hashlib.sha256(pb.payload).digest()


def test_trace_queries_run_in_their_own_threads(tmp_path: Path, monkeypatch) -> None:
    """Review: trace pages ran in the event loop's default executor, where the consensus
    work (sign state, validation, commit) queues too; a burst of queries delayed a commit
    by seconds. They run in the service's own read threads."""
    import threading

    from node import trace

    seen: list[str] = []
    real = trace.trace_forward

    def spy(*a, **kw):
        seen.append(threading.current_thread().name)
        return real(*a, **kw)

    monkeypatch.setattr(trace, "trace_forward", spy)

    async def body() -> None:
        async with live_node(config(tmp_path, "v1"), G) as live:
            req = services_pb2.TraceRequest(code="urn:x:nothing")
            err = await rpc_error(live.stub.TraceForward(req, timeout=10))
            assert err.code() == grpc.StatusCode.NOT_FOUND

    run(body)
    assert len(seen) == 1
    assert seen[0].startswith("suyuan-reads")
