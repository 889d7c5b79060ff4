"""bindings.redis: an output binding writing Redis keys, with Dapr's metadata and operations.

Metadata: the connection fields every l8 Redis component reads (``redisHost``, ``redisPassword``,
``redisUsername``, ``redisDB``, ``enableTLS``, ``dialTimeout``, ``readTimeout``, ``poolSize``,
``maxRetries``; components/redis_metadata.py).

Operations, each with request metadata ``key`` (required: ``redis binding: missing key in request
metadata`` otherwise):

``create``
    ``SET key data``; with ``ttlInSeconds`` the key expires that many seconds later.
``get``
    The value's bytes; a missing key answers empty data (200 with no body), as in Dapr.
``delete``
    ``DEL key``.
``increment``
    ``INCR key`` (an error when the value is not an integer); ``ttlInSeconds`` as for create.

Commands run once: a write whose reply was lost is not resent (components/redis_connection.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field
from redis.asyncio import Redis

from components.bindings.base import CREATE, DELETE, GET, BindingError, Feature, InvokeRequest, InvokeResponse
from components.errors import BackendError
from components.metadata import decode
from components.redis_connection import REDIS_ERRORS, RedisConnectionMetadata, connect
from components.redis_connection import ping as redis_ping

INCREMENT = "increment"
_OPERATIONS = (CREATE, DELETE, GET, INCREMENT)
_FEATURES = frozenset({Feature.OUTPUT_BINDING})


class RedisBindingMetadata(RedisConnectionMetadata):
    maxRetries: int = Field(default=3, ge=0)


def _ttl(metadata: Mapping[str, str]) -> int | None:
    text = metadata.get("ttlInSeconds", "")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise BindingError(f"error parsing ttlInSeconds: {text!r} is not an integer") from None


class RedisBinding:
    def __init__(self) -> None:
        self._client: Redis | None = None

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(RedisBindingMetadata, metadata)
        self._client = await connect(settings, max_retries=settings.maxRetries)

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    def operations(self) -> Sequence[str]:
        return _OPERATIONS

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        client = self._client
        if client is None:
            raise BackendError("redis binding is not initialised or already closed")
        key = request.metadata.get("key", "")
        if not key:
            raise BindingError("redis binding: missing key in request metadata")
        operation = request.operation
        ttl = _ttl(request.metadata) if operation in (CREATE, INCREMENT) else None
        with REDIS_ERRORS:
            if operation == GET:
                value = await client.get(key)
                return InvokeResponse(value if isinstance(value, bytes) else b"")
            if operation == DELETE:
                await client.delete(key)
                return None
            if operation == CREATE:
                await client.set(key, request.data, ex=ttl if ttl and ttl > 0 else None)
                return None
            if operation == INCREMENT:
                async with client.pipeline(transaction=True) as pipeline:
                    pipeline.incr(key)
                    if ttl and ttl > 0:
                        pipeline.expire(key, ttl)
                    await pipeline.execute()
                return None
        raise BindingError(f"invalid operation type: {operation}")

    async def ping(self) -> None:
        """Health: PING (components/health.py)."""
        await redis_ping(self._client)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
