"""pubsub.kafka against a real Kafka-protocol broker: what is specific to Kafka (keys and
partitions, offset commits, consumer groups, headers, topic creation). The backend-neutral
contract is proven by tests/conformance/test_pubsub_conformance.py."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from components.errors import BackendError, ComponentInitError, MetadataError
from components.metadata import decode
from components.pubsub.base import Feature, Message, PublishRequest, SubscribeRequest
from components.pubsub.kafka import KafkaMetadata, KafkaPubSub
from tests.servers import KafkaServer, free_port

# A new group member joins in about half the session timeout on Tansu: keep it short.
FAST_GROUP = {"sessionTimeout": "2s", "heartbeatInterval": "200ms", "consumeRetryInterval": "50ms"}

MakePubSub = Callable[..., Awaitable[KafkaPubSub]]


@pytest.fixture
def topic() -> str:
    return f"kafka-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def group() -> str:
    return f"group-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def make_pubsub(kafka_server: KafkaServer, group: str) -> AsyncIterator[MakePubSub]:
    made: list[KafkaPubSub] = []

    async def make(**metadata: str) -> KafkaPubSub:
        pubsub = KafkaPubSub()
        await pubsub.init({"brokers": kafka_server.address, "consumerGroup": group, **FAST_GROUP, **metadata})
        made.append(pubsub)
        return pubsub

    yield make
    for pubsub in made:
        await pubsub.close()


async def wait_until(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def committed(kafka_server: KafkaServer, group: str, topic: str, partition: int = 0) -> int | None:
    """The group's committed offset, read by a client of its own (it does not join the group)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=kafka_server.address, group_id=group, enable_auto_commit=False
    )
    await reader.start()
    try:
        offset: int | None = await reader.committed(TopicPartition(topic, partition))
        return offset
    finally:
        await reader.stop()


def recorder(into: list[Message]) -> Callable[[Message], Awaitable[None]]:
    async def handle(message: Message) -> None:
        into.append(message)

    return handle


async def test_bulk_publish_is_the_only_optional_feature(make_pubsub: MakePubSub) -> None:
    pubsub = await make_pubsub()
    assert pubsub.features() == frozenset({Feature.BULK_PUBLISH})


async def test_partition_key_picks_the_partition_and_keeps_order_per_key(
    make_pubsub: MakePubSub, topic: str
) -> None:
    pubsub = await make_pubsub(partitionCount="3")
    received: list[Message] = []
    running = peak = 0

    async def handle(message: Message) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        received.append(message)
        running -= 1

    subscription = await pubsub.subscribe(SubscribeRequest(topic, max_in_flight=1), handle)
    keys = [f"key-{n}" for n in range(6)]
    for round_ in range(5):
        for key in keys:
            await pubsub.publish(
                PublishRequest(topic, f"{key}/{round_}".encode(), metadata={"partitionKey": key})
            )
    await wait_until(lambda: len(received) == 30)

    assert peak == 1
    assert subscription.partitions == {0, 1, 2}
    partitions_used = set()
    for key in keys:
        mine = [m for m in received if m.metadata["__key"] == key]
        assert [m.data for m in mine] == [f"{key}/{r}".encode() for r in range(5)]
        # Kafka's default partitioner (murmur2 of the key), as Java and librdkafka clients use.
        expected = (murmur2(key.encode()) & 0x7FFFFFFF) % 3
        assert {m.metadata["__partition"] for m in mine} == {str(expected)}
        partitions_used.add(expected)
        offsets = [int(m.metadata["__offset"]) for m in mine]
        assert offsets == sorted(offsets)
        assert all(m.id == f"{m.metadata['__partition']}-{m.metadata['__offset']}" for m in mine)
        assert all(m.metadata["__topic"] == topic for m in mine)
    assert len(partitions_used) > 1


