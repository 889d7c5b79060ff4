"""state.redis: Redis through redis.asyncio, with Dapr's storage layout so l8 and real Dapr sidecars
can share one database.

Each key is a HASH with ``data`` (the value bytes) and ``version`` (an integer bumped by every
write); the ETag is the version in decimal. Every check-then-write runs in one Lua script, so it is
atomic without WATCH round trips; transactions are one script too, and unlike Dapr's MULTI they
write nothing when any ETag fails.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, field_validator
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from components.errors import (
    BackendError,
    ETagInvalidError,
    ETagMismatchError,
    InvalidStateRequestError,
)
from components.metadata import decode, metadata_error
from components.redis_connection import REDIS_ERRORS as _REDIS_ERRORS
from components.redis_connection import RedisConnectionMetadata, connect
from components.redis_connection import ping as redis_ping
from components.state.base import (
    Concurrency,
    DeleteRequest,
    Feature,
    GetRequest,
    SetRequest,
    StateItem,
    TransactionOperation,
)
from components.state.ttl import MAX_TTL_SECONDS, as_datetime, parse_ttl

_FEATURES = frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL})
# Go's strconv.Atoi, which Dapr uses to read an ETag: anything else is invalid, not a mismatch.
_ETAG = re.compile(r"[+-]?[0-9]+\Z")

# Script results. Refusals are ordinary results, not error replies, so they cannot be confused with
# a failing server and need no message parsing.
_OK, _MISMATCH, _EXISTS = 0, 1, 2

# Shared by every script. A key Dapr wrote as a plain STRING (its legacy layout) counts as existing
# with no version, so no ETag matches it; a write replaces it with a hash.
_PRELUDE = """
local function read(key)
  local kind = redis.call("TYPE", key).ok
  if kind == "hash" then return kind, redis.call("HGET", key, "version") end
  return kind, false
end
local function next_version(version)
  if version and string.match(version, "^%d+$") then
    return string.format("%d", tonumber(version) + 1)
  end
  return "1"
end
-- Only commands that cannot fail on a checked key: Redis never rolls a script back.
local function write(key, kind, version, data, ttl)
  if kind ~= "hash" and kind ~= "none" then redis.call("DEL", key) end
  redis.call("HSET", key, "data", data, "version", next_version(version))
  if ttl == "0" then redis.call("PERSIST", key) else redis.call("EXPIRE", key, ttl) end
end
"""

# KEYS: the keys to read. Per key {data, version, pttl}, or nil when absent.
_GET = """
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call("TYPE", key).ok
  if kind == "hash" then
    local fields = redis.call("HMGET", key, "data", "version")
    out[i] = {fields[1], fields[2], redis.call("PTTL", key)}
  elseif kind == "string" then
    out[i] = {redis.call("GET", key), false, redis.call("PTTL", key)}
  else
    out[i] = false
  end
end
return out
"""

# ARGV: etag ("" for none), first-write (1/0), data, ttl seconds (0 for never).
_SET = (
    _PRELUDE
    + """
local kind, version = read(KEYS[1])
if ARGV[1] ~= "" then
  if version ~= ARGV[1] then return 1 end
elseif ARGV[2] == "1" and kind ~= "none" then
  return 2
end
write(KEYS[1], kind, version, ARGV[3], ARGV[4])
return 0
"""
)

# ARGV: etag ("" for none).
_DELETE = (
    _PRELUDE
    + """
if ARGV[1] ~= "" then
  local _, version = read(KEYS[1])
  if version ~= ARGV[1] then return 1 end
end
redis.call("DEL", KEYS[1])
return 0
"""
)

# KEYS: one per operation, in order (repeats allowed). ARGV: five per operation: "s"et or "d"elete,
# etag, first-write, ttl, data. The first pass replays the batch on a staged copy of each key so a
# later operation sees the earlier ones; nothing is written unless every check passes.
_TRANSACT = (
    _PRELUDE
    + """
local staged = {}
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 5
  local state = staged[key]
  if state == nil then
    local kind, version = read(key)
    state = {kind, version}
  end
  if ARGV[a + 2] ~= "" then
    if state[2] ~= ARGV[a + 2] then return {1, i} end
  elseif ARGV[a + 1] == "s" and ARGV[a + 3] == "1" and state[1] ~= "none" then
    return {2, i}
  end
  if ARGV[a + 1] == "s" then
    staged[key] = {"hash", next_version(state[2])}
  else
    staged[key] = {"none", false}
  end
end
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 5
  if ARGV[a + 1] == "s" then
    local kind, version = read(key)
    write(key, kind, version, ARGV[a + 5], ARGV[a + 4])
  else
    redis.call("DEL", key)
  end
