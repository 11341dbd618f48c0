"""The provider simulator: routes, auth, replay, pacing, faults and stats.

GET  /healthz                      liveness
GET  /stats                        counts per model, fault and status
GET  /v1/models                    OpenAI model list
POST /v1/chat/completions          OpenAI Chat Completions (stream or not)
GET  /anthropic/v1/models          Anthropic model list
POST /anthropic/v1/messages        Anthropic Messages (stream or not)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatcher.simulator.anthropic import AnthropicDialect
from dispatcher.simulator.dialect import (
    CONTENT_FILTER,
    ApiError,
    Dialect,
    SimRequest,
    StreamFrames,
)
from dispatcher.simulator.faults import Fault, FaultPicker, FaultSpecError
from dispatcher.simulator.http import HttpServer, Request, Responder
from dispatcher.simulator.openai import OpenAIDialect
from dispatcher.simulator.replay import ReplayStore
from dispatcher.simulator.script import DEFAULT_CHUNK_TOKENS, Script, build_script
from modelroute.config import Config, load_config

log = logging.getLogger("modelroute.simulator")

KEY_ENV = "MODELROUTE_SIMULATOR_KEY"
REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
_UNSET = object()
MID_STREAM = ("stall", "cut", "malformed", "error_event")


@dataclass(frozen=True, slots=True)
class ModelProfile:
    ttft_ms: float
    tokens_per_s: float
    context_window: int


# Models the data has but the config does not name are served with these.
DEFAULT_PROFILE = ModelProfile(ttft_ms=300.0, tokens_per_s=60.0, context_window=32768)


class Stats:
    """Counters readable in-process (``snapshot()``) and over HTTP (``GET /stats``)."""

    def __init__(self) -> None:
        self.models: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.requests = 0
        self.open_streams = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "open_streams": self.open_streams,
            "models": dict(self.models),
            "faults": dict(self.faults),
            "statuses": dict(self.statuses),
        }


class Simulator:
    def __init__(
        self,
        *,
        config: Config | None = None,
        data_dir: Path | str | None = None,
        speed: float = 1.0,
        fault_odds: Mapping[str, float] | None = None,
        seed: int | None = None,
        api_key: object = _UNSET,
        chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
        replay: ReplayStore | None = None,
    ) -> None:
        """``replay`` shares an already loaded store (tests); else one is made on ``data_dir``."""
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.config = config or load_config()
        self.replay = replay or ReplayStore(Path(data_dir) if data_dir else DEFAULT_DATA_DIR)
        self.speed = speed
        self.faults = FaultPicker(fault_odds, seed)
        key = os.environ.get(KEY_ENV) if api_key is _UNSET else api_key
        self._key = key if isinstance(key, str) and key else None
        self.chunk_tokens = chunk_tokens
        self.stats = Stats()
        self._profiles: dict[str, ModelProfile] = {
            m.name: ModelProfile(float(m.ttft_ms), float(m.tokens_per_s), m.context_window)
            for m in self.config.models.values()
        }
        self._load_task: asyncio.Task[None] | None = None
        self._openai = OpenAIDialect()
        self._anthropic = AnthropicDialect()
        self._http = HttpServer(self.handle)
        self.host = ""
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = await self._http.start(host, port)

    async def close(self) -> None:
        """Stop listening and cancel every open connection and stream."""
        await self._http.close()
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL (``.../v1``)."""
        return f"{self.root_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Anthropic base URL as the config names it (``.../anthropic/v1``)."""
        return f"{self.root_url}/anthropic/v1"

    async def ensure_loaded(self) -> None:
        """Load the replay data once, off the event loop."""
        if self._load_task is None:
            self._load_task = asyncio.create_task(self._load())
        await asyncio.shield(self._load_task)

    async def _load(self) -> None:
        await asyncio.to_thread(self.replay.load)
        for name in self.replay.models:
            self._profiles.setdefault(name, DEFAULT_PROFILE)

    @property
    def model_names(self) -> list[str]:
        return sorted(self._profiles)

    # -- routing ---------------------------------------------------------------------------
    async def handle(self, req: Request, resp: Responder) -> None:
        route = (req.method, req.path.rstrip("/"))
        if route == ("POST", "/v1/chat/completions"):
            await self._complete(self._openai, req, resp)
        elif route == ("POST", "/anthropic/v1/messages"):
            await self._complete(self._anthropic, req, resp)
        elif route == ("GET", "/healthz"):
            await resp.send_json(200, {"status": "ok"})
        elif route == ("GET", "/stats"):
            await resp.send_json(200, self.stats.snapshot())
        elif route in (("GET", "/v1/models"), ("GET", "/anthropic/v1/models")):
            dialect: Dialect = self._openai if route[1] == "/v1/models" else self._anthropic
            if self._key and not dialect.auth_ok(req.headers, self._key):
                await self._error(dialect, resp, dialect.unauthorized())
                return
            await self.ensure_loaded()
            await resp.send_json(200, dialect.models_list(self.model_names))
        else:
            err = ApiError(404, "invalid_request_error", f"Unknown request URL: {req.path}")
            await self._error(self._openai, resp, err)

    async def _error(self, dialect: Dialect, resp: Responder, err: ApiError) -> None:
        self.stats.statuses[str(err.status)] += 1
        await resp.send_json(err.status, dialect.error_body(err), err.headers)

    # -- completions -----------------------------------------------------------------------
    async def _complete(self, dialect: Dialect, req: Request, resp: Responder) -> None:
        self.stats.requests += 1
        try:
            sim, fault, profile = await self._admit(dialect, req)
        except ApiError as err:
            await self._error(dialect, resp, err)
            return
        if fault is not None:
            self.stats.faults[fault.name] += 1
            if await self._status_fault(dialect, sim, fault, profile, resp):
                return
        if fault is not None and fault.name == "timeout":
            self.stats.statuses["no_response"] += 1
            await resp.hang()
            return
        script = build_script(
            self.replay.answer(sim.model, sim.prompt),
            prefix=sim.prefix,
            max_tokens=sim.max_tokens,
            stop=sim.stop,
            chunk_tokens=self.chunk_tokens,
        )
        ttft_s, tps = self._pace(profile, req.headers)
        if sim.stream:
            await self._stream(dialect, sim, script, fault, resp, ttft_s, tps)
        else:
            await self._whole(dialect, sim, script, fault, resp, ttft_s, tps)

    async def _admit(
        self, dialect: Dialect, req: Request
    ) -> tuple[SimRequest, Fault | None, ModelProfile]:
        """Auth, parse, fault choice, model lookup and context check; raises ApiError."""
        if self._key and not dialect.auth_ok(req.headers, self._key):
            raise dialect.unauthorized()
        try:
            body = json.loads(req.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "invalid_request_error", "request body is not valid JSON") from e
        sim = dialect.parse(body, req.headers)
        try:
            fault = self.faults.pick(req.headers)
        except FaultSpecError as e:
            raise ApiError(400, "invalid_request_error", str(e)) from e
        try:
            await self.ensure_loaded()
        except OSError as e:
            log.error("simulator replay data unavailable: %s", e)
            raise ApiError(500, "api_error", "simulator replay data unavailable") from e
        profile = self._profiles.get(sim.model)
        if profile is None:
            raise dialect.not_found(sim.model)
        self.stats.models[sim.model] += 1
        if sim.input_tokens > profile.context_window:
            raise dialect.context_overflow(sim.model, sim.input_tokens, profile.context_window)
        return sim, fault, profile

    async def _status_fault(
        self,
        dialect: Dialect,
        sim: SimRequest,
        fault: Fault,
        profile: ModelProfile,
        resp: Responder,
    ) -> bool:
        """Answer an HTTP-status fault; False when the fault is not one."""
        if fault.status is None:
            return False
        if fault.name == "bad_gateway":
            self.stats.statuses["502"] += 1
            await resp.send(502, {"content-type": "text/html"}, BAD_GATEWAY_HTML)
        elif fault.name == "context_overflow":
            window = profile.context_window
            tokens = max(sim.input_tokens, window + 1)
            await self._error(dialect, resp, dialect.context_overflow(sim.model, tokens, window))
        else:
            err = dialect.fault_error(fault.name, sim.model, fault.retry_after_s)
            await self._error(dialect, resp, err)
        return True

    def _pace(self, profile: ModelProfile, headers: Mapping[str, str]) -> tuple[float, float]:
        """(seconds to first token, tokens per second); headers are absolute, not scaled."""
        ttft_s = profile.ttft_ms / 1000.0 / self.speed
        tps = profile.tokens_per_s * self.speed
        try:
            if "x-sim-ttft-ms" in headers:
                ttft_s = max(0.0, float(headers["x-sim-ttft-ms"]) / 1000.0)
            if "x-sim-tokens-per-s" in headers:
                tps = max(1e-3, float(headers["x-sim-tokens-per-s"]))
        except ValueError:
            log.warning("ignoring a non-numeric x-sim latency header")
        return ttft_s, tps

    async def _whole(
        self,
        dialect: Dialect,
        sim: SimRequest,
        script: Script,
        fault: Fault | None,
        resp: Responder,
        ttft_s: float,
        tps: float,
    ) -> None:
        """A non-streamed answer: wait as long as generating it would take, then send it."""
        name = fault.name if fault else ""
        if name == "content_filter":
            script = script.cut_after(fault.after_chunks if fault else 0, CONTENT_FILTER)
        await asyncio.sleep(ttft_s + script.answer.output_tokens / tps)
        if name in ("stall", "cut"):
            self.stats.statuses["no_response"] += 1
            if name == "cut":
                await resp.cut()
            else:
                await resp.hang()
        elif name == "malformed":
            self.stats.statuses["200"] += 1
            body = json.dumps(dialect.completion(sim, script.answer)).encode()
            await resp.send(200, {"content-type": "application/json"}, body[: len(body) // 2])
        elif name == "error_event":
            kind = "anthropic_overloaded" if dialect.name == "anthropic" else "internal"
            await self._error(dialect, resp, dialect.fault_error(kind, sim.model, 1))
        else:
            self.stats.statuses["200"] += 1
            await resp.send_json(200, dialect.completion(sim, script.answer))

    async def _stream(
        self,
        dialect: Dialect,
        sim: SimRequest,
        script: Script,
        fault: Fault | None,
        resp: Responder,
        ttft_s: float,
        tps: float,
    ) -> None:
        """An SSE answer paced by TTFT and tokens/s, with a mid-stream fault if asked."""
        self.stats.statuses["200"] += 1
        self.stats.open_streams += 1
        try:
            frames = dialect.frames(sim)
            await resp.start(200, SSE_HEADERS)
            await resp.write(frames.head())
            name = fault.name if fault else ""
            after = fault.after_chunks if fault else -1
            if name == "content_filter":
                script = script.cut_after(after, CONTENT_FILTER)
            loop = asyncio.get_running_loop()
            due = loop.time() + ttft_s
            for i, (text, tokens) in enumerate(script.chunks):
                if i == after and name in MID_STREAM:
                    await self._stream_fault(name, frames, resp)
                    return
                wait = due - loop.time()
                if wait > 0.0005:
                    await asyncio.sleep(wait)
                await resp.write(frames.delta(text))
                due += tokens / tps
            if after >= len(script.chunks) and name in MID_STREAM:
                await self._stream_fault(name, frames, resp)
                return
            wait = due - loop.time()
            if wait > 0.0005:
                await asyncio.sleep(wait)
            await resp.write(frames.tail(script.answer))
            await resp.finish()
        finally:
            self.stats.open_streams -= 1

    async def _stream_fault(self, name: str, frames: StreamFrames, resp: Responder) -> None:
        if name == "stall":
            await resp.hang()
        elif name == "cut":
            await resp.cut()
        else:
            await resp.write(frames.error_event() if name == "error_event" else frames.malformed())
            await resp.finish()


@asynccontextmanager
async def start_simulator(
    host: str = "127.0.0.1", port: int = 0, **kwargs: Any
) -> AsyncIterator[Simulator]:
    """``async with start_simulator(port=0, speed=100) as sim: sim.base_url``."""
    sim = Simulator(**kwargs)
    await sim.start(host, port)
    try:
        yield sim
    finally:
        await sim.close()
