"""The consumer side of ``pubsub.redis``: one member of a Redis Streams consumer group per
subscription, with its read loop (XREADGROUP), acknowledgements after the handler returns (XACK;
the acks of deliveries that end together go in one XACK of several ids) and the reclaiming of
entries left pending by crashed or stalled consumers (XAUTOCLAIM). The component
(components/pubsub/redis.py) creates these; its docstring describes the behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

import orjson
import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from components.pubsub.base import Handler, Message
from components.pubsub.batching import Coalescer

log = structlog.get_logger(__name__)

_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0
"""Waits between attempts of a subscription whose reads fail (Redis down, restarting)."""
_CLEANUP_TIMEOUT = 2.0


class ConsumerSettings(Protocol):
    """What a consumer reads of the component's metadata (RedisPubSubMetadata is one)."""

    @property
    def consumerID(self) -> str: ...
    @property
    def concurrency(self) -> int: ...
    @property
    def queueDepth(self) -> int: ...
    @property
    def readTimeout(self) -> timedelta: ...
    @property
    def processingTimeout(self) -> timedelta: ...
    @property
    def redeliverInterval(self) -> timedelta: ...
    @property
    def redelivers(self) -> bool: ...


async def create_group(client: Redis, topic: str, group: str, start: str) -> None:
    try:
        await client.xgroup_create(topic, group, id=start, mkstream=True)
    except redis_errors.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _message(topic: str, entry_id: bytes, fields: Mapping[bytes, bytes]) -> Message:
    metadata: dict[str, str] = {}
    raw = fields.get(b"metadata")
    if raw:
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict):
            metadata = {str(k): v if isinstance(v, str) else str(v) for k, v in decoded.items()}
        else:
            log.warning("pubsub.redis: entry metadata is not a JSON object", topic=topic, id=entry_id)
    return Message(topic, fields.get(b"data", b""), metadata, id=entry_id.decode())


