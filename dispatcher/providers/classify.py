"""The one place where provider failures become ``ProviderError(ErrorClass, ...)``.

Inputs: an HTTP status with its headers and (bounded) body, an httpx transport exception, an
error object sent inside an SSE stream after HTTP 200, a malformed stream, a stream cut before
its terminal marker. The table is drawn in ``docs/errors.md``.

Messages are built here from the provider name, the HTTP status and the provider's short error
type/code identifiers only: a provider's free-text message can quote the prompt or part of a key,
so it is read for classification (context overflow, content policy) and never copied.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx

from modelroute.domain import ErrorClass
from modelroute.errors import ProviderError

# A stream that ends without its terminal marker ([DONE] / message_stop): the connection or the
# upstream died mid-answer. Classed OVERLOADED (fail over at once, counts for the breaker),
# recognisable by this message prefix.
STREAM_CUT = "stream cut"
MALFORMED = "malformed stream"

# Context overflow as phrased by OpenAI, Anthropic, vLLM, llama.cpp, TGI-based hosts, Groq.
_OVERFLOW = re.compile(
    r"context_length_exceeded|exceed_context_size"
    r"|maximum context length|context window|context limit"
    r"|prompt is too long|too long and exceeds"
    r"|exceeds? (the )?(available )?context"
    r"|reduce the length of the (messages|prompt)"
    r"|tokens \+ `?max_new_tokens`? must be <=",
    re.IGNORECASE,
)
_CONTENT_POLICY = re.compile(
    r"content_policy|content_filter|content management policy|safety system|flagged",
    re.IGNORECASE,
)
# Provider error "type"/"code" identifiers -> class (before looking at the HTTP status).
_TYPE_CLASSES: dict[str, ErrorClass] = {
    "invalid_request_error": ErrorClass.INVALID_REQUEST,
    "badrequesterror": ErrorClass.INVALID_REQUEST,
    "context_length_exceeded": ErrorClass.CONTEXT_OVERFLOW,
    "exceed_context_size_error": ErrorClass.CONTEXT_OVERFLOW,
    "authentication_error": ErrorClass.AUTH,
    "permission_error": ErrorClass.AUTH,
    "invalid_api_key": ErrorClass.AUTH,
    "insufficient_quota": ErrorClass.AUTH,
    "billing_error": ErrorClass.AUTH,
    "rate_limit_error": ErrorClass.RATE_LIMITED,
    "rate_limit_exceeded": ErrorClass.RATE_LIMITED,
    "overloaded_error": ErrorClass.OVERLOADED,
    "service_unavailable": ErrorClass.OVERLOADED,
    "server_is_overloaded": ErrorClass.OVERLOADED,
    "not_found_error": ErrorClass.OVERLOADED,
    "model_not_found": ErrorClass.OVERLOADED,
    "timeout_error": ErrorClass.TIMEOUT,
    "api_error": ErrorClass.INTERNAL,
    "server_error": ErrorClass.INTERNAL,
    "internal_server_error": ErrorClass.INTERNAL,
    "content_policy_violation": ErrorClass.CONTENT_POLICY,
    "content_filter": ErrorClass.CONTENT_POLICY,
}
_STATUS_CLASSES: dict[int, ErrorClass] = {
    400: ErrorClass.INVALID_REQUEST,
    401: ErrorClass.AUTH,
    402: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    # The endpoint cannot serve this model (unknown model or wrong path): out of rotation.
    404: ErrorClass.OVERLOADED,
    408: ErrorClass.TIMEOUT,
    413: ErrorClass.INVALID_REQUEST,
    422: ErrorClass.INVALID_REQUEST,
    429: ErrorClass.RATE_LIMITED,
    500: ErrorClass.INTERNAL,
    502: ErrorClass.OVERLOADED,
    503: ErrorClass.OVERLOADED,
    504: ErrorClass.TIMEOUT,
    529: ErrorClass.OVERLOADED,
}
_IDENT = re.compile(r"[^A-Za-z0-9_.\-]")


def classify_http_status(
    provider: str, status: int, headers: Mapping[str, str], body: bytes
) -> ProviderError:
    """An HTTP error response (status != 200) -> ProviderError."""
    obj = _json_object(body)
    err = error_object(obj) if obj is not None else None
    ident, text = _describe(err) if err is not None else ("", body[:4096].decode(errors="replace"))
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = _unlisted_status_class(status)
    cls = _refine(cls, ident, text, from_status=True)
    retry_after = retry_after_s(headers) if status in (429, 503, 529) else None
    what = f" {ident}" if ident else ""
    return ProviderError(
        cls, f"{provider}: HTTP {status}{what}", status=status, retry_after_s=retry_after
    )


def _unlisted_status_class(status: int) -> ErrorClass:
    if status >= 500:
        return ErrorClass.INTERNAL
    if status >= 400:
        return ErrorClass.INVALID_REQUEST
    # 1xx/2xx other than 200, 3xx (redirects are not followed): the endpoint is misconfigured
    # or not the API it claims to be; another hop may serve the request.
    return ErrorClass.OVERLOADED


def classify_stream_error(provider: str, err: Mapping[str, Any]) -> ProviderError:
    """An error object sent inside the SSE stream after HTTP 200 -> ProviderError."""
    ident, text = _describe(err)
    cls = _TYPE_CLASSES.get(ident.lower(), ErrorClass.INTERNAL)
    code = err.get("code")
    if isinstance(code, int) and code in _STATUS_CLASSES and ident.lower() not in _TYPE_CLASSES:
        cls = _STATUS_CLASSES[code]
    cls = _refine(cls, ident, text, from_status=False)
    what = f" {ident}" if ident else ""
    return ProviderError(cls, f"{provider}: error event in stream{what}")


def classify_transport(provider: str, exc: httpx.HTTPError) -> ProviderError:
    """A connection-level failure (no HTTP status) -> ProviderError."""
    if isinstance(exc, httpx.ConnectTimeout):
        return ProviderError(ErrorClass.TIMEOUT, f"{provider}: connect timeout")
    if isinstance(exc, httpx.PoolTimeout):
        return ProviderError(ErrorClass.TIMEOUT, f"{provider}: no free connection in time")
    if isinstance(exc, httpx.ReadTimeout):
        return ProviderError(ErrorClass.TIMEOUT, f"{provider}: stalled (no data in time)")
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(ErrorClass.TIMEOUT, f"{provider}: {type(exc).__name__}")
    if isinstance(exc, httpx.DecodingError):
        return malformed("body could not be decoded", provider)
    if isinstance(exc, httpx.ConnectError):
        return ProviderError(ErrorClass.OVERLOADED, f"{provider}: connection failed")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return ProviderError(
            ErrorClass.OVERLOADED, f"{provider}: {STREAM_CUT} (connection closed or reset)"
        )
    return ProviderError(ErrorClass.OVERLOADED, f"{provider}: transport error {type(exc).__name__}")


def stream_cut(provider: str, marker: str) -> ProviderError:
    return ProviderError(ErrorClass.OVERLOADED, f"{provider}: {STREAM_CUT} (no {marker})")


def malformed(detail: str, provider: str = "") -> ProviderError:
    prefix = f"{provider}: " if provider else ""
    return ProviderError(ErrorClass.INTERNAL, f"{prefix}{MALFORMED}: {detail}")


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, else ``retry-after`` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        v = _finite(ms)
        if v is not None:
            return max(0.0, v / 1000)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    v = _finite(raw)
    if v is not None:
        return max(0.0, v)
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _finite(raw: str) -> float | None:
    try:
        v = float(raw.strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _refine(cls: ErrorClass, ident: str, text: str, *, from_status: bool) -> ErrorClass:
    """Type/code identifiers and message phrasing sharpen the status-level class."""
    by_type = _TYPE_CLASSES.get(ident.lower())
    if by_type is not None and (not from_status or _compatible(cls, by_type)):
        cls = by_type
    if cls in (ErrorClass.INVALID_REQUEST, ErrorClass.INTERNAL) and _OVERFLOW.search(text):
        return ErrorClass.CONTEXT_OVERFLOW
    if cls is ErrorClass.INVALID_REQUEST and _CONTENT_POLICY.search(f"{ident} {text}"):
        return ErrorClass.CONTENT_POLICY
    return cls


def _compatible(by_status: ErrorClass, by_type: ErrorClass) -> bool:
    """A type identifier may only sharpen a status into a more specific class (400 +
    context_length_exceeded, 429 + insufficient_quota, 500 + overloaded_error), never turn it
    into an unrelated one (a 429 whose body says invalid_request_error is still a 429)."""
    return by_type in _REFINEMENTS.get(by_status, ())


_REFINEMENTS: dict[ErrorClass, frozenset[ErrorClass]] = {
    ErrorClass.INVALID_REQUEST: frozenset({ErrorClass.CONTEXT_OVERFLOW, ErrorClass.CONTENT_POLICY}),
    ErrorClass.RATE_LIMITED: frozenset({ErrorClass.AUTH}),
    ErrorClass.INTERNAL: frozenset({ErrorClass.OVERLOADED, ErrorClass.TIMEOUT}),
}


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def error_object(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The error object inside an error body: OpenAI/Anthropic ``{"error": {...}}``, vLLM
    ``{"object": "error", ...}``, llama.cpp ``{"error": {"code", "type", "message"}}``."""
    inner = obj.get("error")
    if isinstance(inner, dict):
        return inner
    if isinstance(inner, str):
        return {"message": inner}
    return obj


def _describe(err: Mapping[str, Any]) -> tuple[str, str]:
    """(short identifier safe to log, free text used only for matching)."""
    ident = ""
    for key in ("code", "type"):
        v = err.get(key)
        if isinstance(v, str) and v and _TYPE_CLASSES.get(v.lower()) is not None:
            ident = v
            break
    if not ident:
        for key in ("type", "code"):
            v = err.get(key)
            if isinstance(v, str) and v:
                ident = v
                break
    ident = _IDENT.sub("", ident)[:64]
    msg = err.get("message")
    return ident, msg if isinstance(msg, str) else ""
