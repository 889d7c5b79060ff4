"""pubsub.redis: Redis Streams through redis.asyncio, laid out as Dapr lays them out so daprd and l8
sidecars can share one Redis, and even one consumer group.

A topic is the stream of that name. Publish is ``XADD`` of two fields: ``data`` (the message bytes)
and ``metadata`` (the publish metadata as a JSON object, as Dapr 1.12+ writes it; entries without it
are delivered with no metadata). Publishes that arrive together go in one pipeline
(:mod:`components.pubsub.batching`), each still answered with its own outcome. Each
``consumerID`` is a consumer group; every subscription is a consumer of it under a name of its own
(``<consumerID>-<random>``), so replicas share the messages.

A new group starts at the beginning of the stream (``XGROUP CREATE ... 0 MKSTREAM``, as Dapr
does), so messages published before the first subscriber started are delivered to it; an existing
group resumes where it stopped, so messages published while no consumer ran are delivered later. If
the group disappears (Redis restarted without persistence) it is recreated at ``0`` too.

Metadata (Dapr's names; unknown fields are ignored):

``redisHost`` (required), ``redisUsername``, ``redisPassword``, ``redisDB``, ``enableTLS``
    Where Redis is, as for state.redis.
``redisMaxRetries`` (3), ``dialTimeout`` (5s), ``readTimeout`` (3s)
    Retries of a command after a connection error; connect timeout; how long one ``XREADGROUP``
    blocks waiting for new entries (socket reads time out at twice that plus a second).
``poolSize`` (unbounded)
    When set, at most this many connections are shared by publishes and acks (further commands
    wait for one); each subscription reads on one of its own.
``consumerID`` (required; the runtime fills in the app id)
    The consumer group.
``concurrency`` (10)
    The most handler calls one subscription runs at once. The runtime's ``max_in_flight`` can
    only lower it, so ``concurrency: 1`` keeps publish order, as in Dapr (where it counts workers
    shared by every subscription of the component).
``queueDepth`` (100)
    The most entries one read fetches.
``processingTimeout`` (60s), ``redeliverInterval`` (15s, Dapr's default)
    How long an entry stays pending before it is delivered again; how often pending entries are
    looked for. As in Dapr a bare number is milliseconds, and ``0`` for either disables redelivery.
``maxLenApprox``, ``streamTTL``
    Trimming on publish: ``MAXLEN ~`` and ``MINID ~`` (now minus the TTL).

Delivery: a subscription reads only as many entries as it has free handler slots, so nothing waits
in a local queue while its idle time runs. ``XACK`` follows a handler that returned; a handler that
raised leaves the entry pending. Every ``redeliverInterval`` the subscription claims (``XAUTOCLAIM``)
entries of its group idle longer than ``processingTimeout``, whoever held them, and delivers them
again; before that it claims afresh the entries its own handlers are still working on, so a slow
handler is not taken for a crashed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import orjson
from pydantic import Field, field_validator
from redis import exceptions as redis_errors
from redis.asyncio import ConnectionPool, Redis

from components.errors import BackendError, ComponentInitError
from components.metadata import Duration, decode, metadata_error, parse_duration
from components.pubsub.base import Feature, Handler, PublishRequest, SubscribeRequest
from components.pubsub.batching import Coalescer
from components.pubsub.redis_consumer import RedisSubscription, create_group
from components.redis_connection import REDIS_ERRORS as _REDIS_ERRORS
from components.redis_connection import (
    RedisConnectionMetadata,
    client_options,
    init_error,
    make_client,
)
from components.redis_connection import ping as redis_ping

PIPELINES_IN_FLIGHT = 4
"""Publish pipelines out at once per component; further publishes join the next one."""
DRAIN_TIMEOUT = 5.0
"""How long closing waits for publishes under way."""


def _fields(request: PublishRequest) -> dict[Any, Any]:
    return {
        "data": request.data,
        # Go's encoding/json writes a map's keys sorted, compactly: the same bytes as daprd.
        "metadata": orjson.dumps(dict(request.metadata), option=orjson.OPT_SORT_KEYS),
    }


def _millis_or_duration(value: object) -> timedelta:
    # Dapr reads a bare number as milliseconds for these two fields only (a legacy it keeps).
    text = str(value).strip()
    if text.isdigit():
        return timedelta(milliseconds=int(text))
    return parse_duration(text)


class RedisPubSubMetadata(RedisConnectionMetadata):
    redisMaxRetries: int = Field(default=3, ge=0)
    consumerID: str = Field(min_length=1)
    concurrency: int = Field(default=10, ge=1)
    queueDepth: int = Field(default=100, ge=1)
    processingTimeout: timedelta = timedelta(seconds=60)
    redeliverInterval: timedelta = timedelta(seconds=15)
    maxLenApprox: int | None = Field(default=None, ge=1)
    streamTTL: Duration | None = None

    @field_validator("processingTimeout", "redeliverInterval", mode="before")
    @classmethod
    def _legacy_millis(cls, value: object) -> timedelta:
        return _millis_or_duration(value)

    @field_validator("processingTimeout", "redeliverInterval", "readTimeout", "streamTTL")
    @classmethod
    def _not_negative(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise metadata_error("must not be negative")
        return value

    @property
    def redelivers(self) -> bool:
        return self.processingTimeout > timedelta(0) and self.redeliverInterval > timedelta(0)


class RedisPubSub:
    def __init__(self) -> None:
        self._client: Redis | None = None
        self._settings: RedisPubSubMetadata | None = None
        self._subscriptions: set[RedisSubscription] = set()
        self._options: dict[str, Any] = {}
        # Publishes that arrive together share a pipeline; a few pipelines may be out at once.
        self._batcher: Coalescer[PublishRequest] = Coalescer(self._flush, max_in_flight=PIPELINES_IN_FLIGHT)

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(RedisPubSubMetadata, metadata)
        read_timeout = settings.readTimeout.total_seconds()
        # Longer than any XREADGROUP block, which waits up to readTimeout on purpose. Publishes and
        # acks share one pool; each subscription reads on a connection of its own, so a blocking
        # read never starves them.
        options = client_options(
            settings,
            max_retries=settings.redisMaxRetries,
            socket_timeout=2 * read_timeout + 1 if read_timeout > 0 else None,
        )
        client = make_client(settings, options)
        try:
            info = await client.info("server")
        except BaseException as exc:
            # Cancelled too (spec.initTimeout ran out while connecting): release the pool all the same.
            await client.aclose()
            if isinstance(exc, redis_errors.RedisError):
                raise init_error(settings.redisHost, exc) from exc
            raise
        version = tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:2])
        if version < (6, 2):
            await client.aclose()
            raise ComponentInitError(
                f"Redis at {settings.redisHost} is version {info.get('redis_version')}; "
                "pubsub.redis needs 6.2 or later (XAUTOCLAIM)",
                field="redisHost",
            )
        self._client, self._settings, self._options = client, settings, options

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _live(self) -> tuple[Redis, RedisPubSubMetadata]:
        if self._client is None or self._settings is None:
            raise BackendError("redis pubsub is not initialised or already closed")
        return self._client, self._settings

    async def publish(self, request: PublishRequest) -> None:
        self._live()
        with _REDIS_ERRORS:
            await self._batcher.submit(request)

    async def _flush(self, requests: list[PublishRequest]) -> list[BaseException | None]:
        """XADD every request: in one pipeline when several were published together."""
        client, settings = self._live()
        min_id = None
        if settings.streamTTL:
            min_id = f"{int((time.time() - settings.streamTTL.total_seconds()) * 1000)}-0"
        # XADD takes one trimming strategy: with both, an XTRIM follows each XADD.
        both = min_id is not None and settings.maxLenApprox is not None
        maxlen = settings.maxLenApprox
        if len(requests) == 1 and not both:
            request = requests[0]
            await client.xadd(request.topic, _fields(request), maxlen=maxlen, minid=min_id, approximate=True)
            return [None]
        async with client.pipeline(transaction=False) as pipe:
            for request in requests:
                if both:
                    pipe.xadd(request.topic, _fields(request), maxlen=maxlen, approximate=True)
                    pipe.xtrim(request.topic, minid=min_id, approximate=True)
                else:
                    pipe.xadd(request.topic, _fields(request), maxlen=maxlen, minid=min_id, approximate=True)
            results = await pipe.execute(raise_on_error=False)
        # A failed trim does not fail the publish: the entry is in the stream.
        return [result if isinstance(result, Exception) else None for result in results[:: 2 if both else 1]]

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> RedisSubscription:
        client, settings = self._live()
        with _REDIS_ERRORS:
            await create_group(client, request.topic, settings.consumerID, "0")
        reader = Redis.from_pool(ConnectionPool(max_connections=1, **self._options))
        subscription = RedisSubscription(
            client,
            reader,
            settings,
            request.topic,
            handler,
            request.max_in_flight,
            self._subscriptions.discard,
        )
        self._subscriptions.add(subscription)
        return subscription

    async def ping(self) -> None:
        """Health: PING (components/health.py)."""
        await redis_ping(self._client)

    async def close(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, set()
        await asyncio.gather(*(subscription.stop() for subscription in subscriptions))
        # Publishes under way get their answer before the pool goes (bounded by the socket timeout).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await self._batcher.drain()
        client, self._client = self._client, None
        if client is not None:
            with _REDIS_ERRORS:
                await client.aclose()
