"""The scheduler's store in Redis: every sidecar of an app id shares it (``name_resolution: redis``).

Per (kind, app id): a sorted set ``l8||sched||{<kind>||<app id>}`` whose members are job names
scored by ``ready`` (milliseconds), and per job a hash ``l8||sched||{<kind>||<app id>}||<name>``
with ``spec due ready attempt ticks token``. The braces keep a kind's keys in one cluster slot.
Every check-then-write is one Lua script, and every time a script compares or sets comes from
Redis's ``TIME``, so sidecars whose clocks differ agree on when a tick is due and a lease ends.
"""

from __future__ import annotations

from typing import Any

from components.errors import BackendError
from components.redis_connection import REDIS_ERRORS, RedisConnectionMetadata, connect
from components.redis_connection import ping as redis_ping
from components.scheduler.base import Claim, Page, Slot, StoredJob

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
_FIELDS = "'spec', 'due', 'ready', 'attempt', 'ticks', 'token'"

_PUT = """
if ARGV[1] == '0' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'spec', ARGV[3], 'due', ARGV[4], 'ready', ARGV[5], 'attempt', ARGV[6],
           'ticks', ARGV[7], 'token', '')
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[2])
return 1
"""
_CLAIM = (
    _NOW
    + f"""
local ready = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not ready or tonumber(ready) > now then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) return false end
local until_ms = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], until_ms, ARGV[1])
redis.call('HSET', KEYS[2], 'token', ARGV[2], 'ready', until_ms)
local found = redis.call('HMGET', KEYS[2], {_FIELDS})
found[7] = tostring(now)
return found
"""
)
_CLAIM_MANY = (
    _NOW
    + f"""
local found = {{now}}
for index = 4, #ARGV do
  local name = ARGV[index]
  local ready = redis.call('ZSCORE', KEYS[1], name)
  if ready and tonumber(ready) <= now then
    local key = ARGV[3] .. name
    if redis.call('EXISTS', key) == 1 then
      local until_ms = now + tonumber(ARGV[2])
      redis.call('ZADD', KEYS[1], until_ms, name)
      redis.call('HSET', key, 'token', ARGV[1], 'ready', until_ms)
      table.insert(found, name)
      for _, value in ipairs(redis.call('HMGET', key, {_FIELDS})) do table.insert(found, value) end
    else
      redis.call('ZREM', KEYS[1], name)
    end
  end
end
return found
"""
)
_EXTEND = (
    _NOW
    + """
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then return 0 end
local until_ms = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], until_ms, ARGV[1])
redis.call('HSET', KEYS[2], 'ready', until_ms)
return 1
"""
)
_COMPLETE = """
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
redis.call('HSET', KEYS[2], 'due', ARGV[3], 'ready', ARGV[3], 'attempt', 1, 'token', '')
redis.call('HINCRBY', KEYS[2], 'ticks', 1)
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""
_RELEASE = """
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], 'ready', ARGV[3], 'token', '')
redis.call('HINCRBY', KEYS[2], 'attempt', 1)
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""
_DELETE = """
local found = redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return found
"""
_DELETE_PREFIX = """
local count = 0
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(name, 1, #ARGV[1]) == ARGV[1] then
    redis.call('ZREM', KEYS[1], name)
    count = count + redis.call('DEL', ARGV[2] .. name)
  end
end
return count
"""

_SCRIPTS = {
    "put": _PUT,
    "claim": _CLAIM,
    "claim_many": _CLAIM_MANY,
    "extend": _EXTEND,
    "complete": _COMPLETE,
    "release": _RELEASE,
    "delete": _DELETE,
    "delete_prefix": _DELETE_PREFIX,
}


