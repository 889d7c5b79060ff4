"""What placement keeps in Redis and in etcd (the contract's behaviour is proved by
tests/conformance/test_placement_conformance.py): leases, memberships and claims as the modules'
texts describe them, every key given back."""

from __future__ import annotations

import uuid

import aetcd
from redis.asyncio import Redis

from mesh.etcd_registry import EtcdRegistrySettings
from mesh.placement.etcd import EtcdPlacement
from mesh.placement.redis import LEASES, PREFIX, RedisPlacement
from mesh.redis_registry import RedisRegistrySettings
from tests.servers import EtcdServer, RedisServer


async def test_redis_keeps_scored_tokens_and_claims_that_expire_with_their_hosts(
    redis_server: RedisServer,
) -> None:
    actor_type = f"Storage{uuid.uuid4().hex[:8]}"
    placement = RedisPlacement(
        RedisRegistrySettings.model_validate({"redisHost": redis_server.address, "ttl": "2s"})
    )
    direct = Redis(host=redis_server.host, port=redis_server.port)
    await placement.start("app", "127.0.0.1:3581")
    try:
        await placement.host(frozenset({actor_type}))
        assert await placement.claim(actor_type, "cart-1")
        now_ms = (await direct.time())[0] * 1000
        members = await direct.zrange(f"{PREFIX}type||{actor_type}", 0, -1, withscores=True)
        [(token, ends)] = members
        assert token.startswith(b"127.0.0.1:3581|") and now_ms < ends <= now_ms + 3000
        assert await direct.zscore(LEASES, token) == ends
        assert await direct.hgetall(f"{PREFIX}claims||{actor_type}") == {b"cart-1": token}
        for key in (f"{PREFIX}type||{actor_type}", f"{PREFIX}claims||{actor_type}"):
            assert 5000 < await direct.pttl(key) <= 6000  # three ttls: nothing outlives its hosts
        assert await direct.pttl(LEASES) > 5000  # shared: the longest of its leases' three ttls
    finally:
        await placement.aclose()
    assert await direct.zscore(LEASES, token) is None  # a graceful stop: gone at once
    assert await direct.hgetall(f"{PREFIX}claims||{actor_type}") == {}
    assert await direct.zrange(f"{PREFIX}type||{actor_type}", 0, -1) == []
    await direct.aclose()


async def test_etcd_keeps_memberships_and_claims_on_the_hosts_lease(etcd_server: EtcdServer) -> None:
    prefix = f"/test-{uuid.uuid4().hex[:8]}/nr/"
    placement = EtcdPlacement(
        EtcdRegistrySettings.model_validate(
            {"endpoints": etcd_server.address, "keyPrefix": prefix, "ttl": "2s"}
        )
    )
    direct = aetcd.Client(host=etcd_server.host, port=etcd_server.port)
    await placement.start("app", "127.0.0.1:3582")
    base = prefix.rstrip("/") + "-placement/"
    try:
        await placement.host(frozenset({"Cart/Type"}))
        assert await placement.claim("Cart/Type", "id with/slash")
        member = await direct.get(f"{base}types/Cart%2FType/127.0.0.1:3582".encode())
        claim = await direct.get(f"{base}claims/Cart%2FType/id%20with%2Fslash".encode())
        assert member is not None and member.value == b"127.0.0.1:3582" and member.lease
        assert claim is not None and claim.lease == member.lease and claim.value == str(member.lease).encode()
    finally:
        await placement.aclose()
    assert list(await direct.get_prefix(base.encode())) == []  # the lease revoked: every key gone
    await direct.close()
