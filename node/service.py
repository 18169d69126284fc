"""gRPC servicers: the client-facing ``Ledger`` and the validator-facing ``Peer``.

Handlers are thin: they translate protobuf to domain calls on the ``Node`` and let
``node.grpc_errors`` turn a ``LedgerError`` into its status code. Nothing here changes
chain state except through ``Node.admit`` (mempool) and the replica's event queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from node import event_ids, proposals, trace
from node.errors import (
    InputError,
    LedgerError,
    NotFoundError,
    OverloadError,
    ReplayError,
    RuleError,
    TooLargeError,
)
from node.grpc_errors import rpc, rpc_stream, status_code
from node.indexes import StoreTraceIndex
from node.node import Node
from node.peerauth import HELLO_NONCE_BYTES, hello_proof_bytes, link_problem
from node.readback import committed_by_id, committed_envelope
from node.records import TraceRecord, VerifiedRecord
from node.store import damaged
from proto import consensus_pb2, services_pb2, services_pb2_grpc, types_pb2

log = logging.getLogger("suyuan.rpc")
Ctx = grpc.aio.ServicerContext[Any, Any]
_WAIT_DEFAULT_S = 30.0
#: envelopes one ``SubmitBatch`` may carry (QA-Y: 5 million empty envelopes in one batch
#: held the event loop for minutes while each got its refusal)
MAX_BATCH_ENVELOPES = 1000
#: results a ``SubmitStream`` holds for a client that does not read them: beyond, no
#: further batch is read until it does (QA-Y: the answers of an unread stream grew the
#: node by 60 MB a second)
_UNSENT_RESULTS = 64
_STREAM_CHUNK = 50


def _record_info(node: Node, record_id: bytes, env: types_pb2.Envelope) -> types_pb2.RecordInfo:
    loc = node.store.record_location(record_id)
    info = types_pb2.RecordInfo(record_id=record_id)
    if loc is not None:
        info.log_index, info.height = loc
    info.signers.extend(s.keyid for s in env.signatures)
    try:
        rec = TraceRecord.from_payload(env.payload, strict=False)
    except LedgerError:
        return info
    info.author = rec.author
    info.event_type = rec.event_type
    info.biz_step = rec.biz_step
    info.event_time = rec.event_time
    info.category = rec.category
    info.codes.extend(rec.codes())
    info.handoff_to = rec.handoff_to
    for field in ("action", "disposition"):
        value = rec.event.get(field)
        if isinstance(value, str):
            setattr(info, field, value)
    decl = rec.error_declaration
    if decl is not None:
        reason = decl.get("reason")
        info.error_declaration = reason if isinstance(reason, str) and reason else "-"
    event_id = rec.event.get("eventID")
    if isinstance(event_id, str):
        info.event_id = event_id
        if not info.error_declaration:
            by = node.store.get(event_ids.DB, event_ids.key(event_ids.event_id(rec), True))
            if by is not None:
                info.declared_by = by
    return info


def _submit_size_error(node: Node, pb: types_pb2.Envelope) -> TooLargeError | None:
    """This node's own record size limit (config ``limits.max_record_bytes``, at most the
    genesis one), applied at Submit only: blocks are checked against the genesis limit."""
    limit = node.config.limits.max_record_bytes
    if limit and len(pb.payload) > limit:
        return TooLargeError(
            f"record: payload is {len(pb.payload)} bytes, this node's limit is {limit}"
        )
    return None


def _trace_node(n: trace.TraceNode) -> services_pb2.TraceNode:
    return services_pb2.TraceNode(
        code=n.code,
        relation=n.relation,
        depth=n.depth,
        parent_code=n.via,
        custodian=n.custodian,
        status=n.status,
        commissioned_by=n.commissioned_by,
        is_class=n.is_class,
        recalled=n.recalled,
        container=n.parent,
        recalled_by=n.recalled_by,
        recalled_at=n.recalled_at if n.recalled_at >= 0 else None,
        disposition=n.disposition,
        since_ms=n.since_ms,
        held_at=n.held_at if n.held_at >= 0 else None,
        held_by=n.held_by,
        held_via=n.held_via,
        void_at=n.void_at if n.void_at >= 0 else None,
        other_recalls=n.other_recalls,
    )


def _record_id(raw: bytes) -> bytes:
    if len(raw) != 32:
        raise InputError("record_id must be 32 bytes (a SHA-256)")
    return raw


T = TypeVar("T")

#: threads that walk the store for trace queries: their own, so that a burst of queries
#: queues here and not in the event loop's default executor, which the consensus work
#: (sign state, validation, commit) uses (review: 60 queued pages delayed a commit 3.5 s)
READ_THREADS = 2


class LedgerService(services_pb2_grpc.LedgerServicer):
    def __init__(self, node: Node) -> None:
        self.node = node
        self.index = StoreTraceIndex(node.store)
        self._reads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="suyuan-reads")

    def close(self) -> None:
        """Stop the read threads once the server has stopped (queued reads are dropped)."""
        self._reads.shutdown(wait=False, cancel_futures=True)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a read thread."""
        return await asyncio.get_running_loop().run_in_executor(self._reads, fn, *args)

    # ------------------------------------------------------------------ submission

    @rpc
    async def Submit(self, request: services_pb2.SubmitRequest, context: Ctx) -> Any:  # noqa: N802
        """Check and queue one record; with ``wait``, answer once it is committed.

        A record already committed, or already pending here, is a replay: ALREADY_EXISTS.
        Except that resubmitting a pending record with ``wait`` (a client retrying after a
        lost answer or a deadline) waits for its commit like the first submission.
        """
        node = self.node
        node.check_capacity()
        loop = asyncio.get_running_loop()
        pb = request.envelope
        if (too_large := _submit_size_error(node, pb)) is not None:
            raise too_large
        v = await loop.run_in_executor(None, node.chain.verify, pb)
        try:
            admitted = node.admit(pb, v)
        except RuleError:
            if not await node.settle():  # nothing decided elsewhere: the refusal stands
                raise
            admitted = node.admit(pb, v)  # once more, over the blocks applied meanwhile
        if admitted:
            node.gossip([pb])
        elif not request.wait:
            raise ReplayError(f"record {v.record_id.hex()} is already pending")
        resp = services_pb2.SubmitResponse(record_id=v.record_id)
        if request.wait:
            remaining = context.time_remaining()
            timeout = _WAIT_DEFAULT_S if remaining is None else max(0.0, remaining - 0.05)
            try:
                done = await asyncio.wait_for(node.wait_for(v.record_id), timeout)
            except TimeoutError:
                return resp
            resp.committed = True
            resp.height = done.height
            resp.log_index = done.log_index
        return resp

    async def SubmitStream(  # noqa: N802
        self, request_iterator: AsyncIterator[services_pb2.SubmitBatch], context: Ctx
    ) -> AsyncIterator[services_pb2.SubmitBatchResult]:
        """Batched submission; see SubmitBatchResult in proto/services.proto."""
        out: asyncio.Queue[services_pb2.SubmitBatchResult | None] = asyncio.Queue(
            maxsize=_UNSENT_RESULTS
        )
        waiters: set[asyncio.Task[None]] = set()
        failed: list[Exception] = []

        async def read() -> None:
            try:
                async for batch in request_iterator:
                    result, accepted = await self._admit_batch(batch)
                    await out.put(result)
                    if batch.wait and accepted:
                        t = asyncio.create_task(self._confirm(batch.batch_id, accepted, out))
                        waiters.add(t)
                        t.add_done_callback(waiters.discard)
            except Exception as e:  # told to the client below (review: the stream ended OK,
                failed.append(e)  # a batch without its result)
                if not isinstance(e, LedgerError):
                    log.exception("a submission batch failed")
            finally:
                if waiters:
                    await asyncio.gather(*waiters, return_exceptions=True)
                await out.put(None)

        reader = asyncio.create_task(read())

        # (review: a client gone mid-answer left the generator unclosed, and the reader
        # blocked on the full queue until a collection; the call's end stops it)
        def stop_reading(_call: Any) -> None:
            reader.cancel()

        context.add_done_callback(stop_reading)  # type: ignore[arg-type]  # (stubs: a class)
        try:
            while (item := await out.get()) is not None:
                yield item
            if failed:
                e = failed[0]
                if isinstance(e, LedgerError):
                    await context.abort(status_code(e), str(e))
                await context.abort(
                    grpc.StatusCode.INTERNAL,
                    f"a batch could not be checked ({type(e).__name__}: {e}); its records' "
                    "fate is unknown: ask for them by record id (suyuan record get)",
                )
        finally:
            reader.cancel()
            for t in list(waiters):
                t.cancel()

    async def _admit_batch(
        self, batch: services_pb2.SubmitBatch
    ) -> tuple[services_pb2.SubmitBatchResult, list[bytes]]:
        node = self.node
        loop = asyncio.get_running_loop()
        out = services_pb2.SubmitBatchResult(batch_id=batch.batch_id)
        if len(batch.envelopes) > MAX_BATCH_ENVELOPES:  # (before any work for each)
            raise InputError(
                f"SubmitBatch {batch.batch_id}: {len(batch.envelopes)} envelopes, at most "
                f"{MAX_BATCH_ENVELOPES} a batch"
            )
        envs = list(batch.envelopes)
        try:
            node.check_capacity(len(envs))
        except OverloadError as e:
            code = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            out.results.extend(services_pb2.SubmitResult(code=code, message=str(e)) for _ in envs)
            return out, []
        results, fresh_at = await loop.run_in_executor(None, node.chain.admission_checks, envs)
        accepted: list[types_pb2.Envelope] = []
        ids: list[bytes] = []
        refused: list[int] = []  # by a custody rule: checked again if blocks land (Submit)

        def admit(
            i: int,
            res: services_pb2.SubmitResult,
            pb: types_pb2.Envelope,
            r: VerifiedRecord,
            at: int | None,
        ) -> None:
            res.record_id = r.record_id
            try:
                if node.admit(pb, r, fresh_at=at):
                    accepted.append(pb)
                elif not batch.wait:  # as Submit: a pending record again is a replay
                    raise ReplayError(f"record {r.record_id.hex()} is already pending")
                ids.append(r.record_id)
            except LedgerError as e:
                res.code, res.message = status_code(e).value[0], str(e)
                if isinstance(e, RuleError):
                    refused.append(i)

        with node.admitting():  # one read transaction for the batch's lookups
            for i, (pb, verified) in enumerate(zip(envs, results, strict=True)):
                res = out.results.add()
                r = _submit_size_error(node, pb) or verified
                if isinstance(r, LedgerError):
                    res.code, res.message = status_code(r).value[0], str(r)
                    continue
                admit(i, res, pb, r, fresh_at)
        if refused and await node.settle():
            again, refused = refused, []
            with node.admitting():
                for i in again:
                    r = results[i]
                    assert isinstance(r, VerifiedRecord)
                    res = out.results[i]
                    res.code, res.message = 0, ""
                    admit(i, res, envs[i], r, None)
        node.gossip(accepted)
        return out, ids

    async def _confirm(
        self,
        batch_id: int,
        ids: list[bytes],
        out: asyncio.Queue[services_pb2.SubmitBatchResult | None],
    ) -> None:
        futs = [self.node.wait_for(rid) for rid in ids]
        done = await asyncio.gather(*futs, return_exceptions=True)
        res = services_pb2.SubmitBatchResult(batch_id=batch_id, committed=True)
        for rid, d in zip(ids, done, strict=True):
            if isinstance(d, LedgerError):
                res.results.append(
                    services_pb2.SubmitResult(
                        record_id=rid, code=status_code(d).value[0], message=str(d)
                    )
                )
            elif isinstance(d, BaseException):
                raise d
            else:
                res.results.append(
                    services_pb2.SubmitResult(record_id=rid, height=d.height, log_index=d.log_index)
                )
        await out.put(res)

    # ------------------------------------------------------------------ reads

    @rpc
    async def GetRecord(self, request: services_pb2.GetRecordRequest, context: Ctx) -> Any:  # noqa: N802
        rid = _record_id(request.record_id)
        found = committed_by_id(self.node.store, rid)
        if found is None:
            pending = self.node.mempool.get(rid)
            if pending is None:
                raise NotFoundError(f"record {rid.hex()} is not known to this node")
            return services_pb2.RecordResponse(
                envelope=pending.envelope, info=_record_info(self.node, rid, pending.envelope)
            )
        env = found[1]
        return services_pb2.RecordResponse(envelope=env, info=_record_info(self.node, rid, env))

    def _committed_block(self, height: int) -> types_pb2.CommittedBlock:
        head = self.node.store.head().height
        h = height or head
        stored = self.node.store.get_block(h) if 0 < h <= head else None
        if stored is None:
            raise NotFoundError(f"block {h} is not committed here (head is {head})")
        return _decoded_block(h, stored.committed_block_bytes())

    @rpc
    async def GetBlock(self, request: services_pb2.GetBlockRequest, context: Ctx) -> Any:  # noqa: N802
        return self._committed_block(request.height)

    @rpc_stream
    async def StreamBlocks(  # noqa: N802
        self, request: services_pb2.StreamBlocksRequest, context: Ctx
    ) -> AsyncIterator[types_pb2.CommittedBlock]:
        async for cb in _blocks(self.node, request.from_height, request.to_height, self._reads):
            yield cb

    @rpc
    async def GetCheckpoint(  # noqa: N802
        self, request: services_pb2.GetCheckpointRequest, context: Ctx
    ) -> Any:
        cb = self._committed_block(request.height)
        return types_pb2.Checkpoint(header=cb.block.header, certificate=cb.certificate)

    @rpc
    async def Status(self, request: services_pb2.StatusRequest, context: Ctx) -> Any:  # noqa: N802
        return self.node.status()

    @rpc
    async def Prove(self, request: services_pb2.ProveRequest, context: Ctx) -> Any:  # noqa: N802
        from node.proofs import build_bundle

        return build_bundle(
            self.node.store,
            self.node.genesis,
            _record_id(request.record_id),
            since_size=request.since_size,
        )

    # ------------------------------------------------------------------ trace

    def _infos(self, indexes: list[int]) -> list[types_pb2.RecordInfo]:
        out = []
        for i in indexes:
            env = committed_envelope(self.node.store, i)
            if env is None:
                continue
            rid = hashlib.sha256(env.payload).digest()
            out.append(_record_info(self.node, rid, env))
        return out

    @rpc
    async def TraceHistory(self, request: services_pb2.TraceRequest, context: Ctx) -> Any:  # noqa: N802
        page = await self._read(  # (store reads off the event loop, as _trace)
            trace.history,
            self.index,
            request.code,
            request.limit or trace.DEFAULT_LIMIT,
            request.page_token,
        )
        return services_pb2.TraceResponse(
            code=page.code,
            records=self._infos(list(page.log_indexes)),
            nodes=[_trace_node(page.state)],
            next_page_token=page.next_token,
        )

    async def _trace(self, request: services_pb2.TraceRequest, forward: bool) -> Any:
        fn = trace.trace_forward if forward else trace.trace_back
        # in a worker thread: a page of a large recall walks the graph from its start, which
        # took 0.05-0.56 s a page at 10,000 items and held the event loop, and with it the
        # node's consensus, as long (review)
        page = await self._read(
            fn,
            self.index,
            request.code,
            request.max_depth or trace.MAX_DEPTH,
            request.limit or trace.DEFAULT_LIMIT,
            request.page_token,
        )
        return services_pb2.TraceResponse(
            code=page.root,
            nodes=[_trace_node(n) for n in page.nodes],
            next_page_token=page.next_token,
            truncated=page.depth_limited,
        )

    @rpc
    async def TraceBack(self, request: services_pb2.TraceRequest, context: Ctx) -> Any:  # noqa: N802
        return await self._trace(request, forward=False)

    @rpc
    async def TraceForward(self, request: services_pb2.TraceRequest, context: Ctx) -> Any:  # noqa: N802
        return await self._trace(request, forward=True)

    @rpc
    async def SignCheckpoint(  # noqa: N802
        self, request: services_pb2.SignCheckpointRequest, context: Ctx
    ) -> Any:
        from node.proofs import sign_checkpoint_note

        return sign_checkpoint_note(
            self.node.store, self.node.genesis, self.node.key, request.height
        )

    @rpc
    async def ListEvidence(  # noqa: N802
        self, request: services_pb2.ListEvidenceRequest, context: Ctx
    ) -> Any:
        return services_pb2.ListEvidenceResponse(evidence=list(self.node.evidence.values()))