async def test_publish_accepts_key_as_the_key_and_sends_the_rest_as_headers(
    make_pubsub: MakePubSub, topic: str
) -> None:
    pubsub = await make_pubsub()
    received: list[Message] = []
    await pubsub.subscribe(SubscribeRequest(topic), recorder(received))
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await pubsub.publish(
        PublishRequest(topic, b"one", metadata={"key": "k1", "traceparent": traceparent, "x-unicode": "é"})
    )
    await pubsub.publish(PublishRequest(topic, b"two"))
    await wait_until(lambda: len(received) == 2)

    first, second = received
    assert first.data == b"one"
    assert first.metadata["__key"] == "k1"
    assert first.metadata["traceparent"] == traceparent
    assert first.metadata["x-unicode"] == "é"
    assert "key" not in first.metadata and "partitionKey" not in first.metadata
    assert "__key" not in second.metadata
    assert int(second.metadata["__timestamp"]) > 0


async def test_offsets_are_committed_only_after_the_handler_returns(
    make_pubsub: MakePubSub, kafka_server: KafkaServer, group: str, topic: str
) -> None:
    pubsub = await make_pubsub()
    started = asyncio.Event()
    release = asyncio.Event()
    handled: list[bytes] = []

    async def handle(message: Message) -> None:
        if message.data == b"slow":
            started.set()
            await release.wait()
        handled.append(message.data)

    await pubsub.subscribe(SubscribeRequest(topic, max_in_flight=1), handle)
    await pubsub.publish(PublishRequest(topic, b"fast"))
    await pubsub.publish(PublishRequest(topic, b"slow"))
    await pubsub.publish(PublishRequest(topic, b"after"))
    await asyncio.wait_for(started.wait(), 15)

    await wait_until(lambda: handled == [b"fast"])
    await asyncio.sleep(0.3)  # time for a commit that must not happen
    assert await committed(kafka_server, group, topic) == 1

    release.set()
    await wait_until(lambda: len(handled) == 3)
    deadline = time.monotonic() + 10
    while await committed(kafka_server, group, topic) != 3:
        assert time.monotonic() < deadline, "offset 3 was never committed"
        await asyncio.sleep(0.05)


async def test_a_failing_message_is_retried_and_holds_back_its_partition(
    make_pubsub: MakePubSub, topic: str
) -> None:
    pubsub = await make_pubsub(consumeRetryInterval="100ms")
    attempts: list[tuple[bytes, float]] = []
    failures = 3

    async def handle(message: Message) -> None:
        nonlocal failures
        attempts.append((message.data, time.monotonic()))
        if message.data == b"m1" and failures:
            failures -= 1
            raise RuntimeError("app not ready")

    await pubsub.subscribe(SubscribeRequest(topic, max_in_flight=1), handle)
    for n in range(4):
        await pubsub.publish(PublishRequest(topic, f"m{n}".encode()))
    await wait_until(lambda: len(attempts) == 7)

    assert [data for data, _ in attempts] == [b"m0", b"m1", b"m1", b"m1", b"m1", b"m2", b"m3"]
    retries = [at for data, at in attempts if data == b"m1"]
    assert all(later - earlier >= 0.09 for earlier, later in itertools.pairwise(retries))


async def test_commits_never_pass_an_unfinished_offset(
    make_pubsub: MakePubSub, kafka_server: KafkaServer, group: str, topic: str
) -> None:
    pubsub = await make_pubsub()
    release = asyncio.Event()
    done: list[bytes] = []

    async def handle(message: Message) -> None:
        if message.data == b"m1":
            await release.wait()
        done.append(message.data)

    # Several in flight at once, so later offsets finish while m1 is still running.
    await pubsub.subscribe(SubscribeRequest(topic, max_in_flight=4), handle)
    for n in range(4):
        await pubsub.publish(PublishRequest(topic, f"m{n}".encode()))
    await wait_until(lambda: sorted(done) == [b"m0", b"m2", b"m3"])
    await asyncio.sleep(0.3)
    assert await committed(kafka_server, group, topic) == 1

    release.set()
    deadline = time.monotonic() + 10
    while await committed(kafka_server, group, topic) != 4:
        assert time.monotonic() < deadline, "offset 4 was never committed"
        await asyncio.sleep(0.05)


