"""Builds one adapter per configured provider: a protocol -> adapter class table.

Adding a protocol is one adapter file and one entry in ``ADAPTERS``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Protocol

import httpx

from dispatcher.providers.anthropic import AnthropicMessagesProvider
from dispatcher.providers.base import Provider
from dispatcher.providers.openai import OpenAIChatProvider
from modelroute.config import Config, ProviderConfig

log = logging.getLogger("modelroute.providers")


class AdapterFactory(Protocol):
    def __call__(
        self,
        config: ProviderConfig,
        client: httpx.AsyncClient | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Provider: ...


ADAPTERS: Mapping[str, AdapterFactory] = {
    "openai": OpenAIChatProvider,
    "anthropic": AnthropicMessagesProvider,
}


def build_providers(
    config: Config,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Provider]:
    """Provider name -> adapter, each with its own pooled HTTP client.

    ``transport`` (tests) replaces the network for every adapter. A provider whose key variable
    is unset is built anyway (a local server may need no key) and a warning names the variable."""
    env = os.environ if environ is None else environ
    out: dict[str, Provider] = {}
    for name, pc in config.providers.items():
        if pc.api_key_env and not env.get(pc.api_key_env):
            log.warning("provider %s: environment variable %s is not set", name, pc.api_key_env)
        out[name] = ADAPTERS[pc.protocol](pc, transport=transport, environ=env)
    return out


async def close_providers(providers: Mapping[str, Provider]) -> None:
    """Close every adapter's connection pool (all of them, even if one fails)."""
    results = await asyncio.gather(
        *(p.aclose() for p in providers.values()), return_exceptions=True
    )
    for name, r in zip(providers, results, strict=True):
        if isinstance(r, BaseException):
            log.warning("provider %s: closing failed: %s", name, type(r).__name__)
