"""bindings.kafka: Kafka as an input and an output binding, with Dapr's metadata, on the same
client code as pubsub.kafka (components/pubsub/kafka.py), so delivery is at least once the same way.

Metadata: every field of pubsub.kafka (``brokers``, ``consumerGroup``, ``clientID``, ``authType``
with its SASL and TLS fields, ``initialOffset``, ``maxMessageBytes``, ``consumeRetryInterval``,
``heartbeatInterval``, ``sessionTimeout``, ``fetchMaxWait``, ``autoCreateTopics``...), plus:

``topics``
    Comma-separated topics read as the input binding (``consumerGroup`` is then required); without
    it the binding is not read (a warning), as in Dapr.
``authRequired``
    The binding's older switch, still in Dapr's docs: ``true`` means ``authType: password``
    (SASL with ``saslUsername``/``saslPassword``) when ``authType`` is not given.
``publishTopic``
    The topic ``create`` publishes to (the output binding's only operation); request metadata
    ``partitionKey`` (or ``key``) is the record key, every other entry a record header.

Each record reaches the app with its headers and ``__key``, ``__topic``, ``__partition``,
``__offset`` and ``__timestamp`` as event metadata, one at a time per partition, in offset order.
A record the app refuses (non-2xx, after the inbound Resiliency policy gave up) is delivered again
after ``consumeRetryInterval``, and the records after it in its partition wait: the offset is
committed only once the app took it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import structlog
from pydantic import field_validator

from components.bindings.base import (
    CREATE,
    BindingError,
    Feature,
    InvokeRequest,
    InvokeResponse,
    ReadEvent,
    ReadHandler,
)
from components.errors import BackendError, MetadataError
from components.metadata import ComponentMetadata, decode, lookup, parse_bool
from components.pubsub.base import Consumer, Message, PublishRequest, SubscribeRequest
from components.pubsub.kafka import KafkaPubSub

log = structlog.get_logger(__name__)

_FEATURES = frozenset({Feature.INPUT_BINDING, Feature.OUTPUT_BINDING})
_OPERATIONS = (CREATE,)
_NO_GROUP = "l8-output-only"
"""The consumer id the pub/sub client needs when only publishing (no group is ever joined)."""


class KafkaBindingMetadata(ComponentMetadata):
    topics: list[str] = []
    publishTopic: str = ""
    consumerGroup: str = ""

    @field_validator("topics", mode="before")
    @classmethod
    def _topics(cls, value: object) -> list[str]:
        return [topic.strip() for topic in str(value).split(",") if topic.strip()]


class KafkaBinding:
    def __init__(self) -> None:
        self._kafka = KafkaPubSub()
        self._settings: KafkaBindingMetadata | None = None
        self._readers: set[_KafkaReader] = set()

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(KafkaBindingMetadata, metadata)
        if settings.topics and not settings.consumerGroup:
            raise MetadataError("consumerGroup", "is required with topics (the input binding's group)")
        client_metadata = dict(metadata)
        client_metadata.setdefault("consumerID", settings.consumerGroup or _NO_GROUP)
        if not lookup(metadata, "authType"):
            # The binding's older field, still in Dapr's docs: authRequired "true" is SASL.
            required = lookup(metadata, "authRequired") or "false"
            try:
                client_metadata["authType"] = "password" if parse_bool(required) else "none"
            except ValueError:
                raise MetadataError("authRequired", f"{required!r} is not a boolean") from None
        await self._kafka.init(client_metadata)
        self._settings = settings

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    def operations(self) -> Sequence[str]:
        return _OPERATIONS

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        settings = self._settings
        if settings is None:
            raise BackendError("kafka binding is not initialised or already closed")
        if not settings.publishTopic:
            raise BindingError("kafka binding: no publishTopic in the component's metadata")
        await self._kafka.publish(
            PublishRequest(settings.publishTopic, request.data, "application/octet-stream", request.metadata)
        )
        return None

    async def read(self, handler: ReadHandler) -> _KafkaReader:
        settings = self._settings
        if settings is None:
            raise BackendError("kafka binding is not initialised or already closed")
        if not settings.topics:
            log.warning("kafka binding: no topics defined, the input binding is not read")

        async def deliver(message: Message) -> None:
            await handler(ReadEvent(message.data, message.metadata))

        consumers: list[Consumer] = []
        try:
            for topic in settings.topics:
                consumers.append(
                    await self._kafka.subscribe(SubscribeRequest(topic, max_in_flight=1), deliver)
                )
        except BaseException:
            await asyncio.gather(*(consumer.stop() for consumer in consumers), return_exceptions=True)
            raise
        reader = _KafkaReader(consumers)
        self._readers.add(reader)
        return reader

    async def ping(self) -> None:
        """Health: the cluster's metadata, through the binding's publisher."""
        await self._kafka.ping()

    async def close(self) -> None:
        self._settings = None
        readers, self._readers = list(self._readers), set()
        for reader in readers:
            await reader.stop()
        await self._kafka.close()


class _KafkaReader:
    def __init__(self, consumers: list[Consumer]) -> None:
        self._consumers = consumers

    async def stop(self) -> None:
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(consumer.stop() for consumer in consumers), return_exceptions=True)
