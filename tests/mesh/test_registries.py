"""The registries against real servers: what a sidecar's registration looks like in Redis and in
etcd, and how it survives a lease that was lost (the end-to-end behaviour, several sidecars calling
each other, is in tests/e2e/test_invoke.py)."""

from __future__ import annotations

import asyncio
import uuid

import aetcd

from mesh.etcd_registry import EtcdRegistry, EtcdRegistrySettings
from mesh.redis_registry import KEY_PREFIX, RedisRegistry, RedisRegistrySettings
from tests.servers import EtcdServer, RedisServer


async def test_an_etcd_registration_is_a_leased_key_given_back_when_its_lease_is_lost(
    etcd_server: EtcdServer,
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}/"
    config = {"endpoints": ["127.0.0.1:1", etcd_server.address], "keyPrefix": prefix, "ttl": "2s"}
    registry = EtcdRegistry(EtcdRegistrySettings.model_validate(config))
    caller = EtcdRegistry(EtcdRegistrySettings.model_validate({**config, "cacheSeconds": "10ms"}))
    direct = aetcd.Client(host=etcd_server.host, port=etcd_server.port)
    await registry.start("orders", "127.0.0.1:3501")
    await caller.start("", "unused")
    try:
        assert registry.describe()["endpoints"] == etcd_server.address  # the endpoint that answered
        stored = await direct.get(f"{prefix}orders/127.0.0.1:3501".encode())
        assert stored is not None and stored.value == b"127.0.0.1:3501" and stored.lease
        assert await caller.resolve("orders") == "127.0.0.1:3501"

        await direct.revoke_lease(stored.lease)  # the lease is gone, as after a long etcd outage
        assert await direct.get(f"{prefix}orders/127.0.0.1:3501".encode()) is None
        await asyncio.sleep(2 / 3 + 0.5)  # the next renewal finds it gone and registers again
        again = await direct.get(f"{prefix}orders/127.0.0.1:3501".encode())
        assert again is not None and again.lease != stored.lease
    finally:
        await registry.aclose()
        await caller.aclose()
    assert list(await direct.get_prefix(prefix.encode())) == []  # revoked at stop
    await direct.close()


async def test_a_redis_registration_is_scored_by_its_lease_end_and_removed_at_stop(
    redis_server: RedisServer,
) -> None:
    from redis.asyncio import Redis

    app_id = f"test-{uuid.uuid4().hex[:8]}"
    registry = RedisRegistry(
        RedisRegistrySettings.model_validate({"redisHost": redis_server.address, "ttl": "1s"})
    )
    direct = Redis(host=redis_server.host, port=redis_server.port)
    await registry.start(app_id, "127.0.0.1:3501")
    try:
        members = await direct.zrange(KEY_PREFIX + app_id, 0, -1, withscores=True)
        now_ms = (await direct.time())[0] * 1000
        assert [m for m, _ in members] == [b"127.0.0.1:3501"]
        assert now_ms < members[0][1] <= now_ms + 2000
        assert await registry.resolve(app_id) == "127.0.0.1:3501"
    finally:
        await registry.aclose()
    assert await direct.zrange(KEY_PREFIX + app_id, 0, -1) == []
    await direct.aclose()


async def test_round_robin_reaches_every_instance_across_cache_refreshes() -> None:
    from mesh.registry import LeasedRegistry, RegistrySettings

    class Fixed(LeasedRegistry):
        kind, server_field = "fixed", "server"
        server = "here"

        async def _connect(self) -> None: ...
        async def _register(self, app_id: str, member: str) -> None: ...
        async def _live(self, app_id: str) -> list[str]:
            return ["a:1", "b:1", "c:1"]

        async def _deregister(self, app_id: str, member: str) -> None: ...
        async def _disconnect(self) -> None: ...

    registry = Fixed(RegistrySettings(cacheSeconds="1ms"))
    picked = []
    for _ in range(6):
        picked.append(await registry.resolve("orders"))
        await asyncio.sleep(0.002)  # every call reads the registry again
    assert picked == ["a:1", "b:1", "c:1"] * 2
