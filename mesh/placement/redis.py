"""Placement through the Redis of ``name_resolution: {type: redis}`` (the settings and the client of
mesh/redis_registry.py; mesh/placement/leased.py holds what does not depend on the store).

Storage, every lease scored in Redis's own clock (``TIME``), so sidecars whose clocks disagree
still agree on who is alive:

* ``l8||pl||leases``: a sorted set of the live leases; a member is a lease token
  ``<host:port>|<random>``, its score the millisecond at which the lease ends. A token is never
  renewed once it has lapsed, so a sidecar that was fenced comes back with a new one.
* ``l8||pl||type||<type>``: the members of an actor type, the same tokens with the same scores.
* ``l8||pl||claims||<type>``: a hash ``actor id -> token``. A claim is taken by a script only when
  the field is absent, already this token's, or held by a token whose lease has ended (scored in
  the past or gone from the leases), so a claim lives exactly as long as its holder's lease.

Keys expire three ttls after the last renewal of a lease on them (a type's claims: of a lease
hosting the type; expiries are only ever extended, so a sidecar with a short ttl cannot cut a
longer lease short). Membership changes reach other sidecars
by polling the tracked types every ``cacheSeconds`` (one script call for all of them); a graceful
stop removes the token at once, a sidecar that died drops out when its lease ends.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from mesh.placement.leased import ActorKey, LeasedPlacement
from mesh.redis_registry import REDIS_NOW_MS, RedisRegistrySettings, registry_client

PREFIX = "l8||pl||"
LEASES = PREFIX + "leases"

_EXTEND = """
local function extend(key, keep)
  local left = redis.call('PTTL', key)
  if left ~= -2 and left < keep then redis.call('PEXPIRE', key, keep) end
end
"""
# KEYS: the leases, each hosted type's members, then each hosted type's claims. ARGV: token,
# ttl ms, "grant" or "renew", the number of types. Returns 0 when a renewal finds the lease
# already ended (it is never revived).
_KEEP = (
    REDIS_NOW_MS
    + _EXTEND
    + """
local ttl = tonumber(ARGV[2])
if ARGV[3] == 'renew' then
  local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if not score or tonumber(score) <= ms then return 0 end
end
local types = tonumber(ARGV[4])
for i = 1, types + 1 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ms)
  redis.call('ZADD', KEYS[i], ms + ttl, ARGV[1])
  extend(KEYS[i], ttl * 3)
end
for i = types + 2, #KEYS do extend(KEYS[i], ttl * 3) end
return 1
"""
)
# KEYS: each type's members. Returns the live tokens of each.
_MEMBERS = (
    REDIS_NOW_MS
    + """
local found = {}
for i = 1, #KEYS do found[i] = redis.call('ZRANGEBYSCORE', KEYS[i], '(' .. ms, '+inf') end
return found
"""
)
# KEYS: the leases, the type's claims. ARGV: token, actor id, ttl ms. 1 held, 0 another live
# holder has it, -1 this token's own lease has ended.
_CLAIM = (
    REDIS_NOW_MS
    + _EXTEND
    + """
local mine = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not mine or tonumber(mine) <= ms then return -1 end
local holder = redis.call('HGET', KEYS[2], ARGV[2])
if holder == ARGV[1] then return 1 end
if holder then
  local until_ms = redis.call('ZSCORE', KEYS[1], holder)
  if until_ms and tonumber(until_ms) > ms then return 0 end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
extend(KEYS[2], tonumber(ARGV[3]) * 3)
return 1
"""
)
# KEYS: a type's claims. ARGV: token, then actor ids: each field removed when the token holds it.
_RELEASE = """
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1
"""
# KEYS: the leases and every type's members. ARGV: token.
_DROP = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""


_SCRIPTS = {"keep": _KEEP, "members": _MEMBERS, "claim": _CLAIM, "release": _RELEASE, "drop": _DROP}


def _members_key(actor_type: str) -> str:
    return f"{PREFIX}type||{actor_type}"


def _claims_key(actor_type: str) -> str:
    return f"{PREFIX}claims||{actor_type}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisPlacement(LeasedPlacement):
    kind = "redis"

    def __init__(self, settings: RedisRegistrySettings) -> None:
        super().__init__(settings)
        self._redis = settings.redis
        self._client: Any = None
        self._token: str | None = None
        self._scripts: dict[str, Any] = {}
        self._ttl_ms = int(self.ttl * 1000)

    @property
    def server(self) -> str:
        return self._redis.redisHost

    async def _connect(self) -> None:
        # A reply awaited longer than a beat is a renewal lost; the next beat tries again.
        self._client = registry_client(self._redis, read_timeout_cap=self.ttl / 3)
        # EVALSHA, loading a script again when Redis answers NOSCRIPT (after a restart).
        self._scripts = {name: self._client.register_script(text) for name, text in _SCRIPTS.items()}
        await self._client.ping()

    async def _disconnect(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _keep_keys(self, types: frozenset[str]) -> list[str]:
        ordered = sorted(types)
        return [LEASES, *map(_members_key, ordered), *map(_claims_key, ordered)]

    async def _grant(self, types: frozenset[str]) -> None:
        token = f"{self.address}|{secrets.token_hex(8)}"
        keys = self._keep_keys(types)
        await self._scripts["keep"](keys, [token, self._ttl_ms, "grant", len(types)])
        self._token = token

    async def _renew(self, types: frozenset[str]) -> bool:
        if self._token is None:
            return False
        keys = self._keep_keys(types)
        return bool(await self._scripts["keep"](keys, [self._token, self._ttl_ms, "renew", len(types)]))

    async def _retype(self, old: frozenset[str], new: frozenset[str]) -> bool:
        if self._token is None:
            return False
        gone = [_members_key(actor_type) for actor_type in sorted(old - new)]
        if gone:
            await self._scripts["drop"](gone, [self._token])
        return await self._renew(new)

    async def _drop(self, claims: set[ActorKey]) -> None:
        token = self._token
        if token is None:
            return
        by_type: dict[str, list[str]] = {}
        for actor_type, actor_id in claims:
            by_type.setdefault(actor_type, []).append(actor_id)
        async with self._client.pipeline(transaction=False) as pipe:
            for actor_type, ids in sorted(by_type.items()):
                await self._scripts["release"]([_claims_key(actor_type)], [token, *ids], client=pipe)
            keys = [LEASES, *(_members_key(actor_type) for actor_type in sorted(self._types | set(by_type)))]
            await self._scripts["drop"](keys, [token], client=pipe)
            await pipe.execute()
        self._token = None

    async def _members(self, types: Sequence[str]) -> dict[str, list[str]]:
        keys = [_members_key(actor_type) for actor_type in types]
        found = await self._scripts["members"](keys)
        return {
            actor_type: sorted({_text(token).rpartition("|")[0] for token in tokens})
            for actor_type, tokens in zip(types, found, strict=True)
        }

    async def _claim(self, actor_type: str, actor_id: str) -> bool | None:
        if self._token is None:
            return None
        held = await self._scripts["claim"](
            [LEASES, _claims_key(actor_type)], [self._token, actor_id, self._ttl_ms]
        )
        return None if held < 0 else bool(held)

    async def _release(self, actor_type: str, actor_id: str) -> None:
        if self._token is not None:
            await self._scripts["release"]([_claims_key(actor_type)], [self._token, actor_id])

    async def _follow(self) -> None:
        await self._poll()