async def test_members_of_one_group_split_the_partitions(make_pubsub: MakePubSub, topic: str) -> None:
    first_pubsub = await make_pubsub(partitionCount="2")
    second_pubsub = await make_pubsub(partitionCount="2")
    first: list[Message] = []
    second: list[Message] = []
    one = await first_pubsub.subscribe(SubscribeRequest(topic), recorder(first))
    await wait_until(lambda: one.partitions == {0, 1})
    two = await second_pubsub.subscribe(SubscribeRequest(topic), recorder(second))
    await wait_until(lambda: len(one.partitions) == 1 and len(two.partitions) == 1, within=30)
    assert one.partitions | two.partitions == {0, 1}

    sent = [f"m{n}".encode() for n in range(40)]
    for n, data in enumerate(sent):
        await first_pubsub.publish(PublishRequest(topic, data, metadata={"partitionKey": f"k{n}"}))
    await wait_until(lambda: len(first) + len(second) >= len(sent))
    await asyncio.sleep(0.2)  # a duplicate would arrive now

    assert sorted(m.data for m in first + second) == sorted(sent)
    assert {m.metadata["__partition"] for m in first} == {str(p) for p in one.partitions}
    assert {m.metadata["__partition"] for m in second} == {str(p) for p in two.partitions}


async def test_different_groups_each_get_every_message(make_pubsub: MakePubSub, topic: str) -> None:
    publisher = await make_pubsub()
    other = await make_pubsub(consumerGroup=f"other-{uuid.uuid4().hex[:8]}")
    mine: list[Message] = []
    theirs: list[Message] = []
    await publisher.subscribe(SubscribeRequest(topic), recorder(mine))
    await other.subscribe(SubscribeRequest(topic), recorder(theirs))
    for n in range(5):
        await publisher.publish(PublishRequest(topic, f"m{n}".encode()))
    await wait_until(lambda: len(mine) == 5 and len(theirs) == 5)
    assert [m.data for m in mine] == [m.data for m in theirs]


def key_for(partition: int, partitions: int) -> str:
    """A key Kafka's default partitioner sends to ``partition``."""
    return next(
        f"k{n}" for n in range(1000) if (murmur2(f"k{n}".encode()) & 0x7FFFFFFF) % partitions == partition
    )


async def test_a_group_resumes_where_it_stopped_on_every_partition(
    make_pubsub: MakePubSub, topic: str
) -> None:
    pubsub = await make_pubsub(partitionCount="2")
    before: list[Message] = []
    subscription = await pubsub.subscribe(SubscribeRequest(topic), recorder(before))
    await pubsub.publish(PublishRequest(topic, b"m0", metadata={"partitionKey": key_for(0, 2)}))
    await wait_until(lambda: len(before) == 1)
    await subscription.stop()
    await subscription.stop()  # idempotent

    # While no member of the group runs, to the partition that had no message yet: the group still
    # resumes there from where it started, not from the end of the partition.
    await pubsub.publish(PublishRequest(topic, b"m1", metadata={"partitionKey": key_for(1, 2)}))
    after: list[Message] = []
    await pubsub.subscribe(SubscribeRequest(topic), recorder(after))
    await pubsub.publish(PublishRequest(topic, b"m2", metadata={"partitionKey": key_for(0, 2)}))
    await wait_until(lambda: len(after) == 2)
    await asyncio.sleep(0.2)
    assert sorted(m.data for m in after) == [b"m1", b"m2"]


