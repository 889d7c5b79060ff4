"""Streaming subscriptions (Dapr's ``SubscribeTopicEventsAlpha1``): the app opens a stream, names a
pub/sub and a topic, and gets the topic's events on it, answering each; no app port is involved.

A stream's subscription is an ordinary one of type ``STREAMING`` with daprd's single route ``/``,
run by a :class:`~services.pubsub.subscriber.Subscriber` of its own whose channel is the stream
(:class:`EventStream`): the component's consumer group and at-least-once rules, CloudEvent
reading (``rawPayload`` included), expiry, the component's inbound Resiliency policy, the
dead-letter topic and the delivery metrics and spans are the app port's, unchanged. The app's
``SUCCESS``/``RETRY``/``DROP`` reaches the subscriber as the JSON an HTTP app answers; an answer
with another status retries, as daprd's does. An event waits for its answer as long as it takes
(daprd gives it no deadline of its own): a Resiliency timeout bounds it.

As in daprd since 1.16, several streams of one sidecar may subscribe to the same pub/sub and topic:
each is a consumer of its own in the component's group, so they share the topic's messages as an
app's replicas do. When a stream ends (the client closes or cancels it, the sidecar stops), the
events it had not answered are given back to the broker (neither retried on it nor
dead-lettered): a durable broker (Redis, Kafka) hands them to the next consumer of the group.

The transport (routers/grpc/subscribe.py) takes each event with :meth:`EventStream.next_event`,
names the id its message carries with :meth:`EventStream.sent`, and hands each answer to
:meth:`EventStream.answer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
import structlog
from multidict import CIMultiDict, CIMultiDictProxy

from mesh.app_channel import AppResponse
from mesh.resiliency import Resiliency
from observability.metrics import PubSubMetrics
from services import errors
from services.pubsub.delivery import ChannelClosed
from services.pubsub.handles import PubSubHandle
from services.pubsub.subscriber import Subscriber, SubscriptionRefused
from services.pubsub.subscriptions import Rule, Subscription, SubscriptionType

if TYPE_CHECKING:
    from observability.tracing.tracer import Tracer

log = structlog.get_logger(__name__)

SWITCH_INTERVAL = 0.0002
"""The interpreter's switch interval while streams are open (wasm/engine.py's, for the same reason):
grpcio's completion of each write reaches the loop from its poller thread, which waits for the GIL
while the loop runs Python; at the default 5 ms a stream's writes, one at a time, queued behind it."""
STREAM_ROUTE = "/"
"""daprd's one route of a streaming subscription (``Routes{Default: "/"}``), the events' ``path``."""
_JSON: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


@dataclass(slots=True, eq=False)
class StreamedEvent:
    """One event on its way to the stream's app."""

    body: bytes
    """The CloudEvent JSON, as an HTTP app would get it."""
    pubsub: str
    topic: str
    """The subscription's topic (daprd's ``TopicEventRequest.topic``)."""
    path: str
    answer: asyncio.Future[str] = field(repr=False)
    """The app's status name once it answers."""
    id: str | None = None
    """The id its message carries, once sent."""


