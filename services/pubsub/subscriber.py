"""The subscriber: keeps one broker consumer per subscription, each handing its messages to a
:class:`~services.pubsub.message_handler.MessageHandler` (reference §4.5, §4.6).

While the app is unhealthy (mesh/app_health.py) the subscriber is paused, as daprd's: consumers
stop pulling and the messages wait in the broker (a :class:`PausableConsumer` holds them in the
group; the others' consumers are stopped, their group keeping its place) until ``resume()``.

How many deliveries of one subscription run at once (``SubscribeRequest.max_in_flight``):
subscription metadata ``maxConcurrency``, else the component's ``concurrency`` metadata, else
:data:`DEFAULT_MAX_IN_FLIGHT` (10, the default ``concurrency`` of Dapr's Redis pub/sub); 1 keeps
publish order per partition/stream. A bulk subscription gets at least ``maxMessagesCount``, so a
batch can fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from components.errors import MetadataError
from components.metadata import lookup
from components.pubsub.base import (
    Consumer,
    PausableConsumer,
    SubscribeRequest,
)
from mesh.resiliency import Resiliency
from observability.metrics import PubSubMetrics
from services.pubsub.bulk_subscribe import BulkBatcher
from services.pubsub.delivery import (
    EventChannel,
)
from services.pubsub.handles import PubSubHandle
from services.pubsub.message_handler import MessageHandler
from services.pubsub.routing import RouteTable, RuleError
from services.pubsub.subscriptions import Subscription

if TYPE_CHECKING:
    from observability.tracing.tracer import Tracer

log = structlog.get_logger(__name__)

DEFAULT_MAX_IN_FLIGHT = 10


class SubscriptionRefused(Exception):
    """A subscription could not start: ``str()`` says why in daprd's words; ``event`` is the log
    line of a skipped app subscription."""

    def __init__(self, reason: str, event: str, level: str = "warning", **fields: str) -> None:
        super().__init__(reason)
        self.event = event
        self.level = level
        self.fields = fields

    def log(self, subscription: Subscription) -> None:
        getattr(log, self.level)(
            self.event, pubsub=subscription.pubsub, topic=subscription.topic, **self.fields
        )


@dataclass(slots=True)
class _Running:
    subscription: Subscription
    consumer: Consumer
    batcher: BulkBatcher | None
    paused: bool = False


class Subscriber:
    def __init__(
        self,
        pubsubs: Mapping[str, PubSubHandle],
        channel: EventChannel,
        app_id: str,
        resiliency: Resiliency,
        *,
        default_max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._pubsubs = pubsubs
        self._channel = channel
        self._app_id = app_id
        self._resiliency = resiliency
        self._default_max_in_flight = default_max_in_flight
        self._running: dict[tuple[str, str], _Running] = {}
        self.metrics: PubSubMetrics | None = None
        self.tracer: Tracer | None = None
        """Set by the runtime when metrics are on: each delivery's outcome and latency."""
        self._lock = asyncio.Lock()
        self._closed = False
        self._wanted: list[Subscription] = []
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def active(self) -> list[Subscription]:
        """The subscriptions with a consumer (running, or paused while the app is unhealthy), in
        the order they were started."""
        return [running.subscription for running in self._running.values()]

    async def apply(self, subscriptions: Sequence[Subscription]) -> None:
        """Make the running consumers exactly ``subscriptions``: stop the removed and the changed
        ones, start the new and the changed ones, leave the others running. Subscriptions naming
        an unknown pub/sub, a topic this app may not subscribe to, a bad routing rule or bad
        retry metadata are skipped with a log line; a later duplicate of a (pubsub, topic) too."""
        async with self._lock:
            if self._closed:
                return
            self._wanted = list(subscriptions)
            if not self._paused:
                await self._reconcile(subscriptions)

    async def pause(self) -> None:
        """Stop pulling messages for the app until ``resume()``; in-flight deliveries finish."""
        async with self._lock:
            if self._closed or self._paused:
                return
            self._paused = True
            for key, running in list(self._running.items()):
                if isinstance(running.consumer, PausableConsumer):
                    await running.consumer.pause()
                    running.paused = True
                else:
                    del self._running[key]
                    await self._stop(running)

    async def resume(self) -> None:
        """Pull again: paused consumers go on, stopped ones start where their group stopped."""
        async with self._lock:
            if self._closed or not self._paused:
                return
            self._paused = False
            for running in self._running.values():
                if running.paused:
                    assert isinstance(running.consumer, PausableConsumer)
                    await running.consumer.resume()
                    running.paused = False
            await self._reconcile(self._wanted)

    async def _reconcile(self, subscriptions: Sequence[Subscription]) -> None:
        wanted: dict[tuple[str, str], Subscription] = {}
        for subscription in subscriptions:
            if subscription.key in wanted:
                log.warning(
                    "duplicate subscription ignored",
                    pubsub=subscription.pubsub,
                    topic=subscription.topic,
                )
                continue
            wanted[subscription.key] = subscription
        for key, running in list(self._running.items()):
            if wanted.get(key) != running.subscription:
                del self._running[key]
                await self._stop(running)
        for key, subscription in wanted.items():
            if key in self._running:
                continue
            try:
                self._running[key] = await self._start(subscription)
            except SubscriptionRefused as exc:
                exc.log(subscription)

    async def add(self, subscription: Subscription) -> None:
        """Start consuming ``subscription`` at once, beside the applied ones (a streaming
        subscription's own subscriber holds just this one); raises :class:`SubscriptionRefused`
        when it cannot start. ``aclose()`` stops it."""
        async with self._lock:
            if self._closed:
                raise SubscriptionRefused("subscriber is closed", "subscription refused: closed")
            if subscription.key in self._running:
                raise SubscriptionRefused(
                    f"already subscribed to pubsub {subscription.pubsub!r} topic {subscription.topic!r}",
                    "duplicate subscription ignored",
                )
            self._running[subscription.key] = await self._start(subscription)

    async def aclose(self) -> None:
        """Stop every consumer; idempotent."""
        async with self._lock:
            self._closed = True
            running, self._running = list(self._running.values()), {}
            for item in reversed(running):
                await self._stop(item)

    # -- life of one subscription ------------------------------------------------------------------

    async def _start(self, subscription: Subscription) -> _Running:
        """Start the consumer of ``subscription``; raises :class:`SubscriptionRefused` with the
        reason when it cannot start."""
        pubsub, topic = subscription.pubsub, subscription.topic
        handle = self._pubsubs.get(pubsub)
        if handle is None:
            raise SubscriptionRefused(
                f"pubsub '{pubsub}' not found", "subscription skipped: no such pub/sub component"
            )
        if not handle.scopes.can_subscribe(self._app_id, topic):
            raise SubscriptionRefused(
                f"subscription to topic '{topic}' on pubsub '{pubsub}' is not allowed",
                "subscription skipped: the component's scopes do not let this app subscribe to the topic",
                app_id=self._app_id,
            )
        try:
            routes = RouteTable.compile(subscription.rules)
        except RuleError as exc:
            raise SubscriptionRefused(
                str(exc), "subscription skipped: bad routing rule", "error", error=str(exc)
            ) from None
        try:
            policy = self._resiliency.component_inbound(pubsub, handle.metadata)
        except MetadataError as exc:
            raise SubscriptionRefused(
                str(exc), "subscription skipped: bad retry metadata", "error", error=str(exc)
            ) from None
        max_in_flight = self._max_in_flight(subscription, handle)
        batcher = None
        if subscription.bulk.enabled:
            batcher = BulkBatcher(
                self._channel,
                pubsub=pubsub,
                topic=topic,
                max_messages=subscription.bulk.max_messages_count,
                max_await=subscription.bulk.max_await_duration_ms / 1000,
                policy=policy,
            )
        delivery = MessageHandler(self._channel, handle, subscription, routes, policy, batcher)
        delivery.metrics = self.metrics
        delivery.tracer = self.tracer
        request = SubscribeRequest(topic=topic, metadata=subscription.metadata, max_in_flight=max_in_flight)
        try:
            consumer = await handle.instance.subscribe(request, delivery.handle)
        except Exception as exc:
            raise SubscriptionRefused(
                f"failed to subscribe to topic {topic}: {exc}",
                "subscription failed to start",
                "error",
                error=str(exc),
            ) from exc
        log.info(
            "subscribed",
            pubsub=pubsub,
            topic=topic,
            routes=[path for _, path in routes.rules],
            dead_letter_topic=subscription.dead_letter_topic or None,
            bulk=subscription.bulk.enabled,
            max_in_flight=max_in_flight,
            type=str(subscription.type),
        )
        return _Running(subscription, consumer, batcher)

    async def _stop(self, running: _Running) -> None:
        subscription = running.subscription
        if running.batcher is not None:
            running.batcher.drain()
        try:
            await running.consumer.stop()
        except Exception as exc:
            log.error(
                "consumer stop failed", pubsub=subscription.pubsub, topic=subscription.topic, error=str(exc)
            )
        if running.batcher is not None:
            await running.batcher.aclose()
        log.info("unsubscribed", pubsub=subscription.pubsub, topic=subscription.topic)

    def _max_in_flight(self, subscription: Subscription, handle: PubSubHandle) -> int:
        value = self._default_max_in_flight
        for source, name in ((subscription.metadata, "maxConcurrency"), (handle.metadata, "concurrency")):
            text = lookup(source, name)
            if text is None or not text.strip():
                continue
            try:
                value = int(text)
                if value < 1:
                    raise ValueError
            except ValueError:
                log.warning(
                    "ignoring concurrency setting: not a positive integer",
                    pubsub=subscription.pubsub,
                    topic=subscription.topic,
                    field=name,
                    value=text,
                    default=self._default_max_in_flight,
                )
                value = self._default_max_in_flight
                continue
            break
        if subscription.bulk.enabled:
            value = max(value, subscription.bulk.max_messages_count)
        return value
