"""The server boundary: ``LedgerError`` -> gRPC status, in one place (STYLE.md §7)."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

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
            await context.abort(status_code(e), str(e))
            raise  # unreachable: abort raises

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
