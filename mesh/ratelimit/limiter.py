"""The rate limiter in the request path: every request l8 serves is checked against the rules it
matches (mesh/ratelimit/rules.py) before anything else works on it; a refused one gets the rule's
status (429 by default) with ``Retry-After`` and a Dapr-style error body, a queued one waits for its
token. What each rule let through, queued and refused shows in ``GET /v1.0/metadata``.

Shared rules keep their buckets in Redis (``rate_limits.redisHost`` and Dapr's other Redis fields:
``redisUsername``, ``redisPassword``, ``redisDB``, ``enableTLS``...); when Redis cannot answer a
check, the request is let through (``onRedisError: allow``, the default, so an outage of the
limiter's store is not an outage of the mesh) or refused (``onRedisError: reject``), and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from components.redis_metadata import RedisConnectionMetadata
from mesh.asgi import Scope
from mesh.errors import SettingsError
from mesh.proxy import FORWARDED_BY, VOUCHED
from mesh.ratelimit.buckets import LocalBuckets, RedisBuckets, Verdict
from mesh.ratelimit.rules import Rule

log = structlog.get_logger(__name__)

EXEMPT_PATHS = frozenset({"/v1.0/healthz", "/v1.0/healthz/outbound"})
"""Health probes are never limited: a limited probe would restart a healthy sidecar."""
_FORWARDED_BY = FORWARDED_BY.encode()
_INVOKE = "/v1.0/invoke/"


@dataclass(slots=True)
class Counters:
    allowed: int = 0
    queued: int = 0
    rejected: int = 0
    store_errors: int = 0

    def describe(self) -> dict[str, int]:
        found = {"allowed": self.allowed, "queued": self.queued, "rejected": self.rejected}
        if self.store_errors:
            found["storeErrors"] = self.store_errors
        return found


@dataclass(slots=True)
class _Entry:
    rule: Rule
    local: LocalBuckets | None = None
    shared: RedisBuckets | None = None
    counters: Counters = field(default_factory=Counters)


class RateLimits:
    """The rules of this sidecar, their buckets and counters."""

    def __init__(
        self,
        rules: Sequence[Rule],
        app_id: str,
        redis: RedisConnectionMetadata | None = None,
        *,
        fail_open: bool = True,
    ) -> None:
        names = [rule.name for rule in rules]
        duplicate = next((name for name in names if names.count(name) > 1), None)
        if duplicate is not None:
            raise SettingsError(f"rate_limits.rules: two rules are named {duplicate!r}")
        self.app_id = app_id
        self._redis = redis
        self._fail_open = fail_open
        self._client: Any = None
        self._store_down_until = 0.0
        self._entries = [
            _Entry(rule, None if rule.shared else LocalBuckets(rule.rate, rule.burst, rule.max_wait))
            for rule in rules
        ]
        self._targets = any(rule.target_app is not None for rule in rules)
        if any(rule.shared for rule in rules) and redis is None:
            raise SettingsError(
                "rate_limits.redisHost: shared rules keep their buckets in Redis; give host:port"
            )

    def __bool__(self) -> bool:
        return bool(self._entries)

    async def start(self) -> None:
        if self._redis is None or not any(entry.rule.shared for entry in self._entries):
            return
        from components.redis_connection import client_options, make_client

        redis = self._redis
        read_timeout = redis.readTimeout.total_seconds()
        # No retries: a check that fails is answered by the fallback at once.
        options = client_options(
            redis, max_retries=0, socket_timeout=read_timeout if read_timeout > 0 else None
        )
        self._client = make_client(redis, options)
        try:
            await self._client.ping()
        except Exception as exc:
            await self.aclose()
            raise SettingsError(
                f"rate_limits.redisHost: cannot reach Redis at {redis.redisHost}: {exc}"
            ) from None
        for entry in self._entries:
            rule = entry.rule
            if rule.shared:
                entry.shared = RedisBuckets(self._client, rule.name, rule.rate, rule.burst, rule.max_wait)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.aclose()

    def describe(self) -> list[dict[str, Any]]:
        return [{**entry.rule.describe(), **entry.counters.describe()} for entry in self._entries]

    async def check(self, scope: Scope) -> Refusal | None:
        """Take a token of every rule the request matches (waiting for queued ones); the refusal
        to answer with when a rule refuses it."""
        path: str = scope["path"]
        if path in EXEMPT_PATHS:
            return None
        method: str = scope["method"]
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        target = _invocation_target(path, headers) if self._targets else None
        caller = _caller(headers, self.app_id, scope.get(VOUCHED) is not False)
        wait = 0.0
        taken: list[tuple[_Entry, str, Verdict]] = []
        for entry in self._entries:
            rule = entry.rule
            if not rule.matches(method, path, target, caller):
                continue
            key = _key(rule, scope, caller)
            verdict = await self._take(entry, key)
            if not verdict.granted:
                entry.counters.rejected += 1
                for earlier, earlier_key, _ in taken:  # a refused request costs no other rule a token
                    await self._give_back(earlier, earlier_key)
                return Refusal(rule, verdict.wait)
            taken.append((entry, key, verdict))
        for entry, _, verdict in taken:
            if verdict.wait:
                entry.counters.queued += 1
                wait = max(wait, verdict.wait)
            entry.counters.allowed += 1
        if wait:
            await asyncio.sleep(wait)
        return None

    async def _give_back(self, entry: _Entry, key: str) -> None:
        if entry.local is not None:
            entry.local.give_back(key)
        elif entry.shared is not None:
            with contextlib.suppress(Exception):
                await entry.shared.give_back(key)

    async def _take(self, entry: _Entry, key: str) -> Verdict:
        if entry.local is not None:
            return entry.local.take(key)
        assert entry.shared is not None
        fallback = Verdict(True, 0.0) if self._fail_open else Verdict(False, 1.0)
        if time.monotonic() < self._store_down_until:
            entry.counters.store_errors += 1
            return fallback  # Redis failed a moment ago: not tried again for a second
        try:
            return await entry.shared.take(key)
        except Exception as exc:
            self._store_down_until = time.monotonic() + 1.0
            entry.counters.store_errors += 1
            if entry.counters.store_errors == 1 or entry.counters.store_errors % 1000 == 0:
                log.warning("rate limit store unreachable", rule=entry.rule.name, error=str(exc),
                            errors=entry.counters.store_errors)  # fmt: skip
            return fallback


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request a rule refused: answered with ``status``, ``ERR_TOO_MANY_REQUESTS`` and
    ``Retry-After`` (rendered by the app's error door)."""

    rule: Rule
    wait: float

    @property
    def status(self) -> int:
        return self.rule.status

    @property
    def retry_after(self) -> int:
        """Whole seconds, at least one."""
        return max(1, math.ceil(self.wait))

    @property
    def message(self) -> str:
        rule = self.rule
        return (
            f"too many requests: rate limit {rule.name!r} allows {rule.threshold} "
            f"per {rule.interval:g}s; retry after {self.retry_after}s"
        )