async def test_initial_offset_decides_where_a_new_group_starts(make_pubsub: MakePubSub, topic: str) -> None:
    pubsub = await make_pubsub()
    await pubsub.publish(PublishRequest(topic, b"old"))
    newest: list[Message] = []
    oldest: list[Message] = []
    await pubsub.subscribe(SubscribeRequest(topic), recorder(newest))
    other = await make_pubsub(consumerGroup=f"oldest-{uuid.uuid4().hex[:8]}", initialOffset="oldest")
    await other.subscribe(SubscribeRequest(topic), recorder(oldest))
    # Published right after subscribe returned, long before the groups finished joining.
    await pubsub.publish(PublishRequest(topic, b"new"))
    await wait_until(lambda: len(newest) == 1 and len(oldest) == 2)
    await asyncio.sleep(0.2)
    assert [m.data for m in newest] == [b"new"]
    assert [m.data for m in oldest] == [b"old", b"new"]


async def test_stop_lets_the_running_handler_finish_and_commits_it(
    make_pubsub: MakePubSub, kafka_server: KafkaServer, group: str, topic: str
) -> None:
    pubsub = await make_pubsub()
    started = asyncio.Event()
    finished: list[bytes] = []

    async def handle(message: Message) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(message.data)

    subscription = await pubsub.subscribe(SubscribeRequest(topic), handle)
    await pubsub.publish(PublishRequest(topic, b"m0"))
    await asyncio.wait_for(started.wait(), 15)
    await subscription.stop()
    assert finished == [b"m0"]
    assert await committed(kafka_server, group, topic) == 1


async def test_bulk_publish_reports_each_entry(make_pubsub: MakePubSub, topic: str) -> None:
    pubsub = await make_pubsub(maxMessageBytes="2000", partitionCount="2")
    received: list[Message] = []
    await pubsub.subscribe(SubscribeRequest(topic), recorder(received))
    requests = [
        PublishRequest(topic, f"m{n}".encode(), metadata={"partitionKey": f"k{n}", "n": str(n)})
        for n in range(10)
    ]
    too_big = PublishRequest(topic, b"x" * 5000)
    outcomes = await pubsub.bulk_publish(topic, [*requests[:5], too_big, *requests[5:]])

    assert outcomes[:5] == [None] * 5 and outcomes[6:] == [None] * 5
    assert isinstance(outcomes[5], BackendError)
    await wait_until(lambda: len(received) == 10)
    assert sorted((m.data, m.metadata["n"], m.metadata["__key"]) for m in received) == sorted(
        (f"m{n}".encode(), str(n), f"k{n}") for n in range(10)
    )
    assert await pubsub.bulk_publish(topic, []) == []


async def test_a_message_over_max_message_bytes_fails_the_publish(
    make_pubsub: MakePubSub, topic: str
) -> None:
    pubsub = await make_pubsub(maxMessageBytes="1000")
    with pytest.raises(BackendError):
        await pubsub.publish(PublishRequest(topic, b"x" * 5000))


async def test_concurrent_publishes_each_get_their_own_outcome_and_all_arrive(
    make_pubsub: MakePubSub, topic: str
) -> None:
    pubsub = await make_pubsub(maxMessageBytes="1000", partitionCount="3")
    received: list[Message] = []
    await pubsub.subscribe(SubscribeRequest(topic), recorder(received))
    await asyncio.sleep(1.0)  # the group is joined
    bodies = [b"x" * 5000 if n == 7 else b"%d" % n for n in range(40)]
    outcomes = await asyncio.gather(
        *(pubsub.publish(PublishRequest(topic, body)) for body in bodies), return_exceptions=True
    )
    assert [n for n, outcome in enumerate(outcomes) if outcome is not None] == [7]
    assert isinstance(outcomes[7], BackendError)
    await wait_until(lambda: len(received) == 39)
    assert sorted(m.data for m in received) == sorted(body for n, body in enumerate(bodies) if n != 7)


async def test_topics_are_created_with_partition_count(
    make_pubsub: MakePubSub, kafka_server: KafkaServer, topic: str
) -> None:
    pubsub = await make_pubsub(partitionCount="4", replicationFactor="1")
    await pubsub.publish(PublishRequest(topic, b"m0"))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_server.address)
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert description["error_code"] == 0
    assert len(description["partitions"]) == 4


