"""Provider client shards: streams go to the least busy pool, sequential traffic to one."""

from __future__ import annotations

import httpx

from dispatcher.providers.sse import ClientShards


async def test_lease_picks_the_least_busy_client_and_the_first_on_ties() -> None:
    clients = [httpx.AsyncClient() for _ in range(3)]
    shards = ClientShards(clients)
    try:
        for _ in range(3):
            with shards.lease() as c:
                assert c is clients[0]
        with shards.lease() as a, shards.lease() as b, shards.lease() as c:
            assert [a, b, c] == clients
            with shards.lease() as d:
                assert d is clients[0]
        with shards.lease() as a:
            assert a is clients[0]
    finally:
        await shards.aclose()
    assert all(c.is_closed for c in clients)
