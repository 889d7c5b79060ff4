"""sequencer.redis: one Redis STRING per key holding the key's last id in decimal (Layotto's layout).

Storage: the Redis key is the storage key itself (``sequencer||<app-id>||<key>``), its value the
last id handed out; a missing key means 0. ``allocate`` is ``INCRBY key count``, atomic in Redis
however many sidecars share it. A reservation retried by a Resiliency policy after a lost reply may
have run twice: that leaves a gap in the ids, never a repeat.

Durability is Redis's: the counter lives in Redis's memory, so after Redis loses data (a restart
without persistence, a failover to a replica that had not caught up, ``appendfsync everysec``
losing its last second) ids are handed out again. Only a Redis persisting with ``appendonly yes``
and ``appendfsync always`` (and no asynchronous failover) never repeats an id, as Layotto's
documentation warns.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from components.errors import BackendError
from components.metadata import decode
from components.redis_connection import REDIS_ERRORS, RedisConnectionMetadata, connect
from components.redis_connection import ping as redis_ping
from components.sequencer.base import Feature

MAX_ID = 2**63 - 1
"""Redis's integers are int64: INCRBY past it fails with "increment or decrement would overflow"."""

# KEYS[1]: the counter; ARGV[1]: the floor, a positive canonical decimal. INCRBY 0 creates a missing
# counter and fails on a value that is not a canonical int64 (Redis refuses leading zeros and "+"),
# so the comparison can be exact on the decimal text: Lua numbers are doubles, which round above 2^53.
_RAISE_FLOOR = """
redis.call("INCRBY", KEYS[1], 0)
local current = redis.call("GET", KEYS[1])
local floor = ARGV[1]
if string.sub(current, 1, 1) == "-" or #current < #floor or (#current == #floor and current < floor) then
  redis.call("SET", KEYS[1], floor)
  return 1
end
return 0
"""


class RedisSequencer:
    def __init__(self) -> None:
        self._client: Redis | None = None
        self._raise_floor: AsyncScript | None = None

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(RedisConnectionMetadata, metadata)
        client = await connect(settings)
        self._client = client
        self._raise_floor = client.register_script(_RAISE_FLOOR)

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _live(self) -> tuple[Redis, AsyncScript]:
        # Checked because a closed redis-py client would silently open new connections.
        if self._client is None or self._raise_floor is None:
            raise BackendError("redis sequencer is not initialised or already closed")
        return self._client, self._raise_floor

    async def allocate(self, key: str, count: int) -> int:
        if count < 1:
            raise ValueError(f"a block holds at least one id, not {count}")
        client, _ = self._live()
        with REDIS_ERRORS:
            return int(await client.incrby(key, count))

    async def ensure_above(self, key: str, floor: int) -> None:
        if floor > MAX_ID:
            raise ValueError(f"{floor} is above the largest id, {MAX_ID}")
        _, raise_floor = self._live()
        if floor <= 0:  # every id is already above 0 or less
            return
        with REDIS_ERRORS:
            await raise_floor(keys=[key], args=[str(floor)])

    async def ping(self) -> None:
        """Health: PING (components/health.py)."""
        await redis_ping(self._client)

    async def close(self) -> None:
        client, self._client = self._client, None
        self._raise_floor = None
        if client is not None:
            with REDIS_ERRORS:
                await client.aclose()