def _glob(prefix: str) -> str:
    """``ZSCAN``'s ``MATCH`` pattern of the names that start with ``prefix``."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in prefix) + "*"


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSchedulerStore:
    def __init__(self, settings: RedisConnectionMetadata, prefix: str = "l8||sched||") -> None:
        self._settings = settings
        self._prefix = prefix
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    @property
    def addresses(self) -> list[str]:
        return [self._settings.redisHost]

    async def open(self) -> None:
        self._client = await connect(self._settings)
        for name, source in _SCRIPTS.items():
            self._scripts[name] = self._client.register_script(source)

    def _keys(self, kind: str, app_id: str, name: str) -> list[str]:
        index = f"{self._prefix}{{{kind}||{app_id}}}"
        return [index, f"{index}||{name}"]

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        if self._client is None:
            raise BackendError("redis scheduler store is not open")
        with REDIS_ERRORS:
            return await self._scripts[script](keys=keys, args=args)

    async def now(self) -> float:
        if self._client is None:
            raise BackendError("redis scheduler store is not open")
        with REDIS_ERRORS:
            seconds, micros = await self._client.time()
        return int(seconds) + int(micros) / 1_000_000

    async def put(self, job: StoredJob, *, overwrite: bool) -> bool:
        args = [
            "1" if overwrite else "0",
            job.name,
            job.spec,
            _ms(job.due),
            _ms(job.ready),
            job.attempt,
            job.ticks,
        ]
        return bool(await self._run("put", self._keys(job.kind, job.app_id, job.name), args))

    async def get(self, kind: str, app_id: str, name: str) -> StoredJob | None:
        if self._client is None:
            raise BackendError("redis scheduler store is not open")
        with REDIS_ERRORS:
            found = await self._client.hmget(self._keys(kind, app_id, name)[1], "spec", "due", "ready",
                                             "attempt", "ticks", "token")  # fmt: skip
        return None if found[0] is None else self._job(kind, app_id, name, found)

    @staticmethod
    def _job(kind: str, app_id: str, name: str, found: list[Any]) -> StoredJob:
        spec, due, ready, attempt, ticks, token = found[:6]
        return StoredJob(kind, app_id, name, bytes(spec), int(due) / 1000, int(ready) / 1000, int(attempt),
                         int(ticks), _text(token or b""))  # fmt: skip

    async def delete(self, kind: str, app_id: str, name: str) -> bool:
        return bool(await self._run("delete", self._keys(kind, app_id, name), [name]))

    async def delete_prefix(self, kind: str, app_id: str, prefix: str) -> int:
        index, _ = self._keys(kind, app_id, "")
        return int(await self._run("delete_prefix", [index], [prefix, index + "||"]))

    async def list_jobs(self, kind: str, app_id: str, prefix: str, cursor: str | None, limit: int) -> Page:
        """``ZSCAN`` of the (kind, app id)'s index (its cursor is the page's), then the jobs' hashes in
        one pipeline; a name whose hash went meanwhile is left out."""
        if self._client is None:
            raise BackendError("redis scheduler store is not open")
        index, _ = self._keys(kind, app_id, "")
        with REDIS_ERRORS:
            following, found = await self._client.zscan(
                index, cursor=int(cursor or 0), match=_glob(prefix), count=limit
            )
            names = [_text(name) for name, _ in found]
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.hmget(f"{index}||{name}", "spec", "due", "ready", "attempt", "ticks", "token")
            fields = await pipe.execute() if names else []
        jobs = [
            self._job(kind, app_id, name, row)
            for name, row in zip(names, fields, strict=True)
            if row[0] is not None
        ]
        return Page(jobs, None if int(following) == 0 else str(following))

    async def upcoming(self, kind: str, app_id: str, until: float, limit: int) -> list[Slot]:
        if self._client is None:
            raise BackendError("redis scheduler store is not open")
        index, _ = self._keys(kind, app_id, "")
        with REDIS_ERRORS:
            found = await self._client.zrangebyscore(
                index, "-inf", _ms(until), start=0, num=limit, withscores=True
            )
        return [Slot(_text(name), score / 1000) for name, score in found]

    async def claim(self, kind: str, app_id: str, name: str, token: str, lease: float) -> Claim | None:
        found = await self._run("claim", self._keys(kind, app_id, name), [name, token, _ms(lease)])
        if not found:
            return None
        return Claim(self._job(kind, app_id, name, found), int(found[6]) / 1000)

    async def claim_many(
        self, kind: str, app_id: str, names: list[str], token: str, lease: float
    ) -> list[Claim]:
        if not names:
            return []
        index, _ = self._keys(kind, app_id, "")
        found = await self._run("claim_many", [index], [token, _ms(lease), index + "||", *names])
        now = int(found[0]) / 1000
        claims = []
        for start in range(1, len(found), 7):
            name = _text(found[start])
            claims.append(Claim(self._job(kind, app_id, name, found[start + 1 : start + 7]), now))
        return claims

    async def extend(self, claim: Claim, lease: float) -> bool:
        job = claim.job
        return bool(await self._run("extend", self._keys(job.kind, job.app_id, job.name),
                                    [job.name, job.token, _ms(lease)]))  # fmt: skip

    async def complete(self, claim: Claim, next_due: float | None) -> bool:
        job = claim.job
        following = "" if next_due is None else _ms(next_due)
        return bool(await self._run("complete", self._keys(job.kind, job.app_id, job.name),
                                    [job.name, job.token, following]))  # fmt: skip

    async def release(self, claim: Claim, retry_at: float) -> bool:
        job = claim.job
        return bool(await self._run("release", self._keys(job.kind, job.app_id, job.name),
                                    [job.name, job.token, _ms(retry_at)]))  # fmt: skip

    async def ping(self) -> None:
        await redis_ping(self._client)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with REDIS_ERRORS:
                await client.aclose()
