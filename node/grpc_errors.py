"""The server boundary: ``LedgerError`` -> gRPC status, in one place (STYLE.md §7)."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from node.errors import LedgerError

log = logging.getLogger("suyuan.rpc")
R = TypeVar("R")


def status_code(err: LedgerError) -> grpc.StatusCode:
    """The gRPC status code for ``err`` (its class's ``grpc_code``)."""
    return getattr(grpc.StatusCode, err.grpc_code, grpc.StatusCode.INTERNAL)


def rpc(
    fn: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Wrap a unary grpc.aio handler: a LedgerError aborts with its status and message."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> R:
        try:
            return await fn(self, request, context)
        except LedgerError as e:
            # the status is set and the handler returns: an abort's exception kept the
            # frames that hold the request until a full collection (QA-Y: each refused
            # 10 MB Submit kept 11 MB; review)
            context.set_code(status_code(e))
            context.set_details(str(e))
        return None  # type: ignore[return-value]  # (gRPC sends the status, not a reply)

    return wrapper


def rpc_stream(
    fn: Callable[..., AsyncIterator[R]],
) -> Callable[..., AsyncIterator[R]]:
    """The same for server-streaming handlers."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            async for item in fn(self, request, context):
                yield item
        except LedgerError as e:
            await context.abort(status_code(e), str(e))

    return wrapper


if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # not subscriptable at run time
    _Interceptor = grpc.aio.ServerInterceptor


def _any(behaviour: Any) -> Any:
    """grpc-stubs type handler behaviours as sync; these are grpc.aio's async ones."""
    return behaviour


class _Malformed:
    """What the lenient deserializer returns for bytes that do not parse."""

    def __init__(self, error: DecodeError) -> None:
        self.error = error


def _lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except DecodeError as e:
            return _Malformed(e)

    return parse


async def _refuse(
    method: str, bad: _Malformed, context: grpc.aio.ServicerContext[Any, Any]
) -> None:
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT, f"malformed {method} request: {bad.error}"
    )


@contextlib.asynccontextmanager
async def _checked(
    method: str, requests: AsyncIterator[Any], context: Any
) -> AsyncIterator[AsyncIterator[Any]]:
    """``requests`` with each unparsable one refused; closed (and gRPC's own request
    iterator with it) when the handler ends, however it ends: an unfinished iterator kept
    the last request it read for good (QA-Y: an outsider's refused 10 MB peer messages
    kept 140 MB each)."""

    async def checked() -> AsyncGenerator[Any, None]:
        received = aiter(requests)  # (gRPC's: an async generator, its last request in it)
        try:
            async for request in received:
                if isinstance(request, _Malformed):
                    await _refuse(method, request, context)
                yield request
        finally:
            close: Any = getattr(received, "aclose", None)
            if close is not None:
                await close()

    reqs = checked()
    try:
        yield reqs
    finally:
        await reqs.aclose()


class MalformedRequests(_Interceptor):
    """Answer INVALID_ARGUMENT to request bytes that do not parse as the method's message.

    grpc's own deserialization failure surfaces as UNKNOWN before any handler runs, so
    every handler's deserializer is wrapped: an unparsable message becomes a marker that
    the wrapped behaviour refuses (for streamed requests, when the handler reads it from
    its request iterator; every servicer here iterates, none uses ``context.read()``).
    """

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        found = await continuation(details)
        handler: Any = found  # grpc-stubs type the behaviours as sync ones
        if handler is None or handler.request_deserializer is None:
            return found
        method = details.method.rsplit("/", 1)[-1]
        parse = _lenient(handler.request_deserializer)
        out = handler.response_serializer
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                if isinstance(request, _Malformed):
                    await _refuse(method, request, context)
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(_any(unary_unary), parse, out)
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream
            if not inspect.isasyncgenfunction(inner_us):  # writes with context.write

                async def unary_write(request: Any, context: Any) -> None:
                    if isinstance(request, _Malformed):
                        await _refuse(method, request, context)
                    await inner_us(request, context)

                return grpc.unary_stream_rpc_method_handler(_any(unary_write), parse, out)

            async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                if isinstance(request, _Malformed):
                    await _refuse(method, request, context)
                async for item in inner_us(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(_any(unary_stream), parse, out)

        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def stream_unary(requests: AsyncIterator[Any], context: Any) -> Any:
                async with _checked(method, requests, context) as reqs:
                    return await inner_su(reqs, context)

            return grpc.stream_unary_rpc_method_handler(_any(stream_unary), parse, out)
        inner_ss = handler.stream_stream
        if not inspect.isasyncgenfunction(inner_ss):  # writes with context.write

            async def stream_write(requests: AsyncIterator[Any], context: Any) -> None:
                async with _checked(method, requests, context) as reqs:
                    await inner_ss(reqs, context)

            return grpc.stream_stream_rpc_method_handler(_any(stream_write), parse, out)

        async def stream_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            async with _checked(method, requests, context) as reqs:
                async for item in inner_ss(reqs, context):
                    yield item

        return grpc.stream_stream_rpc_method_handler(_any(stream_stream), parse, out)