end
return 0
"""
)


class RedisMetadata(RedisConnectionMetadata):
    maxRetries: int = Field(default=3, ge=-1)
    """Retries of a command after a connection error or timeout; -1 disables them, as in Dapr."""
    ttlInSeconds: int | None = None
    """Applied to writes whose request carries no TTL."""

    @field_validator("ttlInSeconds", mode="before")
    @classmethod
    def _ttl(cls, value: object) -> int | None:
        try:
            return parse_ttl(None if value is None else str(value))
        except InvalidStateRequestError as exc:
            raise metadata_error(str(exc)) from None


def _etag_arg(etag: str | None) -> str:
    if etag is None:
        return ""
    if _ETAG.match(etag) is None:
        raise ETagInvalidError(etag)
    # Normalised so "007" matches version 7, as Dapr's integer comparison does.
    return str(int(etag))


def _refusal(status: int, key: str) -> ETagMismatchError:
    if status == _EXISTS:
        return ETagMismatchError(f"key {key} already exists (first-write)")
    return ETagMismatchError(f"etag mismatch for key {key}")


def _item(row: list[Any] | None) -> StateItem | None:
    if row is None or row[0] is None:
        return None
    data, version, pttl = row
    expires_at = as_datetime(time.time() + pttl / 1000) if pttl > 0 else None
    return StateItem(data, None if version is None else version.decode(), expires_at)


class RedisStateStore:
    def __init__(self) -> None:
        self._client: Redis | None = None
        self._default_ttl: int | None = None

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(RedisMetadata, metadata)
        self._default_ttl = settings.ttlInSeconds
        client = await connect(settings, max_retries=settings.maxRetries)
        self._client = client
        self._get_script: AsyncScript = client.register_script(_GET)
        self._set_script: AsyncScript = client.register_script(_SET)
        self._delete_script: AsyncScript = client.register_script(_DELETE)
        self._transact_script: AsyncScript = client.register_script(_TRANSACT)

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    def _live(self) -> Redis:
        # Checked because a closed redis-py client would silently open new connections.
        if self._client is None:
            raise BackendError("redis state store is not initialised or already closed")
        return self._client

    def _ttl_arg(self, ttl: int | None) -> int:
        if ttl is None:
            ttl = self._default_ttl
        if ttl is None or ttl <= 0:
            return 0
        # Checked here, not left to EXPIRE: a failing EXPIRE would follow an applied HSET.
        if ttl > MAX_TTL_SECONDS:
            raise InvalidStateRequestError(f"ttlInSeconds {ttl} is larger than {MAX_TTL_SECONDS}")
        return ttl

    def _set_args(self, request: SetRequest) -> tuple[str, int, bytes, int]:
        first_write = request.etag is None and request.concurrency == Concurrency.FIRST_WRITE
        return _etag_arg(request.etag), int(first_write), request.value, self._ttl_arg(request.ttl)

    async def get(self, request: GetRequest) -> StateItem | None:
        client = self._live()
        with _REDIS_ERRORS:
            rows = await self._get_script((request.key,), (), client)
        return _item(rows[0])

    async def bulk_get(self, requests: Sequence[GetRequest]) -> list[StateItem | None]:
        if not requests:
            return []
        client = self._live()
        # One script over every key: one round trip, and a consistent snapshot as a bonus.
        with _REDIS_ERRORS:
            rows = await self._get_script([request.key for request in requests], (), client)
        return [_item(row) for row in rows]

    async def set(self, request: SetRequest) -> None:
        args = self._set_args(request)
        client = self._live()
        with _REDIS_ERRORS:
            status = await self._set_script((request.key,), args, client)
        if status != _OK:
            raise _refusal(status, request.key)

    async def bulk_set(self, requests: Sequence[SetRequest]) -> None:
        if not requests:
            return
        # Every argument is checked before anything is sent, so a bad ETag writes nothing.
        calls = [(request.key, *self._set_args(request)) for request in requests]
        client = self._live()
        sha = self._set_script.sha
        with _REDIS_ERRORS:
            for attempt in range(2):
                async with client.pipeline(transaction=False) as pipe:
                    for call in calls:
                        pipe.evalsha(sha, 1, *call)
                    results = await pipe.execute(raise_on_error=False)
                # A missing script (server restarted, SCRIPT FLUSH) fails every call alike, so
                # nothing ran and the whole pipeline can be replayed once the script is loaded.
                if attempt == 0 and any(isinstance(r, redis_errors.NoScriptError) for r in results):
                    sha = self._set_script.sha = await client.script_load(_SET)
                    continue
                break
            for request, result in zip(requests, results, strict=True):
                if isinstance(result, Exception):
                    raise result
                if result != _OK:
                    raise _refusal(result, request.key)

    async def delete(self, request: DeleteRequest) -> None:
        etag = _etag_arg(request.etag)
        client = self._live()
        with _REDIS_ERRORS:
            status = await self._delete_script((request.key,), (etag,), client)
        if status != _OK:
            raise _refusal(status, request.key)

    async def transact(self, operations: Sequence[TransactionOperation], metadata: Mapping[str, str]) -> None:
        if not operations:
            return
        args: list[str | int | bytes] = []
        for op in operations:
            if isinstance(op, SetRequest):
                etag, first_write, data, ttl = self._set_args(op)
                args += ("s", etag, first_write, ttl, data)
            else:
                args += ("d", _etag_arg(op.etag), 0, 0, b"")
        client = self._live()
        with _REDIS_ERRORS:
            result = await self._transact_script([op.key for op in operations], args, client)
        if result != _OK:
            status, index = result
            raise _refusal(status, operations[index - 1].key)

    async def ping(self) -> None:
        """Health: PING (components/health.py)."""
        await redis_ping(self._client)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with _REDIS_ERRORS:
                await client.aclose()
