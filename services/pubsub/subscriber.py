"""The subscriber: keeps one broker consumer per subscription and turns each message into a
delivery to the app, with daprd's rules (reference §4.5, §4.6).

Per message: read the CloudEvent (or wrap the bytes, ``rawPayload``), drop it if it has expired,
pick the path with the routing rules, deliver under the component's inbound retry policy. Then:

* SUCCESS: the handler returns (the backend acknowledges).
* DROP (the app said so, or 404), expired, no matching route: acknowledged; copied to the
  ``deadLetterTopic`` first when one is set.
* Failed for good (retries exhausted, unreadable event, a routing rule that fails): copied to the
  dead-letter topic and acknowledged when one is set; otherwise the handler raises
  :class:`DeliveryFailed` and the backend redelivers by its own rules.

While the app is unhealthy (mesh/app_health.py) the subscriber is paused, as daprd's: consumers
stop pulling and the messages wait in the broker (a :class:`PausableConsumer` holds them in the
group; the others' consumers are stopped, their group keeping its place) until ``resume()``.

A dead-letter copy is the original bytes and broker metadata, published on the same pub/sub; if
that publish fails the handler raises, so the message is not lost.

How many deliveries of one subscription run at once (``SubscribeRequest.max_in_flight``):
subscription metadata ``maxConcurrency``, else the component's ``concurrency`` metadata, else
:data:`DEFAULT_MAX_IN_FLIGHT` (10, the default ``concurrency`` of Dapr's Redis pub/sub); 1 keeps
publish order per partition/stream. A bulk subscription gets at least ``maxMessagesCount``, so a
batch can fill.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from components.errors import MetadataError
from components.metadata import lookup
from components.pubsub.base import (
    Consumer,
    Message,
    PausableConsumer,
    PublishRequest,
    SubscribeRequest,
)
from mesh.resiliency import Policy, Resiliency, RetriableFailure
from observability.metrics import PubSubMetrics
from services.pubsub.bulk_subscribe import BulkBatcher, BulkEntry
from services.pubsub.delivery import (
    CLOUDEVENTS_CONTENT_TYPE,
    ChannelClosed,
    DeliveryResult,
    EventChannel,
    EventError,
    Outcome,
    deliver,
    delivery_headers,
    is_expired,
    parse_cloud_event,
    raw_envelope,
    raw_payload,
)
from services.pubsub.handles import PubSubHandle
from services.pubsub.routing import RouteTable, RuleError
from services.pubsub.subscriptions import Subscription, route_path
from services.trace_context import TraceContext

if TYPE_CHECKING:
    from observability.tracing.tracer import Tracer

log = structlog.get_logger(__name__)

DEFAULT_MAX_IN_FLIGHT = 10
DEAD_LETTER_PUBLISH_TIMEOUT = 30.0
"""daprd's deadline for a dead-letter publish."""


_PROCESS_STATUS = {Outcome.SUCCESS: "success", Outcome.RETRY: "retry", Outcome.DROP: "drop"}
"""Dapr's ``process_status`` label of pubsub ingress metrics."""


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


class DeliveryFailed(Exception):
    """Raised to the backend: the message was not delivered and has no dead-letter topic (or the
    dead-letter publish failed); the broker redelivers it by its own rules."""


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
        delivery = _Delivery(self._channel, handle, subscription, routes, policy, batcher)
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


