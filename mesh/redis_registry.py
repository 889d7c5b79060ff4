"""Name resolution through Redis: every sidecar registers its app id and address with a lease, the
callers read the live ones (``name_resolution: {type: redis, redisHost: host:port}``).

Each app id is one sorted set, ``l8||nr||<app-id>``: a member is a sidecar's ``host:port``, its
score the moment its lease ends, in Redis's own clock (``TIME``), so sidecars on hosts whose clocks
disagree still agree on who is alive. A sidecar renews its lease every third of ``ttl``, which also
sweeps expired members, and removes itself when it stops; a sidecar that dies drops out when its
lease ends (``ttl``, 10 s by default). Callers keep what they read for at most ``cacheSeconds``
(1 s) and take the instances in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping
from typing import Any

import structlog

from mesh.resolver import ResolveError, SettingsError

log = structlog.get_logger(__name__)

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


def _seconds(config: Mapping[str, Any], name: str, default: float) -> float:
    value = config.get(name, default)
    text = str(value).strip()
    try:
        seconds = float(text[:-1]) if text.endswith("s") and not text.endswith("ms") else float(text)
        if text.endswith("ms"):
            seconds = float(text[:-2]) / 1000
    except ValueError:
        raise SettingsError(f"name_resolution.{name}: {value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise SettingsError(f"name_resolution.{name}: must be above zero")
    return seconds


class RedisRegistry:
    kind = "redis"

    def __init__(self, config: Mapping[str, Any]) -> None:
        host = str(config.get("redisHost") or "")
        address, _, port = host.rpartition(":")
        if not address or not port.isdigit():
            raise SettingsError("name_resolution.redisHost: give the registry's Redis as host:port")
        self._redis_address = host
        self._host, self._port = address, int(port)
        self._password = config.get("redisPassword") or None
        self._db = int(config.get("redisDB", 0))
        self._ttl = _seconds(config, "ttl", 10.0)
        self._cache_seconds = _seconds(config, "cacheSeconds", 1.0)
        self._advertise = str(config["advertiseAddress"]) if config.get("advertiseAddress") else None
        self._client: Any = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._registered: tuple[str, str] | None = None
        self._cache: dict[str, tuple[float, list[str], Any]] = {}

    async def start(self, app_id: str, address: str) -> None:
        from redis.asyncio import Redis

        self._client = Redis(host=self._host, port=self._port, password=self._password, db=self._db,
                             socket_connect_timeout=3, socket_timeout=3)  # fmt: skip
        if not app_id:
            return  # a sidecar without an app id calls others but cannot be called
        member = self._advertise or address
        try:
            await self._client.eval(_REGISTER, 1, KEY_PREFIX + app_id, member, int(self._ttl * 1000))
        except Exception as exc:
            await self._client.aclose()
            raise SettingsError(
                f"name_resolution.redisHost: cannot register at {self._redis_address}: {exc}"
            ) from None
        self._registered = (app_id, member)
        self._heartbeat = asyncio.create_task(self._renew(), name="name resolution heartbeat")
        log.info("registered for name resolution", app_id=app_id, address=member, redis=self._redis_address)

    async def _renew(self) -> None:
        assert self._registered is not None
        app_id, member = self._registered
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._client.eval(_REGISTER, 1, KEY_PREFIX + app_id, member, int(self._ttl * 1000))
            except Exception as exc:  # Redis away for a while: the lease may lapse, renewals go on
                log.warning("name resolution lease not renewed", error=str(exc))

    async def resolve(self, app_id: str) -> str:
        now = time.monotonic()
        cached = self._cache.get(app_id)
        if cached is None or now - cached[0] > self._cache_seconds:
            try:
                members = await self._client.eval(_LIVE, 1, KEY_PREFIX + app_id)
            except Exception as exc:
                raise ResolveError(f"name resolution through Redis failed: {exc}") from None
            addresses = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)
            cached = self._cache[app_id] = (now, addresses, itertools.cycle(addresses) if addresses else None)
        if cached[2] is None:
            raise ResolveError(f"couldn't find service: {app_id}")
        address: str = next(cached[2])
        return address

    def describe(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": self.kind, "redisHost": self._redis_address, "ttlSeconds": self._ttl}
        if self._registered is not None:
            found["registered"] = {"appId": self._registered[0], "address": self._registered[1]}
        return found

    async def aclose(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._client is None:
            return
        if self._registered is not None:
            app_id, member = self._registered
            with contextlib.suppress(Exception):
                await self._client.zrem(KEY_PREFIX + app_id, member)  # callers stop at once
        with contextlib.suppress(Exception):
            await self._client.aclose()