#: heights past the head whose votes a peer's stream may carry (others are dropped unread)
VOTE_WINDOW = 1_000


def _note_peer_height(node: Node, sender: str, votes: list[consensus_pb2.ConsensusMessage]) -> None:
    """A peer voting at height h has committed h - 1: keep ``node status``'s peer heights
    current (they were the heights seen when each link connected). Only the sender's own
    votes count (a relayed vote says nothing of the relayer); ``sender`` proved its member
    when its stream opened (peerauth). A height too high only makes this node try a sync,
    which verifies whatever it fetches."""
    own = max((m.vote.height for m in votes if m.vote.validator == sender), default=0)
    if own and sender:
        for p in node.peers:
            if p.info.member == sender and p.info.height < own - 1:
                p.info.height = own - 1


async def _blocks(
    node: Node, from_height: int, to_height: int, reads: ThreadPoolExecutor
) -> AsyncIterator[types_pb2.CommittedBlock]:
    """Committed blocks from ``from_height`` to ``to_height`` (0: the head), in order, read
    in the ``reads`` threads (not the loop's own, which consensus uses: QA-Y, 500 block
    streams held Status for 6 s)."""
    loop = asyncio.get_running_loop()
    start = max(1, from_height)
    head = node.store.head().height
    end = min(to_height or head, head)
    h = start
    while h <= end:
        hi = min(end, h + _STREAM_CHUNK - 1)
        chunk = await loop.run_in_executor(reads, _read_blocks, node, h, hi)
        for i, raw in enumerate(chunk):
            yield _decoded_block(h + i, raw)
        h = hi + 1


