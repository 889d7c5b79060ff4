"""Name resolution through Redis: every sidecar registers its app id and address with a lease, the
callers read the live ones (``name_resolution: {type: redis, redisHost: host:port}``).

Each app id is one sorted set, ``l8||nr||<app-id>``: a member is a sidecar's ``host:port``, its
score the moment its lease ends, in Redis's own clock (``TIME``), so sidecars on hosts whose clocks
disagree still agree on who is alive. Renewing a lease also sweeps the expired members. Settings:
``redisHost``, ``redisPassword``, ``redisDB``, and the registry ones (mesh/registry.py): ``ttl``,
``cacheSeconds``, ``advertiseAddress``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesh.errors import SettingsError
from mesh.registry import LeasedRegistry, host_port

KEY_PREFIX = "l8||nr||"
_REGISTER = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 3)
return ms
"""
_LIVE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ms, '+inf')
"""


class RedisRegistry(LeasedRegistry):
    kind = "redis"
    server_field = "redisHost"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self._host, self._port = host_port(config, "redisHost", "the registry's Redis")
        self._password = config.get("redisPassword") or None
        db = str(config.get("redisDB", 0))
        if not db.isdigit():
            raise SettingsError("name_resolution.redisDB: a database number")
        self._db = int(db)
        self._client: Any = None

    @property
    def server(self) -> str:
        return f"{self._host}:{self._port}"

    async def _connect(self) -> None:
        from redis.asyncio import Redis

        self._client = Redis(host=self._host, port=self._port, password=self._password, db=self._db,
                             socket_connect_timeout=3, socket_timeout=3)  # fmt: skip

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