class EventStream:
    """One open stream: the channel its subscription delivers through."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self._outbox: asyncio.Queue[StreamedEvent | None] = asyncio.Queue()
        self._waiting: dict[str, deque[StreamedEvent]] = {}
        self._closed: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed is not None

    # -- the subscriber's side (EventChannel) -----------------------------------------------------

    async def deliver_event(
        self, path: str, body: bytes, headers: Mapping[str, str], topic: str = ""
    ) -> AppResponse:
        if self._closed is not None:
            raise ChannelClosed(self._closed)
        subscription = self.subscription
        event = StreamedEvent(
            body,
            subscription.pubsub,
            topic or subscription.topic,
            path,
            asyncio.get_running_loop().create_future(),
        )
        self._outbox.put_nowait(event)
        try:
            status = await event.answer
        finally:
            self._forget(event)
        return AppResponse(200, _JSON, orjson.dumps({"status": status}))

    async def deliver_bulk(self, path: str, body: bytes, headers: Mapping[str, str]) -> AppResponse:
        # A streaming subscription has no bulk mode (daprd's streaming postman refuses it too).
        raise ChannelClosed("a streaming subscription does not deliver bulk events")

    # -- the transport's side ---------------------------------------------------------------------

    async def next_event(self) -> StreamedEvent | None:
        """The next event to send; None once the stream is closed."""
        while True:
            event = await self._outbox.get()
            if event is None or not event.answer.done():  # a delivery given up while queued
                return event

    def sent(self, event: StreamedEvent, event_id: str) -> None:
        """``event`` goes out as the message with ``event_id``; its answer will name that id."""
        event.id = event_id
        self._waiting.setdefault(event_id, deque()).append(event)

    def unsendable(self, event: StreamedEvent, reason: str) -> None:
        """``event`` cannot be put in a message: dropped, as an app that cannot read it (the gRPC
        app callback's rule, routers/grpc/app_callback.py)."""
        log.error(
            "event not sent on the subscription stream", pubsub=event.pubsub, topic=event.topic, error=reason
        )
        if not event.answer.done():
            event.answer.set_result("DROP")

    def answer(self, event_id: str, status: str) -> None:
        """The app's answer (a status name) to the event sent with ``event_id``; the oldest one
        waiting with that id takes it."""
        waiting = self._waiting.get(event_id)
        while waiting:
            event = waiting.popleft()
            if not event.answer.done():
                event.answer.set_result(status)
                break
        else:
            log.error("no event waiting for this answer", id=event_id, topic=self.subscription.topic)
        if waiting is not None and not waiting:
            self._waiting.pop(event_id, None)

    def close(self, reason: str) -> None:
        """End the stream: every event sent or queued and not answered goes back to the broker,
        and :meth:`next_event` answers None. Idempotent."""
        if self._closed is not None:
            return
        self._closed = reason
        events: list[StreamedEvent] = [e for q in self._waiting.values() for e in q]
        self._waiting.clear()
        while not self._outbox.empty():
            queued = self._outbox.get_nowait()
            if queued is not None:
                events.append(queued)
        for event in events:
            if not event.answer.done():
                event.answer.set_exception(ChannelClosed(reason))
        self._outbox.put_nowait(None)

    def _forget(self, event: StreamedEvent) -> None:
        if event.id is None:
            return
        waiting = self._waiting.get(event.id)
        if waiting is not None and event in waiting:
            waiting.remove(event)
            if not waiting:
                del self._waiting[event.id]


def with_streams(known: Sequence[Subscription], streamed: Sequence[Subscription]) -> list[Subscription]:
    """The metadata API's list, as daprd's ``ListSubscriptions`` builds it: a streaming
    subscription takes the place of the others' entry for its (pubsub, topic), else is added."""
    listed = list(known)
    at = {subscription.key: index for index, subscription in enumerate(listed)}
    for subscription in streamed:
        index = at.get(subscription.key)
        if index is None:
            at[subscription.key] = len(listed)
            listed.append(subscription)
        else:
            listed[index] = subscription
    return listed


class StreamingSubscriptions:
    """The sidecar's streaming subscriptions: opens one per stream, lists the open ones for the
    metadata API, ends them all at shutdown."""

    def __init__(self, pubsubs: Mapping[str, PubSubHandle], app_id: str, resiliency: Resiliency) -> None:
        self._pubsubs = pubsubs
        self._app_id = app_id
        self._resiliency = resiliency
        self._open: list[EventStream] = []
        self._closed = False
        self._switch_interval: tuple[float, float] | None = None
        """(the interval before, the one set) once a stream lowered it."""
        self.metrics: PubSubMetrics | None = None
        self.tracer: Tracer | None = None

    def subscriptions(self) -> list[Subscription]:
        """The open streams' subscriptions, one per (pubsub, topic), in the order they opened."""
        found: dict[tuple[str, str], Subscription] = {}
        for stream in self._open:
            found.setdefault(stream.subscription.key, stream.subscription)
        return list(found.values())

    @contextlib.asynccontextmanager
    async def open(
        self, pubsub: str, topic: str, metadata: Mapping[str, str], dead_letter_topic: str
    ) -> AsyncIterator[EventStream]:
        """Subscribe a new stream (daprd's checks and errors); consuming stops when the block
        ends, after the stream's unanswered events were given back."""
        if not pubsub:
            raise errors.go_error("pubsubName is required")
        if not topic:
            raise errors.go_error("topic is required")
        if self._closed:
            raise errors.go_error("subscriber is closed")
        handle = self._pubsubs.get(pubsub)
        if handle is None:
            raise errors.pubsub_not_found(pubsub, {})
        subscription = Subscription(
            pubsub,
            topic,
            (Rule("", STREAM_ROUTE),),
            SubscriptionType.STREAMING,
            dict(metadata),
            dead_letter_topic,
        )
        stream = EventStream(subscription)
        subscriber = Subscriber({pubsub: handle}, stream, self._app_id, self._resiliency)
        subscriber.metrics = self.metrics
        subscriber.tracer = self.tracer
        try:
            await subscriber.add(subscription)
        except SubscriptionRefused as exc:
            raise errors.go_error(f"failed to create subscription for {pubsub}: {exc}") from None
        self._open.append(stream)
        self._lower_switch_interval()
        log.info("streaming subscription opened", pubsub=pubsub, topic=topic)
        try:
            yield stream
        finally:
            self._open.remove(stream)
            stream.close("the subscription stream ended")
            await subscriber.aclose()
            log.info("streaming subscription closed", pubsub=pubsub, topic=topic)

    async def aclose(self) -> None:
        """Refuse new streams and end the open ones (their transports then finish)."""
        self._closed = True
        for stream in list(self._open):
            stream.close("the sidecar is shutting down")
        if self._switch_interval is not None:
            before, lowered = self._switch_interval
            self._switch_interval = None
            if sys.getswitchinterval() == lowered:  # unless someone else changed it since
                sys.setswitchinterval(before)

    def _lower_switch_interval(self) -> None:
        """Lowered process-wide with the first stream, until the sidecar stops (as the wasm engine
        does for its worker threads): the interval only matters while another thread waits for the
        GIL; the wasm engine's A/B (bench/switch_interval_ab.py) measured no cost to the rest."""
        if self._switch_interval is None:
            before = sys.getswitchinterval()
            lowered = min(before, SWITCH_INTERVAL)
            sys.setswitchinterval(lowered)
            self._switch_interval = (before, sys.getswitchinterval())
