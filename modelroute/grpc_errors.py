"""The one interceptor that maps ModelrouteError to gRPC status codes, for unary and streaming
handlers alike. Anything else escaping a handler is a bug: it is logged (without request data)
and becomes INTERNAL with a reference the operator can find in the log."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from modelroute.errors import ModelrouteError

log = logging.getLogger("modelroute.grpc")

Ctx = aio.ServicerContext[Any, Any]

Unary = Callable[[Any, Ctx], Awaitable[Any]]
Streaming = Callable[[Any, Ctx], AsyncIterator[Any]]


async def _abort(context: Ctx, exc: BaseException, method: str) -> None:
    if isinstance(exc, ModelrouteError):
        await context.abort(exc.grpc_status, exc.message)
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error in %s (ref %s): %s", method, ref, type(exc).__name__, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {ref})")


def _wrap_unary(fn: Unary, method: str) -> Unary:
    async def handler(request: Any, context: Ctx) -> Any:
        try:
            return await fn(request, context)
        except (ModelrouteError, Exception) as e:
            if isinstance(e, aio.AbortError):
                raise
            await _abort(context, e, method)

    return handler


def _wrap_stream(fn: Streaming, method: str) -> Streaming:
    async def handler(request: Any, context: Ctx) -> AsyncIterator[Any]:
        try:
            async for item in fn(request, context):
                yield item
        except (ModelrouteError, Exception) as e:
            if isinstance(e, aio.AbortError):
                raise
            await _abort(context, e, method)

    return handler


class ErrorMappingInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps each method's handler once and reuses the wrapper for every later call."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = await continuation(details)
        if handler is None:
            return handler
        wrapped = _wrap_handler(handler, method)
        self._wrapped[method] = wrapped
        return wrapped


def _wrap_handler(
    handler: grpc.RpcMethodHandler[Any, Any], method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, method),  # type: ignore[arg-type]
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream(handler.unary_stream, method),  # type: ignore[arg-type]
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler
