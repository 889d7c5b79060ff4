"""pubsub.kafka: Apache Kafka (or any broker speaking its protocol) through aiokafka, with Dapr's
metadata names so a component file written for Dapr works unchanged.

Metadata (Dapr's names; unknown fields, such as ``version``, are ignored):

``brokers`` (required)
    Comma-separated ``host:port`` bootstrap list.
``consumerGroup``
    The consumer group of every subscription; default ``consumerID``, which the runtime sets to the
    app id, so replicas of one app share the messages and different apps each get all of them.
``clientID``
    Sent to the broker for its logs and quotas; default ``l8``.
``authType``
    ``none`` (default; Dapr requires the field, l8 does not) or ``password``: SASL with
    ``saslUsername``, ``saslPassword`` and ``saslMechanism`` (``SHA-256`` or ``SHA-512`` for SCRAM,
    anything else PLAIN), over TLS unless ``disableTls`` is true (``caCert``, a PEM, and
    ``skipVerify`` shape the TLS check). Dapr's other types (mtls, oidc, awsiam, certificate) are
    refused at start-up.
``initialOffset``
    Where a consumer group without committed offsets starts: ``newest`` (default; the end of the
    topic when ``subscribe`` was called, so nothing published after it is missed while the group
    is still joining) or ``oldest``.
``maxMessageBytes``
    The largest message the producer sends (aiokafka's default, 1 MiB, when unset).
``consumeRetryInterval``
    Wait before a failed delivery is retried (default ``100ms``; a bare number is milliseconds, as
    in Dapr).
``heartbeatInterval``, ``sessionTimeout``
    Consumer group liveness (defaults ``3s`` and ``10s``, as in Dapr). A new member's join takes
    about half the session timeout on some brokers, so tests lower both.
``fetchMaxWait``
    How long the broker may hold a fetch that has no new messages (default ``100ms``; Kafka
    answers as soon as messages arrive, some Kafka-protocol brokers only when this runs out, so
    it bounds delivery latency there; aiokafka's own default is 500ms).
``autoCreateTopics``
    Create a topic on its first publish or subscribe (default ``true``) with ``partitionCount``
    partitions (default 1) and ``replicationFactor`` replicas (default 1); an existing topic is
    left as it is. With ``false`` the broker's own policy applies.
``dialTimeout``
    How long start-up may take to reach the brokers (default ``3s``, inside the runtime's
    ``spec.initTimeout`` of 5 s).

Publishing waits for acks=all, with idempotence when the broker grants it (a broker that refuses
InitProducerId gets a plain acks=all producer and a warning). The key is the publish metadata
``partitionKey`` (``key`` and ``__key`` also accepted); every other entry becomes a header. A
subscription delivers headers plus ``__key``, ``__topic``, ``__partition``, ``__offset`` and
``__timestamp`` as message metadata; see :mod:`components.pubsub.kafka_consumer` for delivery,
retries and offset commits.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context
from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from components.errors import BackendError, ComponentInitError
from components.metadata import ComponentMetadata, Duration, GoBool, decode, parse_duration
from components.pubsub.base import PARTITION_KEY, Feature, Handler, PublishRequest, SubscribeRequest
from components.pubsub.kafka_batches import PartitionBatches, Record
from components.pubsub.kafka_consumer import KafkaSubscription, StartOffsets, finish_within

log = structlog.get_logger(__name__)

_FEATURES = frozenset({Feature.BULK_PUBLISH})
_KEY_FIELDS = (PARTITION_KEY, "key", "__key")
_KEY_FIELDS_LOWER = frozenset(name.lower() for name in _KEY_FIELDS)
_AUTH_TYPES = ("none", "password")
DEFAULT_MAX_REQUEST_SIZE = 1_048_576
"""aiokafka's max_request_size, the largest record published when maxMessageBytes is unset."""
_CLOSE_TIMEOUT = 5.0
"""Deadline of closing one client (the producer flushes what is still unsent; acks=all), after
which it is abandoned with a warning: closing never hangs the runtime's shutdown."""
# Brokers that cannot grant idempotence answer InitProducerId with one of these.
_NO_IDEMPOTENCE = (
    kafka_errors.UnknownError,
    kafka_errors.UnsupportedVersionError,
    kafka_errors.ClusterAuthorizationFailedError,
)


def _custom_error(reason: str) -> PydanticCustomError:
    return PydanticCustomError("value_error", "{reason}", {"reason": reason})


def _retry_interval(value: object) -> timedelta:
    # Dapr reads a bare number as milliseconds here, unlike its other durations.
    text = str(value).strip()
    if text.isdigit():
        return timedelta(milliseconds=int(text))
    return parse_duration(text)


class KafkaMetadata(ComponentMetadata):
    brokers: list[str]
    consumerGroup: str | None = None
    consumerID: str | None = None
    clientID: str = "l8"
    authType: str = "none"
    saslUsername: str | None = None
    saslPassword: str | None = None
    saslMechanism: str = ""
    disableTls: GoBool = False
    skipVerify: GoBool = False
    caCert: str | None = None
    initialOffset: Literal["newest", "oldest"] = "newest"
    maxMessageBytes: int | None = Field(default=None, ge=1)
    consumeRetryInterval: timedelta = timedelta(milliseconds=100)
    heartbeatInterval: Duration = timedelta(seconds=3)
    fetchMaxWait: Duration = timedelta(milliseconds=100)
    sessionTimeout: Duration = timedelta(seconds=10)
    autoCreateTopics: GoBool = True
    partitionCount: int = Field(default=1, ge=1)
    replicationFactor: int = Field(default=1, ge=1)
    dialTimeout: Duration = timedelta(seconds=3)

    @field_validator("brokers", mode="before")
    @classmethod
    def _broker_list(cls, value: object) -> list[str]:
        brokers = [part.strip() for part in str(value).split(",") if part.strip()]
        if not brokers:
            raise _custom_error("names no broker (expected host:port[,host:port...])")
        for broker in brokers:
            host, colon, port = broker.rpartition(":")
            if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise _custom_error(f"{broker!r} is not of the form host:port")
        return brokers

    @field_validator("initialOffset", "authType", mode="before")
    @classmethod
    def _lower(cls, value: object) -> str:
        return str(value).strip().lower()

    @field_validator("authType")
    @classmethod
    def _auth_type(cls, value: str) -> str:
        if value not in _AUTH_TYPES:
            raise _custom_error(f"{value!r} is not supported (supported: {', '.join(_AUTH_TYPES)})")
        return value

    @field_validator("consumeRetryInterval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> timedelta:
        try:
            return _retry_interval(value)
        except ValueError as exc:
            raise _custom_error(str(exc)) from None

    @model_validator(mode="after")
    def _credentials(self) -> KafkaMetadata:
        if self.authType == "password" and not (self.saslUsername and self.saslPassword):
            field = "saslUsername" if not self.saslUsername else "saslPassword"
            raise _custom_error(f"{field} is required with authType 'password'")
        if not (self.consumerGroup or self.consumerID):
            raise _custom_error("consumerGroup is required when consumerID is not set")
        if self.heartbeatInterval >= self.sessionTimeout:
            raise _custom_error("heartbeatInterval must be shorter than sessionTimeout")
        return self

    @property
    def group(self) -> str:
        return self.consumerGroup or self.consumerID or ""

    def connection_options(self) -> dict[str, Any]:
        """Options shared by the producer, the consumers and the admin client."""
        options: dict[str, Any] = {"bootstrap_servers": self.brokers, "client_id": self.clientID}
        if self.authType == "password":
            mechanism = {"SHA-256": "SCRAM-SHA-256", "SHA-512": "SCRAM-SHA-512"}.get(
                self.saslMechanism, "PLAIN"
            )
            options.update(
                sasl_mechanism=mechanism,
                sasl_plain_username=self.saslUsername,
                sasl_plain_password=self.saslPassword,
                security_protocol="SASL_PLAINTEXT" if self.disableTls else "SASL_SSL",
            )
            if not self.disableTls:
                options["ssl_context"] = self._ssl_context()
        return options

    def _ssl_context(self) -> ssl.SSLContext:
        context: ssl.SSLContext = create_ssl_context(cadata=self.caCert or None)
        if self.skipVerify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _decode(metadata: Mapping[str, str]) -> KafkaMetadata:
    settings = decode(KafkaMetadata, metadata)
    try:
        settings.connection_options()  # a bad caCert fails here, at start-up
    except (ssl.SSLError, ValueError) as exc:
        raise ComponentInitError(f"caCert is not a usable PEM certificate: {exc}", field="caCert") from exc
    return settings


class _KafkaErrors:
    """Turns aiokafka exceptions into BackendError at the component boundary."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(error, kafka_errors.KafkaError):
            raise BackendError(f"kafka: {error}") from error


_KAFKA_ERRORS = _KafkaErrors()


def _record(request: PublishRequest) -> Record:
    key, headers = _key_and_headers(request.metadata)
    return Record(key, request.data, headers)


def _backend_error(error: BaseException) -> Exception:
    if isinstance(error, kafka_errors.KafkaError):
        return BackendError(f"kafka: {error}")
    return error if isinstance(error, Exception) else BackendError(f"kafka: {error!r}")


def _key_and_headers(metadata: Mapping[str, str]) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = []
    for name, value in metadata.items():
        if name.lower() in _KEY_FIELDS_LOWER:
            # partitionKey wins over the other spellings when several are given.
            if key is None or name == PARTITION_KEY:
                key = value.encode()
        else:
            headers.append((name, value.encode()))
    return key, headers


class KafkaPubSub:
    def __init__(self) -> None:
        self._settings: KafkaMetadata | None = None
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._batches: PartitionBatches | None = None
        self._topics: set[str] = set()
        self._topic_lock = asyncio.Lock()
        self._subscriptions: set[KafkaSubscription] = set()
        self._closed = False

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = _decode(metadata)
        options = settings.connection_options()
        admin: AIOKafkaAdminClient | None = None
        producer: AIOKafkaProducer | None = None
        try:
            async with asyncio.timeout(settings.dialTimeout.total_seconds()):
                producer = await self._start_producer(settings, options)
                if settings.autoCreateTopics:
                    admin = AIOKafkaAdminClient(**options)
                    await admin.start()
        except BaseException as exc:
            # Cancelled too (spec.initTimeout ran out): release what started all the same.
            await _quietly(producer.stop() if producer else None, admin.close() if admin else None)
            brokers = ",".join(settings.brokers)
            if isinstance(exc, TimeoutError):
                raise ComponentInitError(
                    f"cannot reach Kafka at {brokers} within {settings.dialTimeout.total_seconds():g}s",
                    field="brokers",
                ) from exc
            if isinstance(exc, kafka_errors.KafkaError):
                field = "saslPassword" if settings.authType == "password" and _is_auth(exc) else "brokers"
                raise ComponentInitError(f"cannot connect to Kafka at {brokers}: {exc}", field=field) from exc
            raise
        self._settings, self._producer, self._admin = settings, producer, admin
        self._batches = PartitionBatches(producer, settings.maxMessageBytes or DEFAULT_MAX_REQUEST_SIZE)

    async def _start_producer(self, settings: KafkaMetadata, options: dict[str, Any]) -> AIOKafkaProducer:
        extra: dict[str, Any] = {"acks": "all"}
        if settings.maxMessageBytes:
            extra["max_request_size"] = settings.maxMessageBytes
        producer = AIOKafkaProducer(enable_idempotence=True, **extra, **options)
        try:
            await producer.start()
            return producer
        except _NO_IDEMPOTENCE as exc:
            await producer.stop()
            log.warning(
                "kafka broker refuses idempotent producers; publishing with acks=all only", error=str(exc)
            )
        except BaseException:
            await producer.stop()
            raise
        producer = AIOKafkaProducer(**extra, **options)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    def _live_batches(self) -> PartitionBatches:
        self._live()
        assert self._batches is not None
        return self._batches

    def _live(self) -> tuple[KafkaMetadata, AIOKafkaProducer]:
        if self._settings is None or self._producer is None or self._closed:
            raise BackendError("kafka pubsub is not initialised or already closed")
        return self._settings, self._producer

    async def _ensure_topic(self, topic: str) -> None:
        if self._admin is None or topic in self._topics:
            return
        settings, _ = self._live()
        async with self._topic_lock:
            if topic in self._topics:
                return
            with _KAFKA_ERRORS:
                response = await self._admin.create_topics(
                    [NewTopic(topic, settings.partitionCount, settings.replicationFactor)]
                )
            for _, code, message in response.topic_errors:
                error = kafka_errors.for_code(code)
                if code not in (0, kafka_errors.TopicAlreadyExistsError.errno):
                    raise BackendError(
                        f"kafka: cannot create topic {topic!r}: {error.__name__} {message or ''}"
                    )
            self._topics.add(topic)

    async def publish(self, request: PublishRequest) -> None:
        batches = self._live_batches()
        await self._ensure_topic(request.topic)
        with _KAFKA_ERRORS:
            await batches.send(request.topic, _record(request))

    async def bulk_publish(self, topic: str, requests: Sequence[PublishRequest]) -> list[Exception | None]:
        batches = self._live_batches()
        if not requests:
            return []
        await self._ensure_topic(topic)
        outcomes = await batches.send_all(topic, [_record(request) for request in requests])
        return [None if outcome is None else _backend_error(outcome) for outcome in outcomes]

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> KafkaSubscription:
        settings, _ = self._live()
        await self._ensure_topic(request.topic)
        consumer = AIOKafkaConsumer(
            group_id=settings.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if settings.initialOffset == "oldest" else "latest",
            session_timeout_ms=int(settings.sessionTimeout.total_seconds() * 1000),
            heartbeat_interval_ms=int(settings.heartbeatInterval.total_seconds() * 1000),
            fetch_max_wait_ms=max(1, int(settings.fetchMaxWait.total_seconds() * 1000)),
            **settings.connection_options(),
        )
        try:
            with _KAFKA_ERRORS:
                # No topic yet: start() only bootstraps; the group is joined in the background.
                await consumer.start()
                start: StartOffsets = None
                if settings.initialOffset == "newest":
                    start = await _end_offsets(consumer, request.topic)
        except BaseException:
            await _quietly(consumer.stop())
            raise
        subscription = KafkaSubscription(
            consumer,
            request.topic,
            handler,
            max_in_flight=request.max_in_flight,
            retry_interval=settings.consumeRetryInterval.total_seconds(),
            start_offsets=start,
            drain_timeout=min(KafkaSubscription.stop_timeout, settings.sessionTimeout.total_seconds() / 2),
            on_stopped=self._subscriptions.discard,
        )
        self._subscriptions.add(subscription)
        subscription.start()
        return subscription

    async def ping(self) -> None:
        """Health: the cluster's metadata from any broker (components/health.py)."""
        producer = self._producer
        if producer is None:
            raise BackendError("kafka: not connected")
        try:
            await producer.client.fetch_all_metadata()
        except kafka_errors.KafkaError as exc:
            raise BackendError(f"kafka: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Subscriptions first: their last commits need the broker, not the producer. Each stop is
        # bounded (see KafkaSubscription.stop) and never raises.
        await asyncio.gather(*(subscription.stop() for subscription in list(self._subscriptions)))
        if self._batches is not None:  # publishes under way get their acks before the producer goes
            await finish_within(self._batches.drain(), _CLOSE_TIMEOUT, "kafka publishes under way")
        producer, self._producer = self._producer, None
        admin, self._admin = self._admin, None
        await _quietly(producer.stop() if producer else None, admin.close() if admin else None)


async def _end_offsets(consumer: AIOKafkaConsumer, topic: str) -> dict[int, int]:
    """The end of every partition of ``topic`` now: where a group without commits starts."""
    await consumer.topics()  # refreshes metadata, which a topic created just now is not in yet
    partitions = consumer.partitions_for_topic(topic) or set()
    if not partitions:
        return {}
    ends = await consumer.end_offsets([TopicPartition(topic, partition) for partition in partitions])
    return {tp.partition: offset for tp, offset in ends.items()}


def _is_auth(error: BaseException) -> bool:
    return isinstance(
        error, kafka_errors.AuthenticationFailedError | kafka_errors.AuthenticationMethodNotSupported
    )


async def _quietly(*closing: Any) -> None:
    """Await every close, each for at most :data:`_CLOSE_TIMEOUT`, logging failures: teardown
    reports errors but never stops half-way and never hangs."""
    for awaitable in closing:
        if awaitable is not None:
            await finish_within(awaitable, _CLOSE_TIMEOUT, "kafka client close")
