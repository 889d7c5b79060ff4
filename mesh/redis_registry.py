"""Name resolution through Redis: every sidecar registers its app id and address with a lease, the
callers read the live ones (``name_resolution: {type: redis, redisHost: host:port}``).

Each app id is one sorted set, ``l8||nr||<app-id>``: a member is a sidecar's ``host:port``, its
score the moment its lease ends, in Redis's own clock (``TIME``), so sidecars on hosts whose clocks
disagree still agree on who is alive. Renewing a lease also sweeps the expired members. Settings:
the Redis, with Dapr's Redis component fields (``redisHost``, ``redisUsername``, ``redisPassword``,
``redisDB``, ``enableTLS``, ``dialTimeout``, ``readTimeout``...), and the registry ones
(mesh/registry.py): ``ttl``, ``cacheSeconds``, ``advertiseAddress``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from components.redis_metadata import RedisConnectionMetadata
from mesh.registry import LeasedRegistry, RegistrySettings
from mesh.settings import REDIS_FIELDS, redis_connection, settings_error

KEY_PREFIX = "l8||nr||"
REDIS_NOW_MS = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
"""
"""Lua: ``ms``, Redis's own clock in milliseconds, which every sidecar's leases are scored by."""
_REGISTER = (
    REDIS_NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 3)
return ms
"""
)
_LIVE = REDIS_NOW_MS + "return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ms, '+inf')"


def registry_client(redis: RedisConnectionMetadata, read_timeout_cap: float | None = None) -> Any:
    """The client a registry (or placement) keeps its leases with: no retries (the next beat tries
    again), replies awaited up to ``readTimeout``, and at most ``read_timeout_cap`` seconds."""
    from components.redis_connection import client_options, make_client

    read_timeout = redis.readTimeout.total_seconds()
    timeout = read_timeout if read_timeout > 0 else None
    if read_timeout_cap is not None:
        timeout = min(timeout or read_timeout_cap, read_timeout_cap)
    return make_client(redis, client_options(redis, max_retries=0, socket_timeout=timeout))


class RedisRegistrySettings(RegistrySettings):
    known_extra: ClassVar[frozenset[str]] = REDIS_FIELDS
    derived: ClassVar[frozenset[str]] = frozenset({"redis"})

    type: Literal["redis"] = "redis"
    redis: RedisConnectionMetadata

    @classmethod
    def prepare(cls, data: Mapping[Any, Any]) -> Any:
        found = {key: value for key, value in data.items() if key not in REDIS_FIELDS}
        found["redis"] = redis_connection(data, {"dialTimeout": "3s"})
        if found["redis"] is None:
            raise settings_error("give the registry's Redis as host:port", "redisHost")
        return found


class RedisRegistry(LeasedRegistry):
    kind = "redis"
    server_field = "redisHost"

    def __init__(self, settings: RedisRegistrySettings) -> None:
        super().__init__(settings)
        self._redis = settings.redis
        self._client: Any = None

    @property
    def server(self) -> str:
        return self._redis.redisHost

    async def _connect(self) -> None:
        self._client = registry_client(self._redis)

    async def _register(self, app_id: str, member: str) -> None:
        await self._client.eval(_REGISTER, 1, KEY_PREFIX + app_id, member, int(self.ttl * 1000))

    async def _live(self, app_id: str) -> list[str]:
        members = await self._client.eval(_LIVE, 1, KEY_PREFIX + app_id)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def _deregister(self, app_id: str, member: str) -> None:
        await self._client.zrem(KEY_PREFIX + app_id, member)

    async def _disconnect(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
