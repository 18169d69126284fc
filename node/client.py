"""A small synchronous client of a node's ``Ledger`` service (and its gRPC health check).

``LedgerClient`` is what the CLI, the testnet and the multi-process tests use to talk to a
node. It is the one place where ``grpc.RpcError`` becomes a ``LedgerError`` (STYLE.md §7):
``map_rpc_error`` maps each status code to the matching subclass and keeps the server's
details string as the message, so a refusal reads the same on the client as on the node.

    UNAVAILABLE, DEADLINE_EXCEEDED  -> NodeUnavailableError (names the address)
    INVALID_ARGUMENT                -> InputError
    UNAUTHENTICATED                 -> VerificationError
    PERMISSION_DENIED               -> MembershipError (RemoteRulePermissionError, a
                                       RuleError, when the message is "rule NAME: ...")
    ALREADY_EXISTS                  -> ReplayError
    RESOURCE_EXHAUSTED              -> OverloadError
    FAILED_PRECONDITION             -> RemoteRuleError (a RuleError; the server's message)
    NOT_FOUND                       -> NotFoundError
    DATA_LOSS                       -> DamagedStoreError (the node's store is damaged; exit 4)
    UNIMPLEMENTED                   -> NodeUnavailableError (not a Suyuan node; exit 5)
    anything else                   -> LedgerError naming the code

Every call has a deadline (``timeout`` seconds, per call overridable); nothing retries.
Addresses are ``host:port``, over TLS when ``SUYUAN_TLS_CA`` names the CA certificates to
trust (``node.tls``), else over a plain channel (the local testnet's, on 127.0.0.1).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from node.convert import envelope_to_proto
from node.envelope import Envelope
from node.epcis import event_as_meant
from node.errors import (
    DamagedStoreError,
    InputError,
    LedgerError,
    MembershipError,
    NodeUnavailableError,
    NotFoundError,
    OverloadError,
    ReplayError,
    RuleError,
    VerificationError,
)
from node.records import TraceRecord
from node.tls import ENV_CA, client_credentials, tls_hint
from proto import consensus_pb2, services_pb2, services_pb2_grpc, types_pb2

DEFAULT_TIMEOUT_S = 10.0
_T = TypeVar("_T")
_RULE_PREFIX = re.compile(r"^rule (?P<rule>[\w.-]+): ")


class RemoteRuleError(RuleError):
    """A node refused a record under a traceability rule (FAILED_PRECONDITION).

    ``str(err)`` is the server's message unchanged; ``rule`` is parsed from its
    ``"rule NAME: ..."`` prefix when present (empty otherwise).
    """

    def __init__(self, message: str) -> None:
        m = _RULE_PREFIX.match(message)
        self.rule = m.group("rule") if m else ""
        self.code = ""
        LedgerError.__init__(self, message)


class RemoteRulePermissionError(RemoteRuleError):
    """A rule refused the author's role or identity (PERMISSION_DENIED with "rule NAME: ")."""

    grpc_code = "PERMISSION_DENIED"


