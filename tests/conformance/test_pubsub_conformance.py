"""Every pub/sub backend against the contract in components/pubsub/base.py.

What is specific to a backend lives in BACKENDS only: its component type, its metadata, the
features it must claim and the columns saying how its delivery differs where the contract lets it
(redelivery after a failure, messages kept for a stopped group...). Tests publish through one
component and subscribe through others, one per consumer group, as separate sidecars would; where
groups are chosen per subscription inside one component (in-memory), every group shares it.

Kafka's group join takes a moment, so every subscription is first proven live by probe messages
(``Broker.ready``); waits are generous, and a passing test does not wait for them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from components import registry
from components.errors import ComponentInitError, MetadataError
from components.pubsub.base import (
    Consumer,
    Feature,
    Message,
    PausableConsumer,
    PublishRequest,
    SubscribeRequest,
)
from tests.servers import LOOPBACK, free_port

Metadata = Callable[[pytest.FixtureRequest, str], dict[str, str]]


@dataclass(frozen=True, slots=True)
class Backend:
    type: str
    metadata: Metadata
    """Built per test and consumer group, from the test's fixtures."""
    features: frozenset[Feature]
    groups_in_subscription: bool
    """Consumer groups live inside one component, named by the subscription's ``consumerID``
    metadata; otherwise a group is a component's metadata, so each group is a component."""
    redelivers: bool
    """A message whose handler raised is delivered again (else it is dropped)."""
    durable: bool
    """Messages published while no consumer of a group runs wait for the group."""
    spreads: bool
    """The consumers of one group each take part of a burst (Kafka: one partition, one consumer)."""
    any_topic_name: bool
    """Topic names may hold any character (``/``, ``:``, spaces), not only [a-zA-Z0-9._-]."""
    bad_metadata: tuple[tuple[str, str | None], ...]
    """(field, value) refused by init with a MetadataError naming the field; None: field left out."""
    unreachable: Callable[[], dict[str, str]] | None = None
    """Metadata pointing at a closed port; init must fail with a ComponentInitError naming ..."""
    server_field: str = ""
    """... this field."""
    pausable: bool = False
    """Its consumers are PausableConsumers (what a pause of a non-durable backend needs)."""

    @property
    def id(self) -> str:
        return self.type.removeprefix("pubsub.")


def _redis(request: pytest.FixtureRequest, group: str) -> dict[str, str]:
    return {
        "redisHost": request.getfixturevalue("redis_server").address,
        "consumerID": group,
        "processingTimeout": "500ms",
        "redeliverInterval": "200ms",
    }


def _kafka(request: pytest.FixtureRequest, group: str) -> dict[str, str]:
    return {
        "brokers": request.getfixturevalue("kafka_server").address,
        "consumerGroup": group,
        "consumerID": group,
        # A new group member joins in about half the session timeout on Tansu: keep it short.
        "sessionTimeout": "2s",
        "heartbeatInterval": "200ms",
        "consumeRetryInterval": "50ms",
    }


