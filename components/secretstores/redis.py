"""secretstores.redis: secrets kept in a Redis that every sidecar of a fleet reads (l8's type; Dapr
has no Redis secret store). Operators write them with redis-cli; l8 only reads.

* A secret is the key ``<keyPrefix><name>``: a STRING answers ``{name: value}``, a HASH answers its
  fields (``HSET db user u password p`` -> ``{"user": "u", "password": "p"}``), so the store is
  multi-valued. A missing key is "secret not found"; a key of another type is an error naming it.
* ``get`` is one round trip (a Lua script reads the type and the value together, so a secret being
  rewritten is never read half-way).
* ``bulk_get`` SCANs ``<keyPrefix>*`` and reads every STRING and HASH key it finds, named without
  the prefix; keys of other types are skipped. Give the secrets a database of their own
  (``redisDB``) or a ``keyPrefix``: bulk reads everything that matches.

Metadata: the Redis connection fields (``redisHost``, ``redisPassword``, ``redisDB``, ``enableTLS``,
``readTimeout``...) and ``keyPrefix`` (default empty). ``redisPassword`` may itself come from a
``secretKeyRef`` to a ``local.file`` or ``local.env`` store started before this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from components.errors import BackendError
from components.metadata import decode
from components.redis_connection import REDIS_ERRORS, connect
from components.redis_connection import ping as redis_ping
from components.redis_metadata import RedisConnectionMetadata
from components.secretstores.base import Feature, SecretNotFoundError

# KEYS[1]: the secret's key. Answers {type, value}: value is a string or a flat field/value list.
_GET = """
local kind = redis.call("TYPE", KEYS[1])["ok"]
if kind == "string" then return {kind, redis.call("GET", KEYS[1])} end
if kind == "hash" then return {kind, redis.call("HGETALL", KEYS[1])} end
return {kind, false}
"""
_SCAN_BATCH = 1000


class RedisSecretMetadata(RedisConnectionMetadata):
    keyPrefix: str = ""


class RedisSecretStore:
    def __init__(self) -> None:
        self._client: Redis | None = None
        self._prefix = ""

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(RedisSecretMetadata, metadata)
        self._prefix = settings.keyPrefix
        self._client = await connect(settings)
        self._get = self._client.register_script(_GET)

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.MULTIPLE_KEY_VALUES_PER_SECRET})

    async def get(self, name: str, metadata: Mapping[str, str]) -> dict[str, str] | None:
        with REDIS_ERRORS:
            kind, value = await self._get((self._prefix + name,))
        return _secret(name, _text(kind), value)

    async def bulk_get(self, metadata: Mapping[str, str]) -> dict[str, dict[str, str]]:
        assert self._client is not None
        pattern = _glob_escape(self._prefix) + "*"
        found: dict[str, dict[str, str]] = {}
        with REDIS_ERRORS:
            async for batch in _batches(self._client.scan_iter(match=pattern, count=_SCAN_BATCH)):
                async with self._client.pipeline(transaction=False) as pipe:
                    for key in batch:
                        await self._get((key,), client=pipe)  # the pipeline loads the script first
                    answers = await pipe.execute()
                for key, (kind, value) in zip(batch, answers, strict=True):
                    name = _text(key)[len(self._prefix) :]
                    if _text(kind) in ("string", "hash"):
                        secret = _secret(name, _text(kind), value)
                        if secret is not None:
                            found[name] = secret
        return found

    async def ping(self) -> None:
        """Health: PING (components/health.py)."""
        await redis_ping(self._client)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with REDIS_ERRORS:
                await client.aclose()


def _secret(name: str, kind: str, value: Any) -> dict[str, str] | None:
    if kind == "none":
        raise SecretNotFoundError(name)
    if kind == "string":
        return {name: _text(value)}
    if kind == "hash":
        fields = [_text(item) for item in value]
        return dict(zip(fields[::2], fields[1::2], strict=True))
    raise BackendError(f"secret {name} is a Redis {kind}, not a string or a hash")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _glob_escape(prefix: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in prefix)


async def _batches(keys: Any) -> Any:
    batch: list[bytes] = []
    async for key in keys:
        batch.append(key)
        if len(batch) >= _SCAN_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