_BY_CODE: dict[grpc.StatusCode, Callable[[str], LedgerError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InputError,
    grpc.StatusCode.UNAUTHENTICATED: VerificationError,
    grpc.StatusCode.PERMISSION_DENIED: MembershipError,
    grpc.StatusCode.ALREADY_EXISTS: ReplayError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: OverloadError,
    grpc.StatusCode.FAILED_PRECONDITION: RemoteRuleError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.DATA_LOSS: DamagedStoreError,
}


#: how a refusal by rule event-id names the record holding the eventID (``node.event_ids``)
_HOLDER = re.compile(r"\(record ([0-9a-f]{64})\)")


def same_event(payload: bytes, other: bytes) -> bool:
    """Whether two record payloads carry the same EPCIS event by the same author, of the
    same category and chain (nonce, signing time, attachments and sealed fields aside),
    each read as meant (``event_as_meant``: one instant, codes in canonical form)."""
    try:
        a = TraceRecord.from_payload(payload, strict=False)
        b = TraceRecord.from_payload(other, strict=False)
    except LedgerError:
        return False
    return (a.author, a.genesis, a.category) == (b.author, b.genesis, b.category) and (
        _as_retried(a.event) == _as_retried(b.event)
    )  # (QA: the same event with another offset, or a Digital Link, was not a retry)


def event_differences(event: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """The top-level fields in which two EPCIS events differ, each read as meant (as
    ``same_event`` reads them), ``@context`` aside (JSON-LD prefixes, which an export
    moves to its document); [] when they are the same event."""
    a, b = _as_retried(event), _as_retried(other)
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return [] if a == b else ["event"]
    keys = (set(a) | set(b)) - {"@context"}
    return sorted(k for k in keys if a.get(k) != b.get(k))


def _as_retried(event: Mapping[str, Any]) -> Any:
    """``event`` as a retry must repeat it: read as meant, and an error declaration's
    ``declarationTime`` aside (``record declare`` stamps it when run)."""
    ev = dict(event)
    decl = ev.get("errorDeclaration")
    if isinstance(decl, Mapping):
        ev["errorDeclaration"] = {k: v for k, v in decl.items() if k != "declarationTime"}
    return event_as_meant(ev)


def rpc_status(err: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """(status code, details) of a failed call; UNKNOWN when the error carries none."""
    code_fn, details_fn = getattr(err, "code", None), getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return code, details if isinstance(details, str) else ""


_STREAM_REMOVED = re.compile(r"Stream removed \((.+)\)")


def map_rpc_error(err: grpc.RpcError, address: str) -> LedgerError:
    """The ``LedgerError`` for a failed call to the node at ``address``."""
    code, details = rpc_status(err)
    m = _STREAM_REMOVED.fullmatch(details)
    if m is not None:  # (QA: gRPC's words for a stream cut short, as "Stream removed (...)")
        details = m.group(1).lower()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        late = code is grpc.StatusCode.DEADLINE_EXCEEDED
        what = "timed out" if late else "is unreachable"
        hint = " (no answer in time: is it paused, hung or overloaded?)" if late else ""
        tls = tls_hint(details, bool(os.environ.get(ENV_CA)), ENV_CA)
        hint += f" ({tls})" if tls else ""
        return NodeUnavailableError(
            f"node {address} {what}" + (f": {details}" if details else "") + hint
        )  # (QA-S: a paused node's status said only "timed out: Deadline Exceeded")
    if code is grpc.StatusCode.UNIMPLEMENTED:  # a server, but not a Suyuan node (or older)
        return NodeUnavailableError(
            f"{address} does not answer as a Suyuan node of this version"
            + (f" ({details})" if details else "")
        )
    if code is grpc.StatusCode.PERMISSION_DENIED and _RULE_PREFIX.match(details):
        return RemoteRulePermissionError(details)  # a custody rule, not a bad signature
    factory = _BY_CODE.get(code)
    if factory is not None:
        return factory(details or f"refused by node {address} ({code.name})")
    return LedgerError(f"node {address}: {code.name}" + (f": {details}" if details else ""))


def never_connected(err: LedgerError) -> bool:
    """True when ``err`` says the call never reached a server: no connection was made (a
    refused connection), so nothing it carried was sent."""
    text = str(err)
    return isinstance(err, NodeUnavailableError) and (
        "failed to connect to all addresses" in text or "Connection refused" in text
    )


class _InFlight:
    """The calls this process has in flight, so that a signal handler ends them from
    another thread (``interrupt_calls``) rather than raising ``KeyboardInterrupt`` inside
    gRPC's locks: raised there, it could leave a lock held, and the channel's ``close``
    then waited for ever (the CLI hung after Ctrl-C or SIGTERM). The call's owner sees it
    cancelled and raises ``KeyboardInterrupt`` itself, outside gRPC.

    ``calls`` and ``inside`` are changed by the calling threads with GIL-atomic operations
    (no lock: an exception raised by a signal inside a ``with lock`` can leave it held); a
    signal handler only reads them and sets ``requested``."""

    def __init__(self) -> None:
        self.calls: set[Any] = set()
        self.requested = False
        self.inside: list[None] = []  # one entry per thread in gRPC code outside ``calls``
        self._starting = threading.Lock()
        self._wake: threading.Event | None = None

    def start(self) -> None:
        """Start the canceller thread, once (before any call: a signal handler may not
        start a thread, whose locks the interrupted code may hold)."""
        if self._wake is not None:
            return
        with self._starting:
            if self._wake is None:
                wake = threading.Event()
                threading.Thread(target=self._cancel, args=(wake,), daemon=True).start()
                self._wake = wake

    def _cancel(self, wake: threading.Event) -> None:
        for _ in range(_MAX_INTERRUPTS):  # (each signal of a run, up to a bound)
            wake.wait()
            wake.clear()
            for call in tuple(self.calls):  # (one registered later cancels itself)
                call.cancel()

    def interrupt(self) -> bool:
        """Have every call in flight cancelled (by the canceller thread); False if there
        is none and no thread is inside gRPC (``entered``)."""
        self.requested = True
        calls = tuple(self.calls)
        if calls and self._wake is not None:
            self._wake.set()
        return bool(calls or self.inside)

    @contextmanager
    def entered(self) -> Iterator[None]:
        """gRPC code (a channel made or closed, a call started): an interruption waits for
        its end (a call started is then cancelled, or ``check`` raises)."""
        self.inside.append(None)
        try:
            yield
        finally:
            self.inside.pop()

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


_MAX_INTERRUPTS = 64
_IN_FLIGHT = _InFlight()
_CLOSE_AFTER_INTERRUPT_S = 2.0


def interrupt_calls() -> bool:
    """For a SIGINT or SIGTERM handler: end the ``LedgerClient`` calls in flight (their
    callers raise ``KeyboardInterrupt``) and return True; False when none is in flight
    (the handler raises it itself). Every later call raises it at once."""
    return _IN_FLIGHT.interrupt()


class LedgerClient:
    """Synchronous typed calls to one node. Use as a context manager, or call ``close``.
    A call ended by ``interrupt_calls`` raises ``KeyboardInterrupt``."""

    def __init__(
        self,
        address: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        credentials: grpc.ChannelCredentials | None = None,
        *,
        plain: bool = False,
    ) -> None:
        """``credentials``: TLS (``node.tls``); by default from ``SUYUAN_TLS_CA``, if set,
        unless ``plain`` (a local testnet's nodes, which know their own TLS or none)."""
        self.address = address
        self.timeout = timeout
        creds = None if plain else (credentials or client_credentials())
        # a committed block may be up to max_block_bytes (8 MiB by default), above gRPC's
        # 4 MiB default receive limit: GetBlock/StreamBlocks (audit) need the larger limit
        options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
        _IN_FLIGHT.start()
        with _IN_FLIGHT.entered():
            self._channel = (
                grpc.insecure_channel(address, options=options)
                if creds is None
                else grpc.secure_channel(address, creds, options=options)
            )
        _IN_FLIGHT.check()
        self._stub: Any = services_pb2_grpc.LedgerStub(self._channel)  # type: ignore[no-untyped-call, unused-ignore]

    def committed_already(
        self, record_id: bytes, refusal: ReplayError
    ) -> services_pb2.SubmitResponse:
        """The answer to a submit refused as a replay when this very record is committed
        (a retry after an uncertain outcome); raises ``refusal`` otherwise (the record is
        pending, or another record used its nonce)."""
        try:
            info = self.get_record(record_id).info
        except NotFoundError:
            raise refusal from None
        if info.height == 0:
            raise refusal
        return services_pb2.SubmitResponse(
            record_id=record_id, committed=True, height=info.height, log_index=info.log_index
        )

    def committed_same_event(
        self, env: Envelope, refusal: RemoteRuleError
    ) -> services_pb2.SubmitResponse:
        """The answer to a submit refused by rule event-id when the committed record that
        holds the eventID is this same event by this same author (a re-run of ``record
        submit EVENT.json`` after an uncertain outcome signs the event anew: another record
        id, the same derived eventID), or by rule error-declaration when the committed
        declaration is this one (a re-run of ``record declare``: another declarationTime).
        Raises ``refusal`` otherwise: another event, another author, or a record still
        pending."""
        held = refusal.rule == "event-id" or (
            refusal.rule == "error-declaration" and "already declared in error" in str(refusal)
        )
        m = _HOLDER.search(str(refusal)) if held else None
        if m is None:
            raise refusal
        try:
            rr = self.get_record(bytes.fromhex(m.group(1)))
        except NotFoundError:
            raise refusal from None
        if rr.info.height == 0 or not same_event(env.payload, rr.envelope.payload):
            raise refusal
        return services_pb2.SubmitResponse(
            record_id=rr.info.record_id or bytes.fromhex(m.group(1)),
            committed=True,
            height=rr.info.height,
            log_index=rr.info.log_index,
        )

    def close(self) -> None:
        """Close the channel. After ``interrupt_calls`` (the process is stopping) at most
        ``_CLOSE_AFTER_INTERRUPT_S`` is spent on it: gRPC's close waits for the cancelled
        calls to drain, and racing their cancellation it could wait for ever (QA: the CLI
        hung after Ctrl-C on a loaded machine)."""
        if _IN_FLIGHT.requested:
            closing = threading.Thread(target=self._channel.close, daemon=True)
            closing.start()
            closing.join(_CLOSE_AFTER_INTERRUPT_S)
            return
        with _IN_FLIGHT.entered():
            self._channel.close()
        _IN_FLIGHT.check()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _call(self, fn: Callable[..., Any], request: object, timeout: float | None) -> Any:
        _IN_FLIGHT.check()
        future: Any = getattr(fn, "future")  # noqa: B009 (the stubs type a call only)
        with _IN_FLIGHT.entered():
            call = future(request, timeout=self.timeout if timeout is None else timeout)
            _IN_FLIGHT.calls.add(call)
        try:
            if _IN_FLIGHT.requested:
                call.cancel()  # (a signal between the check and the add)
            return call.result()
        except grpc.FutureCancelledError:
            raise KeyboardInterrupt from None
        except grpc.RpcError as e:
            if _IN_FLIGHT.requested and e.code() == grpc.StatusCode.CANCELLED:
                raise KeyboardInterrupt from None
            raise map_rpc_error(e, self.address) from e
        finally:
            _IN_FLIGHT.calls.discard(call)

    def _stream(
        self, fn: Callable[..., Iterator[_T]], request: object, timeout: float | None
    ) -> Iterator[_T]:
        _IN_FLIGHT.check()
        with _IN_FLIGHT.entered():
            call: Any = fn(request, timeout=self.timeout if timeout is None else timeout)
            _IN_FLIGHT.calls.add(call)
        try:
            if _IN_FLIGHT.requested:
                call.cancel()
            yield from call
        except grpc.RpcError as e:
            if _IN_FLIGHT.requested and e.code() == grpc.StatusCode.CANCELLED:
                raise KeyboardInterrupt from None
            raise map_rpc_error(e, self.address) from e
        finally:
            _IN_FLIGHT.calls.discard(call)

    # ------------------------------------------------------------------ Ledger

    def submit(
        self, envelope: Envelope, wait: bool = False, timeout: float | None = None
    ) -> services_pb2.SubmitResponse:
        """Submit one envelope; with ``wait`` the answer comes once it is committed."""
        req = services_pb2.SubmitRequest(envelope=envelope_to_proto(envelope), wait=wait)
        resp: services_pb2.SubmitResponse = self._call(self._stub.Submit, req, timeout)
        return resp

    def submit_batch(
        self, envelopes: Sequence[Envelope], timeout: float | None = None
    ) -> Iterator[services_pb2.SubmitBatchResult]:
        """Submit ``envelopes`` in order as one batch that waits for commits (``SubmitStream``):
        yields the admission answer (a result per envelope, in order), then, if any was
        accepted, the committed answer once every accepted one is committed or dropped.
        A record may depend on an earlier one of the batch (the node admits them in order).
        Raises ``NodeUnavailableError`` (the deadline passed, the node is gone) between
        the two: what was admitted may still commit."""
        batch = services_pb2.SubmitBatch(
            envelopes=[envelope_to_proto(e) for e in envelopes], batch_id=1, wait=True
        )
        yield from self._stream(self._stub.SubmitStream, iter([batch]), timeout)

    def submit_proto(
        self, envelope: types_pb2.Envelope, wait: bool = False, timeout: float | None = None
    ) -> services_pb2.SubmitResponse:
        """Submit a protobuf envelope as is (tests use it to send malformed envelopes)."""
        req = services_pb2.SubmitRequest(envelope=envelope, wait=wait)
        resp: services_pb2.SubmitResponse = self._call(self._stub.Submit, req, timeout)
        return resp

    def get_record(
        self, record_id: bytes, timeout: float | None = None
    ) -> services_pb2.RecordResponse:
        req = services_pb2.GetRecordRequest(record_id=record_id)
        resp: services_pb2.RecordResponse = self._call(self._stub.GetRecord, req, timeout)
        return resp

    def status(self, timeout: float | None = None) -> services_pb2.StatusResponse:
        req = services_pb2.StatusRequest()
        resp: services_pb2.StatusResponse = self._call(self._stub.Status, req, timeout)
        return resp

    def get_block(self, height: int = 0, timeout: float | None = None) -> types_pb2.CommittedBlock:
        """The committed block at ``height`` (0: the latest)."""
        req = services_pb2.GetBlockRequest(height=height)
        resp: types_pb2.CommittedBlock = self._call(self._stub.GetBlock, req, timeout)
        return resp

    def stream_blocks(
        self, from_height: int = 0, to_height: int = 0, timeout: float | None = None
    ) -> Iterator[types_pb2.CommittedBlock]:
        """Committed blocks ``from_height..to_height`` inclusive (0, 0: all up to the head).

        ``timeout`` bounds the whole stream, not each block.
        """
        req = services_pb2.StreamBlocksRequest(from_height=from_height, to_height=to_height)
        return self._stream(self._stub.StreamBlocks, req, timeout)

    def get_checkpoint(self, height: int = 0, timeout: float | None = None) -> types_pb2.Checkpoint:
        req = services_pb2.GetCheckpointRequest(height=height)
        resp: types_pb2.Checkpoint = self._call(self._stub.GetCheckpoint, req, timeout)
        return resp

    def prove(
        self, record_id: bytes, since_size: int = 0, timeout: float | None = None
    ) -> types_pb2.ProofBundle:
        req = services_pb2.ProveRequest(record_id=record_id, since_size=since_size)
        resp: types_pb2.ProofBundle = self._call(self._stub.Prove, req, timeout)
        return resp

    def trace_history(
        self, code: str, limit: int = 0, page_token: str = "", timeout: float | None = None
    ) -> services_pb2.TraceResponse:
        req = services_pb2.TraceRequest(code=code, limit=limit, page_token=page_token)
        resp: services_pb2.TraceResponse = self._call(self._stub.TraceHistory, req, timeout)
        return resp

    def trace_back(
        self,
        code: str,
        max_depth: int = 0,
        limit: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> services_pb2.TraceResponse:
        req = services_pb2.TraceRequest(
            code=code, max_depth=max_depth, limit=limit, page_token=page_token
        )
        resp: services_pb2.TraceResponse = self._call(self._stub.TraceBack, req, timeout)
        return resp

    def trace_forward(
        self,
        code: str,
        max_depth: int = 0,
        limit: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> services_pb2.TraceResponse:
        req = services_pb2.TraceRequest(
            code=code, max_depth=max_depth, limit=limit, page_token=page_token
        )
        resp: services_pb2.TraceResponse = self._call(self._stub.TraceForward, req, timeout)
        return resp

    def list_evidence(self, timeout: float | None = None) -> list[consensus_pb2.Evidence]:
        resp: services_pb2.ListEvidenceResponse = self._call(
            self._stub.ListEvidence, services_pb2.ListEvidenceRequest(), timeout
        )
        return list(resp.evidence)

    def sign_checkpoint(
        self, height: int = 0, timeout: float | None = None
    ) -> services_pb2.CheckpointSignature:
        """The node's (a validator's) C2SP note signature over the checkpoint at ``height``."""
        req = services_pb2.SignCheckpointRequest(height=height)
        resp: services_pb2.CheckpointSignature = self._call(self._stub.SignCheckpoint, req, timeout)
        return resp

    # ------------------------------------------------------------------ health

    def healthy(self, service: str = "", timeout: float | None = None) -> bool:
        """True when the node's gRPC health service answers SERVING for ``service``.

        Never raises for an unreachable or not-yet-serving node: it answers False.
        """
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            resp = stub.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=self.timeout if timeout is None else timeout,
            )
        except grpc.RpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "LedgerClient",
    "RemoteRuleError",
    "map_rpc_error",
    "rpc_status",
]