BACKENDS = (
    Backend(
        "pubsub.in-memory",
        lambda request, group: {"consumerID": group},
        frozenset(),
        groups_in_subscription=True,
        redelivers=False,
        durable=False,
        spreads=True,
        any_topic_name=True,
        bad_metadata=(),
        pausable=True,
    ),
    Backend(
        "pubsub.redis",
        _redis,
        frozenset(),
        groups_in_subscription=False,
        redelivers=True,
        durable=True,
        spreads=True,
        any_topic_name=True,
        bad_metadata=(
            ("redisHost", None),
            ("redisHost", "no-port"),
            ("consumerID", ""),
            ("processingTimeout", "soon"),
            ("concurrency", "0"),
            ("maxLenApprox", "many"),
        ),
        unreachable=lambda: {
            "redisHost": f"{LOOPBACK}:{free_port()}",
            "consumerID": "g",
            "dialTimeout": "1s",
        },
        server_field="redisHost",
    ),
    Backend(
        "pubsub.kafka",
        _kafka,
        frozenset({Feature.BULK_PUBLISH}),
        groups_in_subscription=False,
        redelivers=True,
        durable=True,
        spreads=False,
        any_topic_name=False,
        bad_metadata=(("brokers", None), ("brokers", "no-port"), ("initialOffset", "yesterday")),
        unreachable=lambda: {
            "brokers": f"{LOOPBACK}:{free_port()}",
            "consumerGroup": "g",
            "dialTimeout": "1s",
        },
        server_field="brokers",
    ),
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    if "bad_field" in metafunc.fixturenames:
        cases = [
            pytest.param(
                b, field, value, id=f"{b.id}-{field}-{'missing' if value is None else value or 'empty'}"
            )
            for b in BACKENDS
            for field, value in b.bad_metadata
        ]
        metafunc.parametrize(("backend", "bad_field", "bad_value"), cases)
        return
    wanted: Callable[[Backend], bool] = getattr(metafunc.function, "wanted", lambda backend: True)
    metafunc.parametrize("backend", [pytest.param(b, id=b.id) for b in BACKENDS if wanted(b)])


def only(wanted: Callable[[Backend], bool]) -> Callable[[Any], Any]:
    """Run a test against the backends of which ``wanted`` holds."""

    def mark(test: Any) -> Any:
        test.wanted = wanted
        return test

    return mark


# -- the harness ------------------------------------------------------------------------------------

DELIVERY_TIMEOUT = 20.0
"""How long a test waits for a delivery before failing (a passing test does not wait it out)."""
QUIET_PERIOD = 1.5
"""How long a test watches for a delivery that must not happen."""
PROBE = b"conformance-probe:"


async def eventually(condition: Callable[[], bool], seconds: float = DELIVERY_TIMEOUT) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class Inbox:
    """A subscription's handler, recording what reached it (probes aside)."""

    def __init__(self, work: Callable[[Message], Awaitable[None]] | None = None) -> None:
        self.messages: list[Message] = []
        self.probed = False
        self._work = work

    async def __call__(self, message: Message) -> None:
        if message.data.startswith(PROBE):
            self.probed = True
            return
        if self._work is not None:
            await self._work(message)
        self.messages.append(message)

    @property
    def data(self) -> list[bytes]:
        return [message.data for message in self.messages]


class Broker:
    """The components of one test, closed at its end."""

    def __init__(self, backend: Backend, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self._request = request
        self._prefix = f"conformance-{uuid.uuid4().hex[:10]}-"
        self._components: dict[str, Any] = {}
        self._consumers: list[Consumer] = []

    async def component(self, group: str = "publisher") -> Any:
        key = "" if self.backend.groups_in_subscription else group
        if key not in self._components:
            instance = registry.create(self.backend.type)
            await instance.init(self.backend.metadata(self._request, self._prefix + group))
            self._components[key] = instance
        return self._components[key]

    async def publish(self, topic: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        publisher = await self.component()
        await publisher.publish(PublishRequest(topic, data, metadata=metadata or {}))

    async def subscribe(
        self, topic: str, handler: Inbox, *, group: str = "group-1", max_in_flight: int = 10
    ) -> Consumer:
        component = await self.component(group)
        metadata = {"consumerID": self._prefix + group} if self.backend.groups_in_subscription else {}
        consumer: Consumer = await component.subscribe(
            SubscribeRequest(topic, metadata, max_in_flight), handler
        )
        self._consumers.append(consumer)
        return consumer

    async def ready(self, topic: str, *groups: Inbox | Sequence[Inbox]) -> None:
        """Publish probes until one inbox of each group has seen one: every subscription is live."""
        sets = [[group] if isinstance(group, Inbox) else list(group) for group in groups]
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while not all(any(inbox.probed for inbox in inboxes) for inboxes in sets):
            assert time.monotonic() < deadline, (
                f"subscriptions to {topic} not live after {DELIVERY_TIMEOUT} s"
            )
            await self.publish(topic, PROBE + uuid.uuid4().bytes)
            await eventually(lambda: all(any(i.probed for i in inboxes) for inboxes in sets), 0.3)

    async def close(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        for component in self._components.values():
            await component.close()


@pytest.fixture
async def broker(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    opened = Broker(backend, request)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def topic() -> str:
    return f"conformance.{uuid.uuid4().hex[:12]}"


def numbered(count: int, label: str = "m") -> list[bytes]:
    return [f"{label}-{n:04d}".encode() for n in range(count)]


# -- features, life ---------------------------------------------------------------------------------


async def test_features_are_exactly_the_expected_ones(broker, backend):
    component = await broker.component()
    assert set(component.features()) == backend.features
    if Feature.BULK_PUBLISH in backend.features:
        assert callable(getattr(component, "bulk_publish", None))


async def test_stop_and_close_twice_are_fine(broker, topic):
    consumer = await broker.subscribe(topic, Inbox())
    await consumer.stop()
    await consumer.stop()
    component = await broker.component("group-1")
    await component.close()
    await component.close()


async def test_close_stops_running_subscriptions(broker, topic):
    inbox = Inbox()
    await broker.subscribe(topic, inbox)
    await broker.ready(topic, inbox)
    await (await broker.component("group-1")).close()
    if not broker.backend.groups_in_subscription:
        await broker.publish(topic, b"after close")
        await asyncio.sleep(QUIET_PERIOD)
        assert inbox.data == []


async def test_publish_to_a_topic_nobody_subscribes_to_succeeds(broker, topic):
    await broker.publish(topic, b"into the void")


# -- delivery ---------------------------------------------------------------------------------------

PAYLOADS = {
    "cloudevent": b'{"data":{"orderId":1},"datacontenttype":"application/json","id":"5f0c","specversion":"1.0"}',
    "binary": bytes(range(256)) * 4,
    "unicode": "Zoë 漢字 🚀".encode(),
    "100KB": b"x" * 100_000,
}


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
async def test_published_bytes_arrive_unchanged(broker, topic, payload):
    inbox = Inbox()
    await broker.subscribe(topic, inbox)
    await broker.ready(topic, inbox)
    await broker.publish(topic, payload)
    assert await eventually(lambda: len(inbox.messages) >= 1)
    assert inbox.data == [payload]
    assert inbox.messages[0].topic == topic


async def test_publish_metadata_reaches_the_subscriber(broker, topic):
    metadata = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "custom": "välue"}
    inbox = Inbox()
    await broker.subscribe(topic, inbox)
    await broker.ready(topic, inbox)
    await broker.publish(topic, b"with metadata", metadata)
    assert await eventually(lambda: len(inbox.messages) >= 1)
    assert metadata.items() <= dict(inbox.messages[0].metadata).items()


async def test_many_messages_all_arrive(broker, topic):
    inbox = Inbox()
    await broker.subscribe(topic, inbox)
    await broker.ready(topic, inbox)
    sent = numbered(200)
    await asyncio.gather(*(broker.publish(topic, data) for data in sent))
    assert await eventually(lambda: set(inbox.data) >= set(sent)), f"{len(set(inbox.data))} of 200 arrived"


async def test_max_in_flight_one_keeps_publish_order(broker, topic):
    async def work(message: Message) -> None:
        await asyncio.sleep(0.002)

    inbox = Inbox(work)
    await broker.subscribe(topic, inbox, max_in_flight=1)
    await broker.ready(topic, inbox)
    sent = numbered(50)
    for data in sent:
        await broker.publish(topic, data)
    assert await eventually(lambda: len(inbox.messages) >= len(sent))
    assert inbox.data == sent


async def test_in_flight_bound_holds_under_load(broker, topic):
    running, most = 0, 0

    async def work(message: Message) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.01)
        finally:
            running -= 1

    inbox = Inbox(work)
    await broker.subscribe(topic, inbox, max_in_flight=3)
    await broker.ready(topic, inbox)
    sent = numbered(60)
    await asyncio.gather(*(broker.publish(topic, data) for data in sent))
    assert await eventually(lambda: set(inbox.data) >= set(sent))
    assert 1 <= most <= 3, f"{most} handler calls ran at once"


async def test_a_failing_handler_gets_the_message_again_or_drops_it(broker, topic, backend):
    attempts: dict[bytes, int] = {}

    async def work(message: Message) -> None:
        attempts[message.data] = attempts.get(message.data, 0) + 1
        if message.data == b"poison" and attempts[message.data] == 1:
            raise RuntimeError("the first attempt fails")

    inbox = Inbox(work)
    await broker.subscribe(topic, inbox)
    await broker.ready(topic, inbox)
    await broker.publish(topic, b"poison")
    await broker.publish(topic, b"after")
    if backend.redelivers:
        assert await eventually(lambda: b"poison" in inbox.data), "the failed message was not redelivered"
        assert attempts[b"poison"] >= 2
    else:
        assert await eventually(lambda: b"after" in inbox.data)
        await asyncio.sleep(QUIET_PERIOD)
        assert attempts[b"poison"] == 1 and b"poison" not in inbox.data
    assert await eventually(lambda: b"after" in inbox.data)


async def test_stop_lets_the_running_handler_finish(broker, topic):
    started, finished = asyncio.Event(), asyncio.Event()

    async def work(message: Message) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    inbox = Inbox(work)
    consumer = await broker.subscribe(topic, inbox)
    await broker.ready(topic, inbox)
    await broker.publish(topic, b"slow")
    await asyncio.wait_for(started.wait(), DELIVERY_TIMEOUT)
    await consumer.stop()
    assert finished.is_set(), "stop() returned before the running handler finished"
    assert inbox.data == [b"slow"]


async def test_a_stopped_subscription_receives_nothing_more(broker, topic):
    inbox, other = Inbox(), Inbox()
    consumer = await broker.subscribe(topic, inbox)
    await broker.subscribe(topic, other, group="group-2")
    await broker.ready(topic, inbox, other)
    await consumer.stop()
    await broker.publish(topic, b"after stop")
    assert await eventually(lambda: other.data == [b"after stop"])
    await asyncio.sleep(0.3)
    assert inbox.data == []


# -- consumer groups --------------------------------------------------------------------------------


async def test_the_consumers_of_one_group_share_its_messages(broker, topic, backend):
    async def work(message: Message) -> None:
        await asyncio.sleep(0.01)

    first, second = Inbox(work), Inbox(work)
    await broker.subscribe(topic, first, max_in_flight=1)
    await broker.subscribe(topic, second, max_in_flight=1)
    await broker.ready(topic, [first, second])
    sent = numbered(40)
    await asyncio.gather(*(broker.publish(topic, data) for data in sent))
    assert await eventually(lambda: len(first.data) + len(second.data) >= len(sent))
    await asyncio.sleep(0.3)
    assert sorted(first.data + second.data) == sent, "each message must reach exactly one consumer"
    if backend.spreads:
        assert first.data and second.data, f"one consumer got all: {len(first.data)} / {len(second.data)}"


async def test_every_group_gets_every_message(broker, topic):
    first, second = Inbox(), Inbox()
    await broker.subscribe(topic, first, group="group-1")
    await broker.subscribe(topic, second, group="group-2")
    await broker.ready(topic, first, second)
    sent = numbered(30)
    await asyncio.gather(*(broker.publish(topic, data) for data in sent))
    assert await eventually(lambda: set(first.data) >= set(sent) and set(second.data) >= set(sent))


async def test_messages_published_while_the_group_was_stopped(broker, topic, backend):
    inbox = Inbox()
    consumer = await broker.subscribe(topic, inbox)
    await broker.ready(topic, inbox)
    await consumer.stop()
    missed = numbered(5, "while-stopped")
    for data in missed:
        await broker.publish(topic, data)
    again = Inbox()
    await broker.subscribe(topic, again)
    await broker.ready(topic, again)
    await broker.publish(topic, b"after")
    assert await eventually(lambda: b"after" in again.data)
    if backend.durable:
        assert await eventually(lambda: set(again.data) >= set(missed)), "messages of the stopped group lost"
    else:
        assert not set(again.data) & set(missed), "a backend without storage delivered old messages"
    assert inbox.data == []


async def test_a_pause_loses_nothing_and_delivers_nothing_twice(broker, topic, backend):
    """What the subscriber does while the app is unhealthy: a PausableConsumer pauses, any other
    consumer is stopped and its group subscribed again, so every backend must be one or durable."""
    inbox = Inbox()
    consumer = await broker.subscribe(topic, inbox, max_in_flight=1)
    await broker.ready(topic, inbox)
    assert isinstance(consumer, PausableConsumer) == backend.pausable
    assert backend.pausable or backend.durable, "a pause would lose the messages of this backend"
    before = numbered(3, "before")
    for data in before:
        await broker.publish(topic, data)
    assert await eventually(lambda: set(inbox.data) >= set(before))
    if isinstance(consumer, PausableConsumer):
        await consumer.pause()
        await consumer.pause()  # idempotent
    else:
        await consumer.stop()
    during = numbered(5, "during")
    for data in during:
        await broker.publish(topic, data)
    await asyncio.sleep(0.5)
    assert not set(inbox.data) & set(during), "delivered while paused"
    if isinstance(consumer, PausableConsumer):
        await consumer.resume()
        await consumer.resume()
    else:
        await broker.subscribe(topic, inbox, max_in_flight=1)
    after = numbered(2, "after")
    for data in after:
        await broker.publish(topic, data)
    assert await eventually(lambda: set(inbox.data) >= set(before + during + after))
    await asyncio.sleep(0.3)
    assert sorted(inbox.data) == sorted(before + during + after), "a message came twice"
    assert [d for d in inbox.data if d in during] == during, "the waiting messages out of order"


@only(lambda backend: backend.any_topic_name)
@pytest.mark.parametrize("name", ["orders/eu:v1", "with space", "Zoë"])
async def test_topic_names_with_any_character(broker, name):
    topic = f"{name}-{uuid.uuid4().hex[:8]}"
    inbox = Inbox()
    await broker.subscribe(topic, inbox)
    await broker.ready(topic, inbox)
    await broker.publish(topic, b"routed")
    assert await eventually(lambda: inbox.data == [b"routed"])
    assert inbox.messages[0].topic == topic


# -- start-up ---------------------------------------------------------------------------------------


async def test_bad_metadata_names_the_field(backend, request, bad_field, bad_value):
    metadata = backend.metadata(request, "group")
    metadata.pop(bad_field, None)
    if bad_value is not None:
        metadata[bad_field] = bad_value
    component = registry.create(backend.type)
    with pytest.raises(MetadataError) as caught:
        await component.init(metadata)
    assert caught.value.field == bad_field


@only(lambda backend: backend.unreachable is not None)
async def test_unreachable_server_fails_init(backend):
    assert backend.unreachable is not None
    component = registry.create(backend.type)
    started = time.monotonic()
    with pytest.raises(ComponentInitError) as caught:
        await component.init(backend.unreachable())
    assert caught.value.field == backend.server_field
    assert time.monotonic() - started < 10
    await component.close()