def _decoded_block(height: int, raw: bytes) -> types_pb2.CommittedBlock:
    """A stored block as the wire has it; a value that does not parse is damage (QA-T:
    audit was answered UNKNOWN "Unexpected DecodeError" where DATA_LOSS is the contract)."""
    try:
        return types_pb2.CommittedBlock.FromString(raw)
    except DecodeError as e:
        raise damaged(f"block {height} does not parse ({e})") from e


def _read_blocks(node: Node, lo: int, hi: int) -> list[bytes]:
    out = []
    for h in range(lo, hi + 1):
        b = node.store.get_block(h)
        if b is None:
            break
        out.append(b.committed_block_bytes())
    return out


#: a refused peer stream's reason is logged at most this often (one an old node retries)
REFUSAL_LOG_S = 60.0


class PeerService(services_pb2_grpc.PeerServicer):
    def __init__(self, node: Node) -> None:
        self.node = node
        self._refusals_logged: dict[str, tuple[float, int]] = {}  # kind -> (logged, since)
        self._reads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="suyuan-peer-reads")

    def close(self) -> None:
        """Stop the read threads once the server has stopped (queued reads are dropped)."""
        self._reads.shutdown(wait=False, cancel_futures=True)

    def _log_refusal(self, kind: str, peer: str, why: str) -> None:
        """Log a refused stream, at most once per ``REFUSAL_LOG_S`` per kind of refusal
        (``peerauth.link_problem``: a few words, so the table stays small whatever the
        senders write), with how many were not logged since."""
        now = time.monotonic()
        last, skipped = self._refusals_logged.get(kind, (0.0, 0))
        if last and now - last < REFUSAL_LOG_S:
            self._refusals_logged[kind] = (last, skipped + 1)
            return
        self._refusals_logged[kind] = (now, 0)
        more = f" ({skipped} more of this kind since)" if skipped else ""
        log.warning("refused a peer stream from %s: %s%s", peer[:80], why, more)

    def _open(self, hello: services_pb2.Hello, context: Ctx) -> str:
        """The member that opens a stream with ``hello``, or "" when the stream is of
        another chain, or not proven (peerauth): its status is then set on ``context``,
        and nothing it sent is read."""
        node = self.node
        if hello.genesis_hash and hello.genesis_hash != node.genesis.hash:
            self._log_refusal("chain", context.peer(), "the peer is on another chain")
            context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
            context.set_details("peer is on another chain")
            return ""
        kind, why = link_problem(
            hello,
            genesis_hash=node.genesis.hash,
            receiver=node.key.name,
            key_of=node.genesis.public_key,
            challenges=node.challenges,
        )
        if kind:
            self._log_refusal(kind, context.peer(), why)
            context.set_code(grpc.StatusCode.UNAUTHENTICATED)
            context.set_details(why)
            return ""
        node.inbound_opened(hello.member)
        return hello.member

    async def Exchange(  # noqa: N802
        self, request_iterator: AsyncIterator[services_pb2.PeerEnvelope], context: Ctx
    ) -> services_pb2.PeerAck:
        """A peer's stream. A refused one ends with its status set, not an abort: the
        abort's exception kept this frame, and the request in it, for good (QA-Y: an
        outsider's refused 10 MB messages kept 140 MB each)."""
        sender = ""  # (a member id once the stream's first message proved it: never "")
        try:
            async for env in request_iterator:
                if not sender:
                    sender = self._open(env.hello, context)
                    if not sender:
                        return services_pb2.PeerAck()
                await self._take(env, sender)
        finally:
            if sender:
                self.node.inbound_closed(sender)
        return services_pb2.PeerAck(height=self.node.store.head().height)

    async def _take(self, env: services_pb2.PeerEnvelope, sender: str) -> None:
        """One message of ``sender``'s stream: votes, gossiped records, other consensus
        messages, evidence, in that order."""
        node = self.node
        node.inbound_heard(sender)
        head = node.store.head().height
        # only votes that can still count: a vote at a committed height is stale, and one
        # far ahead cannot count before a sync (review: 300,000 junk votes, each decoded
        # and queued for the consensus loop, held a node to 1 height in 6.6 s)
        votes = [
            m
            for m in env.consensus
            if m.HasField("vote") and head < m.vote.height <= head + VOTE_WINDOW
        ]
        if votes:  # votes need no records: do not keep them waiting for admission
            node.on_peer_messages(votes)
            _note_peer_height(node, sender, votes)
        # verify only what the mempool can take: the rest, if a block names it, is fetched
        # (and verified once) then (node.proposals)
        envs = list(env.records)[: node.mempool.room()] if env.records else []
        if envs:
            loop = asyncio.get_running_loop()
            results, fresh_at = await loop.run_in_executor(None, node.chain.admission_checks, envs)
            with node.admitting():
                for pb, r in zip(envs, results, strict=True):
                    if isinstance(r, LedgerError):
                        continue
                    try:
                        node.admit(pb, r, local=False, fresh_at=fresh_at)
                    except LedgerError:
                        continue
        others = [m for m in env.consensus if not m.HasField("vote")]
        if others:  # after the records: a compact proposal may name them
            node.on_peer_messages(others)
        if env.HasField("evidence"):
            node.on_peer_evidence(env.evidence)

    @rpc_stream
    async def GetBlocks(  # noqa: N802
        self, request: services_pb2.GetBlocksRequest, context: Ctx
    ) -> AsyncIterator[types_pb2.CommittedBlock]:
        async for cb in _blocks(self.node, request.from_height, request.to_height, self._reads):
            yield cb

    @rpc
    async def GetRecords(  # noqa: N802
        self, request: services_pb2.GetRecordsRequest, context: Ctx
    ) -> Any:
        """Envelopes by Merkle leaf hash (pending, or in the last committed blocks), for a
        peer resolving a compact proposal (``node.proposals.serve``)."""
        limit = self.node.genesis.consensus.max_block_records
        if len(request.leaf_hashes) > limit:
            raise InputError(f"GetRecords: {len(request.leaf_hashes)} hashes, at most {limit}")
        return services_pb2.GetRecordsResponse(
            envelopes=proposals.serve(self.node, request.leaf_hashes)
        )

    async def PeerStatus(self, request: services_pb2.Hello, context: Ctx) -> services_pb2.Hello:  # noqa: N802
        """This node's hello. The asker's claims are not read (it proves nothing here: its
        height comes from this node's own asking, or its signed votes); a member is given a
        challenge to sign when it opens its ``Exchange`` stream (peerauth)."""
        node = self.node
        reply = services_pb2.Hello(
            genesis_hash=node.genesis.hash,
            member=node.key.name,
            height=node.store.head().height,
            instance=node.instance,
        )
        if len(request.nonce) == HELLO_NONCE_BYTES:  # the asker checks who answers
            proof = hello_proof_bytes(
                node.genesis.hash, node.key.name, node.instance, request.nonce
            )
            reply.proof = node.key.sign(proof)
        if request.member and node.genesis.public_key(request.member) is not None:
            reply.challenge = node.challenges.issue(request.member)
        return reply


__all__ = ["LedgerService", "PeerService"]