async def test_unreachable_brokers_fail_init_fast_naming_brokers() -> None:
    pubsub = KafkaPubSub()
    started = time.monotonic()
    with pytest.raises(ComponentInitError) as caught:
        await pubsub.init({"brokers": f"127.0.0.1:{free_port()}", "consumerID": "app"})
    assert caught.value.field == "brokers"
    assert time.monotonic() - started < 3


async def test_a_broker_that_never_answers_fails_init_within_dial_timeout() -> None:
    with socket_that_never_answers() as address:
        pubsub = KafkaPubSub()
        started = time.monotonic()
        with pytest.raises(ComponentInitError) as caught:
            await pubsub.init({"brokers": address, "consumerID": "app", "dialTimeout": "500ms"})
        assert caught.value.field == "brokers"
        assert time.monotonic() - started < 2


async def test_operations_after_close_fail_and_close_is_idempotent(
    make_pubsub: MakePubSub, topic: str
) -> None:
    pubsub = await make_pubsub()
    await pubsub.close()
    await pubsub.close()
    with pytest.raises(BackendError):
        await pubsub.publish(PublishRequest(topic, b"m0"))
    with pytest.raises(BackendError):
        await pubsub.subscribe(SubscribeRequest(topic), recorder([]))


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({"consumerID": "app"}, "brokers", "is required"),
        ({"brokers": "localhost", "consumerID": "app"}, "brokers", "host:port"),
        (
            {"brokers": "b:9092", "consumerID": "app", "authType": "mtls"},
            "authType",
            "supported: none, password",
        ),
        ({"brokers": "b:9092", "consumerID": "app", "initialOffset": "middle"}, "initialOffset", "newest"),
        (
            {"brokers": "b:9092", "consumerID": "app", "authType": "password", "saslUsername": "u"},
            "KafkaMetadata",
            "saslPassword",
        ),
        ({"brokers": "b:9092"}, "KafkaMetadata", "consumerGroup"),
        ({"brokers": "b:9092", "consumerID": "app", "partitionCount": "0"}, "partitionCount", "greater than"),
        (
            {"brokers": "b:9092", "consumerID": "app", "consumeRetryInterval": "soon"},
            "consumeRetryInterval",
            "duration",
        ),
    ],
)
async def test_bad_metadata_names_the_field(raw: dict[str, str], field: str, message: str) -> None:
    with pytest.raises(MetadataError) as caught:
        await KafkaPubSub().init(raw)
    assert caught.value.field == field
    assert message in caught.value.message


def test_metadata_defaults_follow_dapr() -> None:
    settings = decode(
        KafkaMetadata,
        {"brokers": "a:9092, b:9093", "consumerID": "app", "consumeRetryInterval": "250", "version": "2.0.0"},
    )
    assert settings.brokers == ["a:9092", "b:9093"]
    assert settings.group == "app"
    assert settings.consumeRetryInterval.total_seconds() == 0.25  # a bare number is milliseconds
    assert (settings.initialOffset, settings.authType, settings.autoCreateTopics) == ("newest", "none", True)
    assert decode(KafkaMetadata, {"brokers": "a:1", "consumerID": "app", "consumerGroup": "g"}).group == "g"
    options: dict[str, Any] = decode(
        KafkaMetadata,
        {
            "brokers": "a:1",
            "consumerID": "app",
            "authType": "password",
            "saslUsername": "u",
            "saslPassword": "p",
            "saslMechanism": "SHA-512",
            "disableTls": "true",
        },
    ).connection_options()
    assert (options["sasl_mechanism"], options["security_protocol"]) == ("SCRAM-SHA-512", "SASL_PLAINTEXT")


@contextlib.contextmanager
def socket_that_never_answers() -> Iterator[str]:
    """A listening socket that is never read: connects succeed, requests get no answer."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        host, port = listener.getsockname()
        yield f"{host}:{port}"
