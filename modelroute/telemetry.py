"""OpenTelemetry traces: one span per Decide and one per Execute (with an event per attempt,
failure and reset), no request text in any attribute.

Spans go through the OpenTelemetry API, which is a no-op until a tracer provider is installed:
``configure("console")`` (``modelroute serve --trace console``) prints finished spans; tests
install an in-memory exporter. An operator's own SDK setup (any exporter) works the same way,
since spans only use the global provider.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

EXPORTERS = ("none", "console")
_UNKNOWN = object()
# A provider named by the environment is loaded by the API at its first use.
_ENV_PROVIDER = OTEL_PYTHON_TRACER_PROVIDER in os.environ


def tracer() -> trace.Tracer:
    """The modelroute tracer of the current global provider (a no-op one by default)."""
    return trace.get_tracer("modelroute")


def tracing_enabled() -> bool:
    """Whether a real tracer provider is installed (not the API's default proxy): hot paths skip
    building no-op spans when it is not. Checked per call, so a provider installed later counts.

    The API sets its global provider once and never unsets it, so the module's global is read
    first: ``trace.get_tracer_provider()`` looks the environment up on every call while no
    provider is set (a raised and caught KeyError, a few microseconds of every Decide)."""
    if getattr(trace, "_TRACER_PROVIDER", _UNKNOWN) is None and not _ENV_PROVIDER:
        return False
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def configure(exporter: str, *, service_name: str = "modelroute") -> TracerProvider | None:
    """Install a tracer provider exporting to ``exporter`` ("none" installs nothing)."""
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown trace exporter {exporter!r} (known: {', '.join(EXPORTERS)})")
    if exporter == "none":
        return None
    from opentelemetry.sdk.resources import Resource

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    span_exporter: SpanExporter = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    return provider