class _Delivery:
    """The handler given to the backend for one subscription."""

    def __init__(
        self,
        channel: EventChannel,
        handle: PubSubHandle,
        subscription: Subscription,
        routes: RouteTable,
        policy: Policy,
        batcher: BulkBatcher | None,
    ) -> None:
        self._channel = channel
        self._handle = handle
        self._subscription = subscription
        self._routes = routes
        self._policy = policy
        self._batcher = batcher
        self._raw = raw_payload(subscription.metadata)
        self._dead_letter_topic = subscription.dead_letter_topic
        self.metrics: PubSubMetrics | None = None
        self.tracer: Tracer | None = None

    async def handle(self, message: Message) -> None:
        pubsub = self._handle.name
        event: dict[str, Any]
        body: bytes
        if self._raw:
            event = raw_envelope(message, pubsub)
            body = orjson.dumps(event)
        else:
            try:
                event = parse_cloud_event(message.data)
            except EventError as exc:
                await self._failed(message, str(exc))
                return
            body = message.data
        if is_expired(event):
            await self._dropped(message, f"event expired at {event.get('expiration')}", event)
            return
        try:
            path = self._routes.path_for(event)
        except RuleError as exc:
            await self._failed(message, str(exc), event)
            return
        if path is None:
            await self._dropped(message, "no route matches the event", event, level="debug")
            return
        path = route_path(path)
        started = time.perf_counter()
        if self._batcher is not None:
            entry = BulkEntry(path, event, message.metadata, raw=message.data if self._raw else None)
            result = await self._batcher.deliver(entry)
        else:
            try:
                result = await self._deliver_one(message, path, body, event)
            except ChannelClosed as exc:
                # The stream that took the event ended unanswered: neither a retry nor a dead
                # letter, the broker hands it out again (to the next stream of the group).
                raise DeliveryFailed(
                    f"message {message.id or '?'} on {self._handle.name}/{message.topic} not "
                    f"acknowledged: {exc}"
                ) from None
        if self.metrics is not None:
            outcome = _PROCESS_STATUS[result.outcome]
            seconds = time.perf_counter() - started
            self.metrics.delivered(self._handle.name, self._subscription.topic, outcome, outcome, seconds)
        if result.outcome is Outcome.SUCCESS:
            return
        if result.outcome is Outcome.DROP:
            await self._dropped(message, result.detail, event, path=path)
            return
        await self._failed(message, result.detail, event, path=path)

    async def _deliver_one(
        self, message: Message, path: str, body: bytes, event: Mapping[str, Any]
    ) -> DeliveryResult:
        headers = delivery_headers(message.metadata, self._handle.name, event, CLOUDEVENTS_CONTENT_TYPE)
        tracer = self.tracer
        if tracer is None:
            return await self._attempts(path, body, headers)
        # daprd's delivery span (``StartInternalCallbackSpan``): ``pubsub/{topic}``, a CLIENT span
        # under the CloudEvent's traceparent, with ``ConstructSubscriptionSpanAttributes`` and the
        # app's answer as its status; the app's request carries it.
        topic = self._subscription.topic
        attributes = {"messaging.system": "pubsub", "messaging.destination.name": topic}
        parent = (_text(event.get("traceparent") or event.get("traceid")), _text(event.get("tracestate")))
        with tracer.span(f"pubsub/{topic}", "client", attributes, parent, http_status=True) as ids:
            headers.pop("tracestate", None)
            headers.update(TraceContext(*ids).headers())
            result = await self._attempts(path, body, headers)
            tracer.answered(result.status or 0)
            return result

    async def _attempts(self, path: str, body: bytes, headers: dict[str, str]) -> DeliveryResult:
        last: list[DeliveryResult] = []

        async def attempt() -> DeliveryResult:
            result = await deliver(self._channel, path, body, headers, self._subscription.topic)
            if result.outcome is Outcome.RETRY:
                last.append(result)
                raise RetriableFailure(result.detail, result.status)
            return result

        try:
            return await self._policy.run(attempt, _open_channel)
        except ChannelClosed:
            raise
        except RetriableFailure:
            return last[-1]
        except Exception as exc:  # a policy timeout, an open circuit breaker
            return DeliveryResult(Outcome.RETRY, None, f"{type(exc).__name__}: {exc}".rstrip(": "))

    # -- the ends of a message -------------------------------------------------------------------

    async def _dropped(
        self,
        message: Message,
        reason: str,
        event: Mapping[str, Any],
        *,
        path: str | None = None,
        level: str = "warning",
    ) -> None:
        """Acknowledged without delivery: copied to the dead-letter topic if one is set."""
        fields = self._fields(message, event, path)
        if self._dead_letter_topic:
            await self._dead_letter(message, reason, fields)
            getattr(log, level)("message dropped, sent to the dead-letter topic", reason=reason, **fields)
        else:
            getattr(log, level)("message dropped", reason=reason, **fields)

    async def _failed(
        self,
        message: Message,
        reason: str,
        event: Mapping[str, Any] | None = None,
        *,
        path: str | None = None,
    ) -> None:
        """Not delivered: the dead-letter topic takes it, else the broker redelivers it."""
        fields = self._fields(message, event, path)
        if not self._dead_letter_topic:
            raise DeliveryFailed(
                f"delivery of message {message.id or fields.get('event_id') or '?'} on "
                f"{self._handle.name}/{message.topic} failed: {reason}"
            )
        await self._dead_letter(message, reason, fields)
        log.warning("delivery failed, message sent to the dead-letter topic", reason=reason, **fields)

    async def _dead_letter(self, message: Message, reason: str, fields: Mapping[str, Any]) -> None:
        request = PublishRequest(
            topic=self._dead_letter_topic,
            data=message.data,
            content_type=message.content_type,
            metadata=message.metadata,
        )
        try:
            async with asyncio.timeout(DEAD_LETTER_PUBLISH_TIMEOUT):
                await self._handle.outbound.call_non_idempotent(self._handle.instance.publish, request)
        except Exception as exc:
            raise DeliveryFailed(
                f"message {message.id or '?'} on {self._handle.name}/{message.topic} ({reason}) "
                f"could not be sent to dead-letter topic {self._dead_letter_topic!r}: {exc}"
            ) from exc

    def _fields(self, message: Message, event: Mapping[str, Any] | None, path: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"pubsub": self._handle.name, "topic": message.topic}
        if message.id:
            fields["message_id"] = message.id
        if event is not None and "id" in event:
            fields["event_id"] = event.get("id")
        if path is not None:
            fields["path"] = path
        if self._dead_letter_topic:
            fields["dead_letter_topic"] = self._dead_letter_topic
        return fields


def _open_channel(failure: Exception) -> bool:
    """A retry of the policy needs the channel still open."""
    return not isinstance(failure, ChannelClosed)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
