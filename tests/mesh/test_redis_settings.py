"""The mesh's Redis (the name-resolution registry and the shared rate-limit buckets) is given with
Dapr's Redis component fields and connects as the Redis components do: here as an ACL user of a
real Redis whose default user is switched off, so only ``redisUsername`` + ``redisPassword`` get in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from mesh.errors import SettingsError
from mesh.name_resolution import build_resolver, parse_name_resolution
from mesh.ratelimit import build_rate_limits, parse_rate_limits
from tests.servers import RedisServer

USER, PASSWORD = "l8-mesh", "s3cret-pass"


@pytest.fixture
def acl_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own: its default user is switched off, which the shared one cannot be."""
    with RedisServer() as server:
        yield server


async def _only_the_acl_user_gets_in(server: RedisServer) -> None:
    admin = Redis(host=server.host, port=server.port)
    try:
        await admin.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", "~l8||*", "+@all")
        await admin.execute_command("ACL", "SETUSER", "default", "off")
    finally:
        await admin.aclose()


def _scope(path: str) -> dict[str, object]:
    return {"type": "http", "path": path, "method": "GET", "headers": [], "client": ("10.0.0.1", 5000)}


async def test_an_acl_user_serves_the_registry_and_the_shared_buckets(acl_redis: RedisServer) -> None:
    await _only_the_acl_user_gets_in(acl_redis)
    connection = {"redisHost": acl_redis.address, "redisUsername": USER, "redisPassword": PASSWORD}

    app_id = f"acl-{uuid.uuid4().hex[:8]}"
    registry = build_resolver(parse_name_resolution({"type": "redis", **connection, "ttl": "2s"}))
    await registry.start(app_id, "127.0.0.1:3501")
    try:
        assert await registry.resolve(app_id) == "127.0.0.1:3501"
    finally:
        await registry.aclose()

    rule = {"name": f"acl-{uuid.uuid4().hex[:6]}", "resource": "/x", "threshold": 1, "interval": "60s",
            "shared": True}  # fmt: skip
    limits = build_rate_limits(parse_rate_limits({**connection, "rules": [rule]}), [], {}, "app")
    await limits.start()
    try:
        assert await limits.check(_scope("/x")) is None
        refused = await limits.check(_scope("/x"))  # fail-open would let it through: Redis answered
        assert refused is not None and refused.rule.name == rule["name"]
        assert "storeErrors" not in limits.describe()[0]
    finally:
        await limits.aclose()

    as_user = Redis(host=acl_redis.host, port=acl_redis.port, username=USER, password=PASSWORD)
    try:
        assert await as_user.exists(f"l8||rl||{rule['name']}||") == 1
    finally:
        await as_user.aclose()


async def test_without_the_username_the_same_password_is_refused_naming_the_field(
    acl_redis: RedisServer,
) -> None:
    await _only_the_acl_user_gets_in(acl_redis)
    password_only = {"redisHost": acl_redis.address, "redisPassword": PASSWORD}
    registry = build_resolver(parse_name_resolution({"type": "redis", **password_only}))
    with pytest.raises(SettingsError, match=r"^name_resolution\.redisHost: cannot register"):
        await registry.start("orders", "127.0.0.1:3501")
    await registry.aclose()
    rule = {"resource": "/x", "threshold": 1, "shared": True}
    limits = build_rate_limits(parse_rate_limits({**password_only, "rules": [rule]}), [], {}, "app")
    with pytest.raises(SettingsError, match=r"^rate_limits\.redisHost: cannot reach Redis"):
        await limits.start()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "redis", "redisHost": "r:6379", "redisDB": "x"}, "name_resolution.redisDB"),
        ({"type": "redis", "redisHost": "r:6379", "enableTLS": "maybe"}, "name_resolution.enableTLS"),
        ({"type": "redis", "redisHost": "r:6379", "poolSize": 0}, "name_resolution.poolSize"),
        ({"type": "redis", "redisHost": "r"}, "name_resolution.redisHost"),
    ],
)
def test_the_redis_fields_are_checked_as_the_components_check_them(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=f"^{message}"):
        parse_name_resolution(raw)
    rate_limits = {key: value for key, value in raw.items() if key != "type"}
    with pytest.raises(SettingsError, match=f"^{message.replace('name_resolution', 'rate_limits')}"):
        parse_rate_limits(rate_limits)


def test_the_redis_fields_reach_the_connection() -> None:
    settings = parse_name_resolution(
        {"type": "redis", "redisHost": "redis://r:6379", "redisUsername": "u", "enableTLS": "true",
         "redisDB": 2}
    )  # fmt: skip
    redis = settings.redis  # type: ignore[union-attr]
    assert (redis.redisHost, redis.redisUsername, redis.enableTLS, redis.redisDB) == ("r:6379", "u", True, 2)
    limits = parse_rate_limits({"redisHost": "r:6379", "readTimeout": "2s"})
    assert limits.redis is not None and limits.redis.readTimeout.total_seconds() == 2
    assert limits.redis.dialTimeout.total_seconds() == 0.5  # the limiter's own default: a check waits little