class RedisSubscription:
    """One consumer of the group: a read loop, and the handler calls it started."""

    stop_timeout: float = 5.0
    """How long ``stop()`` waits for running handler calls before cancelling them."""

    def __init__(
        self,
        client: Redis,
        reader: Redis,
        settings: ConsumerSettings,
        topic: str,
        handler: Handler,
        max_in_flight: int,
        on_stop: Callable[[RedisSubscription], None],
    ) -> None:
        self.topic = topic
        self.group = settings.consumerID
        self.consumer = f"{settings.consumerID}-{uuid.uuid4().hex[:12]}"
        self._client = client
        self._reader_client = reader
        """Used by the read loop alone (blocking reads, claims), then by stop()."""
        self._settings = settings
        self._handler = handler
        self._on_stop = on_stop
        self._limit = max(1, min(max_in_flight, settings.concurrency))
        self._slots = asyncio.Semaphore(self._limit)
        self._in_flight: dict[bytes, asyncio.Task[None]] = {}
        self._block = settings.readTimeout.total_seconds() or 5.0
        self._cursor = b"0-0"
        self._stopped = False
        self._stopping: asyncio.Future[None] | None = None
        self._acks: Coalescer[bytes] = Coalescer(self._ack_all, max_in_flight=2)
        self._reader: asyncio.Task[None] = asyncio.create_task(self._read_loop())

    # -- reading ----------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        backoff = _BACKOFF_FIRST
        failing = False
        reclaim_at = 0.0 if self._settings.redelivers else math.inf
        while not self._stopped:
            slots = await self._reserve()
            try:
                entries, reclaim_at = await self._fetch(slots, reclaim_at)
            except Exception as exc:
                self._release(slots)
                if self._stopped:
                    # A cancellation redis-py's timeout turned into an error (Python 3.11).
                    return
                if not failing:
                    log.warning("pubsub.redis: reading failed, retrying", topic=self.topic, error=str(exc))
                    failing = True
                await self._recover(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            except BaseException:
                self._release(slots)
                raise
            if failing:
                log.info("pubsub.redis: reading again", topic=self.topic)
                failing, backoff = False, _BACKOFF_FIRST
            self._release(slots - len(entries))
            for entry_id, fields in entries:
                task = asyncio.create_task(self._deliver(entry_id, _message(self.topic, entry_id, fields)))
                self._in_flight[entry_id] = task

    async def _reserve(self) -> int:
        """Wait for one free handler slot, then take every other free one (up to queueDepth)."""
        await self._slots.acquire()
        taken, most = 1, min(self._limit, self._settings.queueDepth)
        while taken < most and not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            taken += 1
        return taken

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    async def _fetch(self, count: int, reclaim_at: float) -> tuple[list[Any], float]:
        now = time.monotonic()
        if now >= reclaim_at:
            entries, done = await self._reclaim(count)
            if done:
                reclaim_at = now + self._settings.redeliverInterval.total_seconds()
            if entries or not done:
                return entries, reclaim_at
        block = min(self._block, reclaim_at - now)
        reply: Any = await self._reader_client.xreadgroup(
            self.group, self.consumer, {self.topic: ">"}, count=count, block=max(1, int(block * 1000))
        )
        return (reply[0][1] if reply else []), reclaim_at

    async def _reclaim(self, count: int) -> tuple[list[Any], bool]:
        """Claim entries of the group idle past processingTimeout; True once the scan is complete."""
        client, ms = self._reader_client, int(self._settings.processingTimeout.total_seconds() * 1000)
        if self._in_flight:
            # Resets their idle time, so no consumer mistakes a slow handler for a crashed one.
            await client.xclaim(self.topic, self.group, self.consumer, 0, list(self._in_flight), justid=True)
        reply = await client.xautoclaim(
            self.topic, self.group, self.consumer, ms, start_id=self._cursor, count=count
        )
        self._cursor = reply[0]
        entries = [
            (entry_id, fields)
            for entry_id, fields in reply[1]
            if entry_id is not None and fields is not None and entry_id not in self._in_flight
        ]
        return entries, self._cursor == b"0-0"

    async def _recover(self, error: Exception) -> None:
        if isinstance(error, redis_errors.ResponseError) and "NOGROUP" in str(error):
            log.warning(
                "pubsub.redis: consumer group missing, recreating it", topic=self.topic, group=self.group
            )
            self._cursor = b"0-0"
            with contextlib.suppress(redis_errors.RedisError):
                await create_group(self._reader_client, self.topic, self.group, "0")

    # -- delivering -------------------------------------------------------------------------------

    async def _deliver(self, entry_id: bytes, message: Message) -> None:
        try:
            try:
                await self._handler(message)
            except Exception as exc:
                log.warning(
                    "pubsub.redis: delivery failed, the entry stays pending for redelivery",
                    topic=self.topic,
                    id=message.id,
                    error=str(exc) or type(exc).__name__,
                )
                return
            try:
                await self._acks.submit(entry_id)
            except redis_errors.RedisError as exc:
                log.warning(
                    "pubsub.redis: ack failed, entry will be redelivered", id=message.id, error=str(exc)
                )
        finally:
            self._in_flight.pop(entry_id, None)
            self._slots.release()

    async def _ack_all(self, entry_ids: list[bytes]) -> list[BaseException | None]:
        await self._client.xack(self.topic, self.group, *entry_ids)
        return [None] * len(entry_ids)

    # -- stopping ---------------------------------------------------------------------------------

    async def stop(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        self._stopped = True
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        running = set(self._in_flight.values())
        if running:
            _, late = await asyncio.wait(running, timeout=self.stop_timeout)
            for task in late:
                task.cancel()
            if late:
                log.warning("pubsub.redis: handlers cancelled at stop, left pending", count=len(late))
                await asyncio.wait(late)
        await self._forget_consumer()
        with contextlib.suppress(redis_errors.RedisError):
            await self._reader_client.aclose()
        self._on_stop(self)

    async def _forget_consumer(self) -> None:
        """Delete this consumer from the group unless it holds pending entries (deleting it would
        drop them from the group's pending list, so nobody could reclaim them)."""
        try:
            async with asyncio.timeout(_CLEANUP_TIMEOUT):
                pending = await self._reader_client.xpending_range(
                    self.topic, self.group, min="-", max="+", count=1, consumername=self.consumer
                )
                if not pending:
                    await self._reader_client.xgroup_delconsumer(self.topic, self.group, self.consumer)
        except (redis_errors.RedisError, TimeoutError) as exc:
            log.debug("pubsub.redis: consumer left in its group", consumer=self.consumer, error=str(exc))
