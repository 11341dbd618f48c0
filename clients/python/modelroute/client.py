"""A thin asyncio client for modelroute over the generated stubs: deadlines, retries, and the
event-stream rules (a ``reset`` discards what was received; ``failed`` is an error) done once.

    async with Client("127.0.0.1:50051") as mr:
        plan = await mr.decide("Summarize this ...", tier="standard")
        answer = await mr.complete("Write a haiku about routers")

``decide`` is idempotent and retried on UNAVAILABLE by gRPC's own retry policy; ``execute`` is
not retried (text may already have reached the caller).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from grpc import aio

from modelroute.v1 import (
    common_pb2,
    dispatcher_pb2,
    dispatcher_pb2_grpc,
    engine_pb2,
    engine_pb2_grpc,
)

Messages = str | Sequence[tuple[str, str]]
_ROLES = {
    "system": common_pb2.ROLE_SYSTEM,
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
    "tool": common_pb2.ROLE_TOOL,
}


def _service_config(retries: int) -> str:
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": "modelroute.v1.RoutingEngine", "method": "Decide"}],
                    "retryPolicy": {
                        "maxAttempts": retries + 1,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "1s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


def decide_request(
    messages: Messages,
    *,
    tier: str = "",
    tenant: str = "",
    request_id: str = "",
    max_output_tokens: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> engine_pb2.DecideRequest:
    """A request from a prompt, or from (role, content) pairs."""
    req = engine_pb2.DecideRequest(tier=tier, tenant=tenant, request_id=request_id)
    pairs = [("user", messages)] if isinstance(messages, str) else list(messages)
    for role, content in pairs:
        if role not in _ROLES:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(_ROLES)})")
        req.messages.add(role=_ROLES[role], content=content)
    if max_output_tokens is not None:
        req.max_output_tokens = max_output_tokens
    req.metadata.update(metadata or {})
    return req


@dataclass
class ExecutionFailed(Exception):
    """The stream ended with a ``failed`` event; ``partial`` is the text kept before it."""

    error_class: str
    message: str
    partial: str

    def __str__(self) -> str:
        return f"{self.error_class}: {self.message}"


class Client:
    def __init__(self, target: str, *, timeout_s: float = 10.0, retries: int = 2) -> None:
        self.timeout_s = timeout_s
        self._channel = aio.insecure_channel(
            target,
            options=[("grpc.enable_retries", 1), ("grpc.service_config", _service_config(retries))],
        )
        self._engine = engine_pb2_grpc.RoutingEngineStub(self._channel)
        self._dispatcher = dispatcher_pb2_grpc.DispatcherStub(self._channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(None)

    async def decide(
        self, messages: Messages, *, tier: str = "", tenant: str = "", request_id: str = ""
    ) -> engine_pb2.Decision:
        """The routing plan (``RoutingEngine.Decide``), within the client's deadline."""
        req = decide_request(messages, tier=tier, tenant=tenant, request_id=request_id)
        return await self._engine.Decide(req, timeout=self.timeout_s)

    async def execute(
        self, request: dispatcher_pb2.ExecuteRequest, *, timeout_s: float | None = None
    ) -> AsyncIterator[dispatcher_pb2.ExecuteEvent]:
        """Every event of ``Dispatcher.Execute``, as sent."""
        call = self._dispatcher.Execute(request, timeout=timeout_s or self.timeout_s * 6)
        async for ev in call:
            yield ev

    async def complete(
        self,
        messages: Messages,
        *,
        tier: str = "",
        tenant: str = "",
        max_output_tokens: int | None = None,
        metadata: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """The answer's text: deltas joined, discarded on ``reset``; ``failed`` raises
        ``ExecutionFailed`` with the text kept so far."""
        req = decide_request(
            messages,
            tier=tier,
            tenant=tenant,
            max_output_tokens=max_output_tokens,
            metadata=metadata,
        )
        request = dispatcher_pb2.ExecuteRequest(request=req)
        return await answer_text(self.execute(request, timeout_s=timeout_s))


async def answer_text(events: AsyncIterator[dispatcher_pb2.ExecuteEvent]) -> str:
    """The text a stream of events delivers: deltas joined, everything before a ``reset``
    dropped; a ``failed`` event (or no terminal event) raises ``ExecutionFailed``."""
    parts: list[str] = []
    async for ev in events:
        kind = ev.WhichOneof("event")
        if kind == "delta":
            parts.append(ev.delta.text)
        elif kind == "reset":
            parts.clear()
        elif kind == "failed":
            name = common_pb2.ErrorClass.Name(ev.failed.error_class)
            raise ExecutionFailed(name, ev.failed.message, "".join(parts))
        elif kind == "completed":
            return "".join(parts)
    raise ExecutionFailed(
        "ERROR_CLASS_UNSPECIFIED", "stream ended without a terminal event", "".join(parts)
    )
