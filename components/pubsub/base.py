"""The pub/sub contract, shared by every broker backend.

A backend moves opaque message bytes (the runtime has already built the CloudEvent) between
publishers and subscriptions; the runtime decides what a delivery means. Edge cases every backend
honours (tests/conformance/test_pubsub_conformance.py proves them):

* ``publish`` returns once the broker holds the message durably (as durably as the backend can:
  Redis after XADD, Kafka after acks=all, in-memory at once); a failure raises
  :class:`~components.errors.BackendError` and nothing is half-published.
* ``subscribe`` starts consuming in the background and returns at once with a :class:`Consumer`.
  Every message published to the topic *after* ``subscribe`` returned reaches the handler at
  least once (Redis and Kafka: also messages published while no consumer of the group was
  running, from where the group last stopped; a new group starts at the end of the topic).
* The handler returning normally means the message is done: the backend acknowledges it (XACK,
  offset commit) and never hands it out again. The handler raising means it is not done: the
  backend redelivers it by its own rules (Redis: reclaimed after ``processingTimeout``; Kafka: the
  same offset is retried with backoff, later offsets of that partition wait; in-memory: logged and
  dropped, as Dapr's in-memory broker does).
* At most ``SubscribeRequest.max_in_flight`` handler calls of one subscription run at once. With
  ``max_in_flight == 1`` messages of one partition (Kafka) or one stream (Redis, in-memory) reach
  the handler in publish order.
* Consumers of the same ``consumerID`` (Redis) / ``consumerGroup`` (Kafka) share the messages:
  each goes to one of them. Different groups each get every message.
* ``Consumer.stop()`` stops fetching, lets in-flight handler calls finish (up to its timeout,
  then cancels them; a cancelled message is not acknowledged) and returns; it is idempotent.
  ``close()`` stops every consumer of the component and releases its connections; idempotent.
* A backend that keeps nothing for a group with no running consumer (in-memory) makes its
  consumers a :class:`PausableConsumer`, so a pause (the app unhealthy) loses no message; the
  runtime stops and restarts the others' consumers, whose groups keep their place in the broker.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

_NO_METADATA: Mapping[str, str] = {}

PARTITION_KEY = "partitionKey"
"""Publish metadata naming the message key (Kafka partitioning; ignored where meaningless)."""


class Feature(enum.StrEnum):
    """Optional capabilities, reported in GET /v1.0/metadata under Dapr's names."""

    MESSAGE_TTL = "MESSAGE_TTL"
    """The broker expires messages itself; otherwise the runtime adds a CloudEvent ``expiration``."""
    SUBSCRIBE_WILDCARDS = "SUBSCRIBE_WILDCARDS"
    BULK_PUBLISH = "BULK_PUBSUB"


@dataclass(slots=True, frozen=True)
class PublishRequest:
    topic: str
    data: bytes
    """The bytes to store: a CloudEvent's JSON, or the raw body with ``rawPayload``."""
    content_type: str = "application/cloudevents+json"
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)
    """The request's ``metadata.*`` map; ``partitionKey`` selects the Kafka key."""


@dataclass(slots=True, frozen=True)
class Message:
    """One message as a subscription receives it."""

    topic: str
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)
    """Broker metadata (Kafka headers, Redis stream fields other than the data); delivered to the
    app as HTTP headers."""
    content_type: str = "application/cloudevents+json"
    id: str = ""
    """The broker's id of the message (stream entry id, ``partition-offset``), for logs."""


Handler = Callable[[Message], Awaitable[None]]
"""Returns: done, acknowledge. Raises: not done, the broker redelivers (see the module doc)."""


@dataclass(slots=True, frozen=True)
class SubscribeRequest:
    topic: str
    metadata: Mapping[str, str] = field(default_factory=lambda: _NO_METADATA)
    """The subscription's metadata (Dapr passes it to the broker's subscribe call)."""
    max_in_flight: int = 10
    """How many handler calls of this subscription may run at once; 1 keeps publish order."""


class Consumer(Protocol):
    """A running subscription of one topic."""

    async def stop(self) -> None: ...


@runtime_checkable
class PausableConsumer(Consumer, Protocol):
    """A consumer that can hold its messages without leaving its group."""

    async def pause(self) -> None:
        """No handler call starts until ``resume()``; messages arriving meanwhile wait for it, calls
        already running finish. Idempotent."""

    async def resume(self) -> None:
        """Hand out the waiting messages, in order, then the new ones. Idempotent."""


class PubSub(Protocol):
    async def init(self, metadata: Mapping[str, str]) -> None:
        """Decode metadata and connect. Raises MetadataError / ComponentInitError naming the field.
        The runtime has put ``consumerID`` (default: the app id) into ``metadata``."""

    def features(self) -> Collection[Feature]: ...

    async def publish(self, request: PublishRequest) -> None: ...

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> Consumer: ...

    async def close(self) -> None: ...


class BulkPublisher(Protocol):
    """Backends declaring ``Feature.BULK_PUBLISH`` (a native batch publish, e.g. Kafka) also
    implement this; the runtime publishes the others entry by entry, concurrently."""

    async def bulk_publish(
        self, topic: str, requests: Sequence[PublishRequest]
    ) -> Sequence[Exception | None]:
        """Publish every request; the result has one entry per request: None or its failure."""
        ...
