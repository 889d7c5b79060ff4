"""One message of a subscription on its way to the app, with daprd's rules (reference §4.5, §4.6).

Per message: read the CloudEvent (or wrap the bytes, ``rawPayload``), drop it if it has expired,
pick the path with the routing rules, deliver under the component's inbound retry policy (or hand
it to the subscription's bulk batcher). Then:

* SUCCESS: the handler returns (the backend acknowledges).
* DROP (the app said so, or 404), expired, no matching route: acknowledged; copied to the
  ``deadLetterTopic`` first when one is set.
* Failed for good (retries exhausted, unreadable event, a routing rule that fails): copied to the
  dead-letter topic and acknowledged when one is set; otherwise the handler raises
  :class:`DeliveryFailed` and the backend redelivers by its own rules.

A dead-letter copy is the original bytes and broker metadata, published on the same pub/sub; if
that publish fails the handler raises, so the message is not lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from components.pubsub.base import Message, PublishRequest
from mesh.resiliency import Policy, RetriableFailure
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

DEAD_LETTER_PUBLISH_TIMEOUT = 30.0
"""daprd's deadline for a dead-letter publish."""
_PROCESS_STATUS = {Outcome.SUCCESS: "success", Outcome.RETRY: "retry", Outcome.DROP: "drop"}
"""Dapr's ``process_status`` label of pubsub ingress metrics."""


class DeliveryFailed(Exception):
    """Raised to the backend: the message was not delivered and has no dead-letter topic (or the
    dead-letter publish failed); the broker redelivers it by its own rules."""


class MessageHandler:
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
