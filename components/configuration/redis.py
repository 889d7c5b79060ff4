"""configuration.redis: Dapr's layout, so l8 and daprd's configuration.redis read and follow the same
items, and operators can write them with redis-cli.

* An item of the default group and label is the STRING key ``<key>`` holding ``<value>||<version>``;
  a value written without ``||`` (``SET greeting hello``) has the version "". An item of another
  group or label is the key ``<group>||<label>||<key>``. The version is what follows the last
  ``||``, so a value may itself contain ``||`` (daprd would read such a value only up to its first
  ``||``).
* Tags (Layotto's) are JSON in the companion STRING ``l8||tags||<rediskey>``, written by the same
  Lua script as the value; a save without tags removes it. Item metadata is not stored.
* A save is one Lua script that gives each item the version after the one it holds
  (``value||(old+1)``; 1 when the item is new or its version is not a number).
* ``get`` with no keys SCANs the database: for the default group and label every key without
  ``||``, for another one the keys starting ``<group>||<label>||``; companion keys are never items.
  So a group or label may not contain ``||``, a default key neither, and group ``l8`` with label
  ``tags`` is reserved.

Subscriptions follow keyspace notifications: init reads ``notify-keyspace-events`` and adds what is
missing (K, and $ g x unless A is there); when CONFIG is refused a warning says subscriptions need
it set. The store keeps one pub/sub connection (PSUBSCRIBE ``__keyspace@<db>__:*``, opened by the
first subscription). A string write of a subscribed key is read back (value and tags) and delivered
when it differs from what that subscription last saw; DEL, UNLINK, expiry, eviction and RENAME away
deliver a deleted item. Changes that overwrite each other faster than that read are delivered as the
latest one. Each subscription starts from a snapshot of its keys, so after a lost pub/sub connection
(logged; it is reopened with backoff) the store reads the keys again and delivers exactly what
changed meanwhile.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import structlog
from pydantic import Field
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.commands.core import AsyncScript

from components.configuration.base import (
    DEFAULT_GROUP,
    DEFAULT_LABEL,
    ChangeHandler,
    ConfigurationItem,
    DeleteRequest,
    Feature,
    GetRequest,
    SaveRequest,
    SubscribeRequest,
)
from components.configuration.subscriptions import (
    Address,
    QueuedSubscription,
    Subscribers,
    cancel_and_wait,
    deleted,
    unique,
)
from components.errors import BackendError
from components.errors import InvalidConfigurationRequestError as Invalid
from components.metadata import decode
from components.redis_connection import REDIS_ERRORS, RedisConnectionMetadata, connect, init_error
from components.redis_connection import ping as redis_ping

log = structlog.get_logger(__name__)

NAME = "configuration.redis"
SEPARATOR = "||"
TAGS_PREFIX = "l8||tags||"
_BATCH = 500
"""Items per MGET."""
_WRITTEN = frozenset({b"set", b"setrange", b"append", b"incrby", b"incrbyfloat", b"rename_to",
                      b"copy_to", b"move_to", b"restore"})  # fmt: skip
_GONE = frozenset({b"del", b"expired", b"evicted", b"rename_from", b"move_from"})
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0

# KEYS: per item its key, then its tags key. ARGV: per item its value, then its tags JSON ("": none);
# the last ARGV is the channel every written item is published on, with its new version: what lets a
# subscriber get every change an l8 makes, however close together (see _notified).
_SAVE = """
local channel = ARGV[#ARGV]
local versions = {}
for i = 1, #KEYS, 2 do
  local version = 1
  if redis.call("TYPE", KEYS[i]).ok == "string" then
    local old = string.match(redis.call("GET", KEYS[i]), "||(%d+)$")
    if old and #old <= 15 then version = tonumber(old) + 1 end
  end
  if ARGV[i + 1] == "" then
    redis.call("DEL", KEYS[i + 1])
  else
    redis.call("SET", KEYS[i + 1], ARGV[i + 1])
  end
  local stored = ARGV[i] .. "||" .. string.format("%d", version)
  redis.call("SET", KEYS[i], stored)
  -- <length>:<key><length>:<stored><tags JSON>, byte lengths: binary-safe without a library.
  redis.call("PUBLISH", channel, #KEYS[i] .. ":" .. KEYS[i] .. #stored .. ":" .. stored .. ARGV[i + 1])
  versions[#versions + 1] = version
end
return versions
"""


class RedisConfigurationMetadata(RedisConnectionMetadata):
    maxRetries: int = Field(default=3, ge=-1)
    """Retries of a command after a connection error or timeout; -1 disables them, as in Dapr."""


def redis_key(group: str, label: str, key: str) -> str:
    """The Redis key of an item; ComponentError for a name the layout cannot hold."""
    if SEPARATOR in group or SEPARATOR in label:
        raise Invalid(f"{NAME}: a group or label may not contain {SEPARATOR!r}")
    if (group, label) == (DEFAULT_GROUP, DEFAULT_LABEL):
        if SEPARATOR in key:
            raise Invalid(f"{NAME}: a key of the default group and label may not hold {SEPARATOR!r}")
        return key
    if (group, label) == ("l8", "tags"):
        raise Invalid(f"{NAME}: group l8 with label tags is reserved (companion keys of tags)")
    return f"{group}{SEPARATOR}{label}{SEPARATOR}{key}"


def address_of(rkey: str) -> Address | None:
    """The item a Redis key holds, or None when it is no item (a companion, another layout)."""
    if SEPARATOR not in rkey:
        return DEFAULT_GROUP, DEFAULT_LABEL, rkey
    if rkey.startswith(TAGS_PREFIX):
        return None
    parts = rkey.split(SEPARATOR, 2)
    if len(parts) != 3 or (parts[0], parts[1]) == (DEFAULT_GROUP, DEFAULT_LABEL):
        return None
    return parts[0], parts[1], parts[2]


def _tags(raw: bytes | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in decoded.items()}


def _item(where: Address, raw: bytes, raw_tags: bytes | None) -> ConfigurationItem:
    text = raw.decode("utf-8", "replace")
    value, separator, version = text.rpartition(SEPARATOR)
    if not separator:
        value, version = text, ""
    group, label, key = where
    return ConfigurationItem(key, value, version, group=group, label=label, tags=_tags(raw_tags))


def _unpack(data: bytes) -> tuple[bytes, bytes, bytes]:
    """(key, stored value, tags JSON) of a message the save script published."""
    parts = []
    rest = data
    for _ in range(2):
        length, colon, rest = rest.partition(b":")
        if not colon or not length.isdigit() or len(rest) < int(length):
            raise ValueError("not a save message")
        parts.append(rest[: int(length)])
        rest = rest[int(length) :]
    return parts[0], parts[1], rest


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _missing_flags(current: str) -> str:
    wanted = "K" if "A" in current else "K$gx"
    return "".join(flag for flag in wanted if flag not in current)


async def _discard(pubsub: PubSub) -> None:
    """Close a pub/sub connection that may be broken already: its errors tell nothing new."""
    try:
        await pubsub.aclose()
    except Exception as exc:
        log.debug(f"{NAME}: closing a pub/sub connection failed", error=str(exc))


_State = tuple[str, str, Mapping[str, str]]


class _Subscription(QueuedSubscription):
    """Remembers, per key, the value, version and tags it last saw: what makes each change arrive
    once, whether the store hears of it from a notification or from a read after a reconnect."""

    seen: dict[str, _State]

    def observe(self, key: str, item: ConfigurationItem | None) -> None:
        """Offer ``key``'s current content (None: it is gone) if it differs from the last seen."""
        if item is None:
            if self.seen.pop(key, None) is not None:
                self.offer([deleted(self.group, self.label, key)])
            return
        state = (item.value, item.version, item.tags)
        if self.seen.get(key) != state:
            self.seen[key] = state
            self.offer([item])


class RedisConfigurationStore:
    def __init__(self) -> None:
        self._client: Redis | None = None
        self._subscribers: Subscribers[_Subscription] = Subscribers(NAME)
        self._listener: asyncio.Task[None] | None = None
        self._listen_lock = asyncio.Lock()
        self._snapshots = asyncio.Lock()
        """Held while a subscription takes its snapshot or the store reads every subscription's keys
        again after a reconnect, so neither sees the other half done."""
        self._pattern = ""
        self._channel = ""
        self._unexplained: dict[str, int] = {}
        """Keys written (a keyspace event) whose write no l8 has published yet: read back at the next
        PONG, by which time any l8 save's own message has arrived (it was queued before the PING)."""
        self._pinged = False

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(RedisConfigurationMetadata, metadata)
        client = await connect(settings, max_retries=settings.maxRetries)
        try:
            await self._enable_notifications(client)
        except redis_errors.RedisError as exc:
            await client.aclose()
            raise init_error(settings.redisHost, exc) from exc
        self._client = client
        self._pattern = f"__keyspace@{settings.redisDB}__:*"
        self._channel = f"l8||configuration||{settings.redisDB}"
        self._save_script: AsyncScript = client.register_script(_SAVE)

    @staticmethod
    async def _enable_notifications(client: Redis) -> None:
        try:
            reply = await client.config_get("notify-keyspace-events")
            current = next(iter(reply.values()), "") if reply else ""
            current = current.decode() if isinstance(current, bytes) else str(current)
            missing = _missing_flags(current)
            if missing:
                await client.config_set("notify-keyspace-events", current + missing)
                log.info(f"{NAME}: keyspace notifications enabled", flags=current + missing)
        except redis_errors.ResponseError as exc:
            log.warning(f"{NAME}: subscriptions need notify-keyspace-events to include K$gx (or KA), "
                        "and CONFIG was refused", error=str(exc))  # fmt: skip

    def features(self) -> frozenset[Feature]:
        return frozenset()

    def _live(self) -> Redis:
        if self._client is None:
            raise BackendError("redis configuration store is not initialised or already closed")
        return self._client

    # -- reading ------------------------------------------------------------------------------------

    async def get(self, request: GetRequest) -> list[ConfigurationItem]:
        client = self._live()
        group, label = request.group, request.label
        if request.keys:
            wanted = [((group, label, key), redis_key(group, label, key)) for key in unique(request.keys)]
        else:
            redis_key(group, label, "")  # refuses names the layout cannot hold
            with REDIS_ERRORS:
                wanted = await self._scan(client, group, label)
        with REDIS_ERRORS:
            return await self._read(client, wanted)

    @staticmethod
    async def _scan(client: Redis, group: str, label: str) -> list[tuple[Address, str]]:
        default = (group, label) == (DEFAULT_GROUP, DEFAULT_LABEL)
        pattern = "*" if default else _glob_escape(f"{group}{SEPARATOR}{label}{SEPARATOR}") + "*"
        found: dict[str, Address] = {}  # SCAN may return a key twice
        async for raw in client.scan_iter(match=pattern, count=1000, _type="STRING"):
            rkey = raw.decode("utf-8", "replace")
            where = address_of(rkey)
            if where is not None and where[:2] == (group, label):
                found[rkey] = where
        return [(found[rkey], rkey) for rkey in sorted(found)]

    @staticmethod
    async def _read(client: Redis, wanted: Sequence[tuple[Address, str]]) -> list[ConfigurationItem]:
        items = []
        for start in range(0, len(wanted), _BATCH):
            batch = wanted[start : start + _BATCH]
            rkeys = [rkey for _, rkey in batch]
            # Non-string keys read as nil, as in daprd (which skips them).
            raw: list[Any] = await client.mget(rkeys + [TAGS_PREFIX + rkey for rkey in rkeys])
            values, tags = raw[: len(batch)], raw[len(batch) :]
            items += [
                _item(where, value, raw_tags)
                for (where, _), value, raw_tags in zip(batch, values, tags, strict=True)
                if value is not None
            ]
        return items

    # -- writing ------------------------------------------------------------------------------------

    async def save(self, request: SaveRequest) -> None:
        client = self._live()
        keys: list[str] = []
        args: list[bytes] = []
        for item in request.items:
            rkey = redis_key(item.group, item.label, item.key)
            keys += (rkey, TAGS_PREFIX + rkey)
            args += (item.value.encode(), orjson.dumps(dict(item.tags)) if item.tags else b"")
        if keys:
            with REDIS_ERRORS:
                await self._save_script(keys, [*args, self._channel.encode()], client)

    async def delete(self, request: DeleteRequest) -> None:
        client = self._live()
        rkeys = [redis_key(request.group, request.label, key) for key in unique(request.keys)]
        if rkeys:
            with REDIS_ERRORS:
                await client.delete(*rkeys, *(TAGS_PREFIX + rkey for rkey in rkeys))

    # -- following changes --------------------------------------------------------------------------

    async def subscribe(self, request: SubscribeRequest, handler: ChangeHandler) -> _Subscription:
        client = self._live()
        for key in request.keys or ("",):
            redis_key(request.group, request.label, key)
        await self._listen(client)
        async with self._snapshots:
            subscription = _Subscription(request, handler, NAME, self._subscribers.discard)
            subscription.seen = {}
            self._subscribers.add(subscription)
            try:
                # Registered first, then read: a change is in the snapshot or notified after it.
                for item in await self.get(request):
                    subscription.seen.setdefault(item.key, (item.value, item.version, item.tags))
            except BaseException:
                await subscription.close()
                raise
        return subscription

    async def _listen(self, client: Redis) -> None:
        async with self._listen_lock:
            if self._listener is None:
                with REDIS_ERRORS:
                    pubsub = await self._open_pubsub(client)
                self._listener = asyncio.create_task(self._follow(client, pubsub))

    async def _open_pubsub(self, client: Redis) -> PubSub:
        """A pub/sub connection whose PSUBSCRIBE Redis has confirmed: it hears every later write."""
        pubsub = client.pubsub()
        try:
            await pubsub.psubscribe(self._pattern)
            await pubsub.subscribe(self._channel)  # one connection: the two stay in Redis's order
            confirmed: set[str] = set()
            async with asyncio.timeout(10):
                while confirmed != {"psubscribe", "subscribe"}:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] in ("psubscribe", "subscribe"):
                        confirmed.add(message["type"])
        except BaseException:
            await pubsub.aclose()
            raise
        return pubsub

    async def _follow(self, client: Redis, pubsub: PubSub | None) -> None:
        backoff, failing = _BACKOFF_FIRST, False
        try:
            while True:
                try:
                    if pubsub is None:
                        pubsub = await self._open_pubsub(client)
                        log.info(f"{NAME}: keyspace notifications back, reading subscribed keys again")
                        await self._resync()
                        backoff, failing = _BACKOFF_FIRST, False
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    kind = message["type"]
                    if kind == "psubscribe":
                        # redis-py reconnected by itself and subscribed again: notifications were lost.
                        log.info(f"{NAME}: keyspace notifications back, reading subscribed keys again")
                        self._unexplained.clear()
                        await self._resync()
                    elif kind == "pmessage":
                        await self._notified(pubsub, message["channel"], message["data"])
                    elif kind == "message":
                        self._published(message["data"])
                    elif kind == "pong":
                        await self._read_back(client)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    level = log.debug if failing else log.warning
                    level(
                        f"{NAME}: keyspace notifications lost, reconnecting", error=str(exc), retry_in=backoff
                    )
                    failing = True
                    if pubsub is not None:
                        await _discard(pubsub)
                        pubsub = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
        finally:
            if pubsub is not None:
                await _discard(pubsub)

    async def _notified(self, pubsub: PubSub, channel: bytes, event: bytes) -> None:
        """A keyspace event. A removal is its own news; a write is news only once its content is
        known: an l8 save publishes it right after (``_published``), any other writer's content is
        read back at the next PONG, after every message queued before it."""
        if event not in _WRITTEN and event not in _GONE:
            return
        rkey = channel.split(b":", 1)[1].decode("utf-8", "replace")
        where = address_of(rkey)
        if where is None or not any(s.wants(*where) for s in self._subscribers):
            return
        if event in _GONE:
            self._unexplained.pop(rkey, None)
            self._observe(where, None)
            return
        self._unexplained[rkey] = self._unexplained.get(rkey, 0) + 1
        if not self._pinged:
            self._pinged = True
            await pubsub.ping()

    def _published(self, data: bytes) -> None:
        """An l8 save's item, with the content it wrote: delivered as is, so every save arrives."""
        try:
            rkey_raw, stored, raw_tags = _unpack(data)
        except ValueError:
            log.warning(f"{NAME}: an unreadable message on {self._channel} was ignored")
            return
        rkey = rkey_raw.decode("utf-8", "replace")
        where = address_of(rkey)
        if where is None:
            return
        pending = self._unexplained.get(rkey, 0)
        if pending > 1:
            self._unexplained[rkey] = pending - 1
        else:
            self._unexplained.pop(rkey, None)
        self._observe(where, _item(where, stored, raw_tags or None))

    async def _read_back(self, client: Redis) -> None:
        """Writes no l8 published (redis-cli, another program): their current content. Writes that
        overwrite each other faster than this read arrive as the latest one."""
        self._pinged = False
        unexplained, self._unexplained = self._unexplained, {}
        for rkey in unexplained:
            where = address_of(rkey)
            if where is None:
                continue
            found = await self._read(client, [(where, rkey)])
            if found:  # else removed since: the notification of that removal delivers it
                self._observe(where, found[0])

    def _observe(self, where: Address, item: ConfigurationItem | None) -> None:
        for subscription in self._subscribers:
            if subscription.wants(*where):
                subscription.observe(where[2], item)

    async def _resync(self) -> None:
        async with self._snapshots:
            for subscription in self._subscribers:
                request = GetRequest(sorted(subscription.keys), subscription.group, subscription.label)
                current = {item.key: item for item in await self.get(request)}
                for key in dict.fromkeys([*subscription.seen, *current]):
                    subscription.observe(key, current.get(key))

    async def ping(self) -> None:
        """Health: PING (components/health.py)."""
        await redis_ping(self._client)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await cancel_and_wait(listener)
        await self._subscribers.close()
        client, self._client = self._client, None
        if client is not None:
            with REDIS_ERRORS:
                await client.aclose()