def _invocation_target(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """(app id, method) of a service invocation, by route or by the ``dapr-app-id`` header."""
    if path.startswith(_INVOKE):
        app, mark, method = path[len(_INVOKE) :].partition("/method/")
        if mark:
            return app, method
        return (app.removesuffix("/method"), "") if app.endswith("/method") else None
    for name, value in headers:
        if name == b"dapr-app-id":
            return value.decode("latin-1"), path.lstrip("/")
    return None


def _caller(headers: list[tuple[bytes, bytes]], own_app_id: str, vouched: bool = True) -> str:
    if not vouched:  # a mesh token is configured and this request did not carry it
        return own_app_id
    forwarded = caller = None
    for name, value in headers:
        if name == _FORWARDED_BY:
            forwarded = value
        elif name == b"dapr-caller-app-id":
            caller = value
    if forwarded is not None and caller is not None:
        return caller.decode("latin-1")
    return own_app_id


def _key(rule: Rule, scope: Scope, caller: str) -> str:
    if not rule.per:
        return ""
    parts = []
    for per in rule.per:
        if per == "ip":
            client = scope.get("client")
            parts.append(client[0] if client else "")
        elif per == "caller":
            parts.append(caller)
        else:
            parts.append(scope["path"])
    return "|".join(parts)
