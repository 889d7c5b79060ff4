"""lock.redis: locks on one Redis (``redisHost``), or Redlock over several independent ones
(``redisHosts``), in Dapr's storage layout so l8 and Dapr sidecars can contend for the same locks.

A held resource is the STRING key ``<resource id>`` whose value is the owner, set with
``SET key owner NX PX <expiry ms>``: Redis itself frees it at expiry. Unlock and renewal are Lua
scripts checking the owner before ``DEL`` / ``PEXPIRE``, so no other owner's lock is ever touched.

Redlock (https://redis.io/docs/latest/develop/use/patterns/distributed-locks/) runs the same
single-host operations on N servers at once: a lock is held when a strict majority (N//2+1) set the
key and the round took less than the expiry minus a clock-drift allowance (1% + 2 ms). Each server
gets at most a tenth of the expiry (and at most ``readTimeout``) to answer an acquisition or a
renewal, so a stalled server counts against the quorum instead of eating the lock's validity.

One deviation from the published algorithm: a failed acquisition is undone only on the servers
where this attempt created the key. Owners here are chosen per request, not per attempt, so an
owner retrying a lock it already holds (which answers ``False``) must not delete its own earlier
keys; a key left by a server that timed out simply expires.

Unlock and renewal count the servers' answers: a majority of SUCCESS or of LOCK_BELONGS_TO_OTHERS
decides, a majority of failing servers raises BackendError, anything else is LOCK_DOES_NOT_EXIST.
``try_lock`` with a majority of servers failing raises BackendError too: the store is away, which
is not the same answer as "someone else holds it".
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, Self, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from redis.asyncio import Redis

from components.errors import BackendError, ComponentInitError, MetadataError
from components.lock.base import Feature, LockStatus, RenewRequest, TryLockRequest, UnlockRequest
from components.metadata import decode, metadata_error
from components.redis_connection import REDIS_ERRORS, RedisConnectionMetadata, connect
from components.redis_connection import ping as redis_ping

T = TypeVar("T")

# KEYS[1]: the resource. ARGV[1]: the owner. Answers are LockStatus values.
_UNLOCK = """
local current = redis.call("GET", KEYS[1])
if not current then return 1 end
if current ~= ARGV[1] then return 2 end
redis.call("DEL", KEYS[1])
return 0
"""

# KEYS[1]: the resource. ARGV[1]: the owner, ARGV[2]: the new expiry in milliseconds.
_RENEW = """
local current = redis.call("GET", KEYS[1])
if not current then return 1 end
if current ~= ARGV[1] then return 2 end
redis.call("PEXPIRE", KEYS[1], ARGV[2])
return 0
"""

_DRIFT_FACTOR = 0.01
_DRIFT_MS = 2.0
_HOST_SHARE_OF_EXPIRY = 0.1
"""Redlock: the part of the expiry one server may take to answer an acquisition or a renewal."""


class RedisLockMetadata(RedisConnectionMetadata):
    redisHost: str = ""
    """One Redis, ``host:port``. Exactly one of redisHost and redisHosts is given."""
    redisHosts: str = ""
    """Redlock: independent Redis servers, ``host:port,host:port,...`` (odd N, 3 or 5, is usual)."""
    maxRetries: int | None = Field(default=None, ge=-1)
    """Retries of a command after a connection error or timeout; -1 or 0 disables them. Defaults
    to 3 with redisHost and 0 with redisHosts, where a failing host counts against the quorum
    rather than slowing every round."""

    @field_validator("redisHosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        hosts = [part.strip() for part in value.split(",") if part.strip()]
        if not hosts:
            raise metadata_error("give the Redis servers as host:port,host:port,...")
        for host in hosts:
            try:
                RedisConnectionMetadata.model_validate({"redisHost": host})
            except ValidationError as exc:
                raise metadata_error(exc.errors()[0]["msg"]) from None
        if len(set(hosts)) != len(hosts):
            # One server counted twice would make a minority look like a majority.
            raise metadata_error(f"{value!r} names a server more than once")
        return ",".join(hosts)

    @model_validator(mode="after")
    def _one_of_host_or_hosts(self) -> Self:
        # Raised as is (pydantic only wraps ValueError), so the error names the field to fix.
        if self.redisHost and self.redisHosts:
            raise MetadataError("redisHosts", "give either redisHost (one Redis) or redisHosts (Redlock)")
        if not self.redisHost and not self.redisHosts:
            raise MetadataError("redisHost", "is required (or redisHosts, for Redlock)")
        return self

    @property
    def hosts(self) -> list[str]:
        return self.redisHosts.split(",") if self.redisHosts else [self.redisHost]

    @property
    def redlock(self) -> bool:
        return bool(self.redisHosts)


class RedisLockHost:
    """One Redis server and the owner-checked scripts on its client: the whole of ``redisHost``
    mode, and one vote in Redlock. Redis failures come out as BackendError."""

    def __init__(self, address: str, client: Redis) -> None:
        self.address = address
        self.client = client
        self._unlock = client.register_script(_UNLOCK)
        self._renew = client.register_script(_RENEW)

    async def acquire(self, key: str, owner: str, expiry_ms: int) -> bool:
        with REDIS_ERRORS:
            return bool(await self.client.set(key, owner, nx=True, px=expiry_ms))

    async def release(self, key: str, owner: str) -> LockStatus:
        with REDIS_ERRORS:
            return LockStatus(await self._unlock((key,), (owner,)))

    async def extend(self, key: str, owner: str, expiry_ms: int) -> LockStatus:
        with REDIS_ERRORS:
            return LockStatus(await self._renew((key,), (owner, expiry_ms)))

    async def close(self) -> None:
        with REDIS_ERRORS:
            await self.client.aclose()


class _Locker(Protocol):
    async def acquire(self, key: str, owner: str, expiry_ms: int) -> bool: ...
    async def release(self, key: str, owner: str) -> LockStatus: ...
    async def extend(self, key: str, owner: str, expiry_ms: int) -> LockStatus: ...


class Redlock:
    """The lock operations over several independent :class:`RedisLockHost`, decided by majority."""

    def __init__(self, hosts: Sequence[RedisLockHost], host_timeout: float | None) -> None:
        self.hosts = list(hosts)
        self.quorum = len(self.hosts) // 2 + 1
        self._host_timeout = host_timeout
        """Seconds one host may take for one operation (None: no bound beyond the socket's)."""

    def _bound(self, expiry_ms: int) -> float:
        share = expiry_ms / 1000 * _HOST_SHARE_OF_EXPIRY
        return share if self._host_timeout is None else min(share, self._host_timeout)

    async def _on_every_host(
        self, operation: Callable[[RedisLockHost], Awaitable[T]], seconds: float | None
    ) -> list[T | Exception]:
        """``operation`` on every host at once; a host failing or too slow yields its exception."""

        async def bounded(host: RedisLockHost) -> T | Exception:
            try:
                return await asyncio.wait_for(operation(host), seconds)
            except TimeoutError:
                return BackendError(f"redis at {host.address}: no answer within {seconds:.3g} s")
            except BackendError as exc:
                return exc

        return list(await asyncio.gather(*(bounded(host) for host in self.hosts)))

    def _failure(self, failed: list[Exception]) -> BackendError:
        reasons = "; ".join(str(error) for error in failed)
        return BackendError(f"redlock: {len(failed)} of {len(self.hosts)} Redis servers failed ({reasons})")

    async def acquire(self, key: str, owner: str, expiry_ms: int) -> bool:
        started = time.monotonic()
        answers = await self._on_every_host(
            lambda host: host.acquire(key, owner, expiry_ms), self._bound(expiry_ms)
        )
        elapsed_ms = (time.monotonic() - started) * 1000
        drift_ms = expiry_ms * _DRIFT_FACTOR + _DRIFT_MS
        created = [host for host, answer in zip(self.hosts, answers, strict=True) if answer is True]
        if len(created) >= self.quorum and elapsed_ms < expiry_ms - drift_ms:
            return True
        # Undo only the keys this attempt created (see the module docstring); best effort, as
        # every key expires by itself.
        await asyncio.gather(*(host.release(key, owner) for host in created), return_exceptions=True)
        failed = [answer for answer in answers if isinstance(answer, Exception)]
        if len(failed) >= self.quorum:
            raise self._failure(failed)
        return False

    async def release(self, key: str, owner: str) -> LockStatus:
        answers = await self._on_every_host(lambda host: host.release(key, owner), self._host_timeout)
        return self._verdict(answers)

    async def extend(self, key: str, owner: str, expiry_ms: int) -> LockStatus:
        answers = await self._on_every_host(
            lambda host: host.extend(key, owner, expiry_ms), self._bound(expiry_ms)
        )
        return self._verdict(answers)

    def _verdict(self, answers: list[LockStatus | Exception]) -> LockStatus:
        statuses = Counter(answer for answer in answers if isinstance(answer, LockStatus))
        failed = [answer for answer in answers if isinstance(answer, Exception)]
        if statuses[LockStatus.SUCCESS] >= self.quorum:
            return LockStatus.SUCCESS
        if statuses[LockStatus.LOCK_BELONGS_TO_OTHERS] >= self.quorum:
            return LockStatus.LOCK_BELONGS_TO_OTHERS
        if len(failed) >= self.quorum:
            raise self._failure(failed)
        return LockStatus.LOCK_DOES_NOT_EXIST


class RedisLockStore:
    def __init__(self) -> None:
        self._hosts: list[RedisLockHost] = []
        self._locker: _Locker | None = None

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(RedisLockMetadata, metadata)
        retries = settings.maxRetries if settings.maxRetries is not None else (0 if settings.redlock else 3)
        addresses = settings.hosts
        connected = await asyncio.gather(
            *(connect(settings.model_copy(update={"redisHost": address}), max_retries=retries)
              for address in addresses),
            return_exceptions=True,
        )  # fmt: skip
        clients = [client for client in connected if isinstance(client, Redis)]
        failures = [error for error in connected if isinstance(error, BaseException)]
        if failures:
            await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)
            error = failures[0]
            if not settings.redlock or not isinstance(error, ComponentInitError):
                raise error
            field = "redisHosts" if error.field == "redisHost" else error.field
            raise ComponentInitError(str(error), field=field) from error
        self._hosts = [RedisLockHost(a, c) for a, c in zip(addresses, clients, strict=True)]
        if settings.redlock:
            read_timeout = settings.readTimeout.total_seconds()
            self._locker = Redlock(self._hosts, read_timeout if read_timeout > 0 else None)
        else:
            self._locker = self._hosts[0]

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _live(self) -> _Locker:
        # Checked because a closed redis-py client would silently open new connections.
        if self._locker is None:
            raise BackendError("redis lock store is not initialised or already closed")
        return self._locker

    async def try_lock(self, request: TryLockRequest) -> bool:
        expiry_ms = _milliseconds(request.expiry_seconds)
        return await self._live().acquire(request.resource_id, request.owner, expiry_ms)

    async def unlock(self, request: UnlockRequest) -> LockStatus:
        return await self._live().release(request.resource_id, request.owner)

    async def renew(self, request: RenewRequest) -> LockStatus:
        expiry_ms = _milliseconds(request.expiry_seconds)
        return await self._live().extend(request.resource_id, request.owner, expiry_ms)

    async def ping(self) -> None:
        """Health: PING on every server; Redlock stays usable while a majority answers."""
        hosts = self._hosts
        if not hosts:
            raise BackendError("redis: not connected")
        answers = await asyncio.gather(*(redis_ping(host.client) for host in hosts), return_exceptions=True)
        failed = [
            f"{h.address}: {a}" for h, a in zip(hosts, answers, strict=True) if isinstance(a, Exception)
        ]
        if len(failed) * 2 >= len(hosts):
            raise BackendError("; ".join(failed))

    async def close(self) -> None:
        hosts, self._hosts, self._locker = self._hosts, [], None
        results = await asyncio.gather(*(host.close() for host in hosts), return_exceptions=True)
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            raise failed[0]


def _milliseconds(seconds: int) -> int:
    return max(1, math.ceil(seconds * 1000))
