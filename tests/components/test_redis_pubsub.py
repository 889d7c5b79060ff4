"""pubsub.redis checked in Redis itself (redis-py, no mocks): Dapr's stream layout, when entries are
acknowledged, reclaiming a crashed consumer's entries, trimming, and surviving a Redis restart. The
backend-neutral contract is proven by tests/conformance/test_pubsub_conformance.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta

import pytest
import redis.asyncio

from components.errors import BackendError
from components.metadata import decode
from components.pubsub.base import Message, PublishRequest, SubscribeRequest
from components.pubsub.redis import RedisPubSub, RedisPubSubMetadata
from tests.servers import RedisServer

FAST = {"processingTimeout": "500ms", "redeliverInterval": "100ms"}

MakePubSub = Callable[..., Awaitable[RedisPubSub]]


@pytest.fixture
def topic() -> str:
    return f"redis-pubsub-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def group() -> str:
    return f"group-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def make(redis_server: RedisServer, group: str) -> AsyncIterator[MakePubSub]:
    made: list[RedisPubSub] = []

    async def make(server: RedisServer = redis_server, **metadata: str) -> RedisPubSub:
        pubsub = RedisPubSub()
        await pubsub.init({"redisHost": server.address, "consumerID": group, **FAST, **metadata})
        made.append(pubsub)
        return pubsub

    yield make
    for pubsub in made:
        await pubsub.close()


@pytest.fixture
def own_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A redis-server of the test's own, to restart; ``appendonly`` by indirect parametrization."""
    with RedisServer(appendonly=getattr(request, "param", False)) as server:
        yield server


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def pending(raw: redis.asyncio.Redis, topic: str, group: str) -> int:
    return int((await raw.xpending(topic, group))["pending"])


def recorder(into: list[Message]) -> Callable[[Message], Awaitable[None]]:
    async def handle(message: Message) -> None:
        into.append(message)

    return handle


# -- layout -----------------------------------------------------------------------------------------


async def test_an_entry_holds_data_and_metadata_as_daprd_writes_them(make, raw, topic):
    pubsub = await make()
    await pubsub.publish(PublishRequest(topic, b'{"id":"1"}', metadata={"b": "2", "a": "Zoë"}))
    [(_, fields)] = await raw.xrange(topic)
    assert fields == {b"data": b'{"id":"1"}', b"metadata": '{"a":"Zoë","b":"2"}'.encode()}


async def test_entries_written_by_daprd_are_delivered(make, raw, topic):
    got: list[Message] = []
    pubsub = await make()
    await pubsub.subscribe(SubscribeRequest(topic), recorder(got))
    old = await raw.xadd(topic, {"data": b"from an old daprd"})
    new = await raw.xadd(topic, {"data": b"from daprd", "metadata": b'{"traceparent":"00-ab-cd-01"}'})
    await wait_until(lambda: len(got) == 2)
    assert [(m.data, dict(m.metadata), m.id) for m in got] == [
        (b"from an old daprd", {}, old.decode()),
        (b"from daprd", {"traceparent": "00-ab-cd-01"}, new.decode()),
    ]


async def test_a_new_group_starts_at_the_beginning_of_the_stream_as_in_dapr(make, raw, topic):
    await raw.xadd(topic, {"data": b"history"})
    got: list[Message] = []
    await (await make()).subscribe(SubscribeRequest(topic), recorder(got))
    await raw.xadd(topic, {"data": b"news"})
    await wait_until(lambda: len(got) == 2)
    await asyncio.sleep(0.2)
    assert [m.data for m in got] == [b"history", b"news"]


def test_bare_numbers_are_milliseconds_as_in_dapr():
    settings = decode(
        RedisPubSubMetadata,
        {
            "redisHost": "localhost:6379",
            "consumerID": "app",
            "processingTimeout": "1500",
            "redeliverInterval": "2s",
        },
    )
    assert settings.processingTimeout == timedelta(milliseconds=1500)
    assert settings.redeliverInterval == timedelta(seconds=2)


# -- acknowledgement --------------------------------------------------------------------------------


async def test_an_entry_is_acknowledged_only_after_its_handler_returns(make, raw, topic, group):
    release = asyncio.Event()
    started: list[Message] = []

    async def handle(message: Message) -> None:
        started.append(message)
        await release.wait()

    pubsub = await make()
    await pubsub.subscribe(SubscribeRequest(topic), handle)
    await pubsub.publish(PublishRequest(topic, b"work"))
    await wait_until(lambda: len(started) == 1)
    assert await pending(raw, topic, group) == 1
    release.set()
    deadline = time.monotonic() + 5
    while await pending(raw, topic, group):
        assert time.monotonic() < deadline, "the entry was never acknowledged"
        await asyncio.sleep(0.02)


async def test_a_failed_entry_stays_pending(make, raw, topic, group):
    attempts: list[Message] = []

    async def fail(message: Message) -> None:
        attempts.append(message)
        raise RuntimeError("not done")

    pubsub = await make(processingTimeout="0")  # no redelivery: the entry stays put
    await pubsub.subscribe(SubscribeRequest(topic), fail)
    await pubsub.publish(PublishRequest(topic, b"work"))
    await wait_until(lambda: len(attempts) == 1)
    await asyncio.sleep(0.2)
    assert await pending(raw, topic, group) == 1
    assert len(attempts) == 1


# -- reclaiming -------------------------------------------------------------------------------------


async def test_a_crashed_consumers_entry_is_reclaimed_after_processing_timeout(make, raw, topic, group):
    await raw.xgroup_create(topic, group, id="$", mkstream=True)
    entry_id = await raw.xadd(topic, {"data": b"orphan", "metadata": b"{}"})
    # A consumer reads the entry and dies before acknowledging it.
    assert await raw.xreadgroup(group, "crashed", {topic: ">"}, count=1)
    crashed_at = time.monotonic()
    got: list[Message] = []
    await (await make()).subscribe(SubscribeRequest(topic), recorder(got))
    await wait_until(lambda: len(got) == 1)
    assert time.monotonic() - crashed_at >= 0.45, "reclaimed before processingTimeout"
    assert got[0].id == entry_id.decode() and got[0].data == b"orphan"
    deadline = time.monotonic() + 5
    while await pending(raw, topic, group):
        assert time.monotonic() < deadline, "the reclaimed entry was never acknowledged"
        await asyncio.sleep(0.02)


async def test_a_slow_handler_keeps_its_entry(make, topic):
    attempts: list[Message] = []

    async def slow(message: Message) -> None:
        attempts.append(message)
        await asyncio.sleep(1.5)  # three processingTimeouts

    first, second = await make(), await make()
    await first.subscribe(SubscribeRequest(topic), slow)
    await second.subscribe(SubscribeRequest(topic), slow)
    await first.publish(PublishRequest(topic, b"long job"))
    await wait_until(lambda: len(attempts) == 1)
    await asyncio.sleep(2.0)
    assert len(attempts) == 1, "a running handler's entry was handed out again"


async def test_stop_cancels_a_handler_past_its_timeout_and_leaves_the_entry_pending(make, raw, topic, group):
    cancelled = asyncio.Event()

    async def stuck(message: Message) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    pubsub = await make()
    consumer = await pubsub.subscribe(SubscribeRequest(topic), stuck)
    consumer.stop_timeout = 0.2
    await pubsub.publish(PublishRequest(topic, b"stuck"))
    await wait_until(lambda: bool(consumer._in_flight))
    started = time.monotonic()
    await consumer.stop()
    assert time.monotonic() - started < 2 and cancelled.is_set()
    assert await pending(raw, topic, group) == 1
    # The consumer holding it stays in the group, so the entry can be reclaimed.
    assert consumer.consumer in {c["name"].decode() for c in await raw.xinfo_consumers(topic, group)}


async def test_a_consumer_leaves_its_group_at_stop(make, raw, topic, group):
    got: list[Message] = []
    pubsub = await make()
    consumer = await pubsub.subscribe(SubscribeRequest(topic), recorder(got))
    await pubsub.publish(PublishRequest(topic, b"done"))
    await wait_until(lambda: len(got) == 1)
    deadline = time.monotonic() + 5
    while await pending(raw, topic, group):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await consumer.stop()
    assert await raw.xinfo_consumers(topic, group) == []


async def test_concurrency_caps_the_in_flight_bound(make, topic):
    running, most = 0, 0
    done: list[Message] = []

    async def work(message: Message) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(message)

    pubsub = await make(concurrency="2")
    await pubsub.subscribe(SubscribeRequest(topic, max_in_flight=10), work)
    await asyncio.gather(*(pubsub.publish(PublishRequest(topic, b"%d" % n)) for n in range(30)))
    await wait_until(lambda: len(done) == 30)
    assert most == 2


# -- trimming ---------------------------------------------------------------------------------------


async def test_max_len_approx_trims_the_stream(make, raw, topic):
    pubsub = await make(maxLenApprox="10")
    for n in range(500):
        await pubsub.publish(PublishRequest(topic, b"%d" % n))
    # "~" trims whole stream nodes (100 entries each by default), never below the bound.
    assert 10 <= await raw.xlen(topic) < 250


@pytest.mark.parametrize("also_max_len", [False, True], ids=["ttl", "ttl-and-max-len"])
async def test_stream_ttl_trims_old_entries(make, raw, topic, also_max_len):
    # 150 entries from 1970: the first full stream node of them is past any TTL.
    for n in range(1, 151):
        await raw.xadd(topic, {"data": b"old"}, id=f"{n}-0")
    extra = {"maxLenApprox": "100000"} if also_max_len else {}
    pubsub = await make(streamTTL="1h", **extra)
    await pubsub.publish(PublishRequest(topic, b"new"))
    remaining = await raw.xrange(topic)
    assert len(remaining) < 151 and remaining[-1][1][b"data"] == b"new"


# -- publishes and acks that go together ----------------------------------------------------------


async def test_concurrent_publishes_fail_one_by_one_and_keep_their_order(make, raw, topic):
    pubsub = await make()
    await raw.set("not-a-stream", "x")  # XADD to it fails with WRONGTYPE, inside the same pipeline
    topics = [topic if n % 5 else "not-a-stream" for n in range(50)]
    outcomes = await asyncio.gather(
        *(pubsub.publish(PublishRequest(t, b"%d" % n)) for n, t in enumerate(topics)), return_exceptions=True
    )
    failed = [n for n, outcome in enumerate(outcomes) if outcome is not None]
    assert failed == [n for n, t in enumerate(topics) if t == "not-a-stream"]
    assert all(isinstance(outcomes[n], BackendError) and "WRONGTYPE" in str(outcomes[n]) for n in failed)
    # Each publish that succeeded is in the stream once, in the order they were published.
    assert [fields[b"data"] for _, fields in await raw.xrange(topic)] == [
        b"%d" % n for n, t in enumerate(topics) if t == topic
    ]


async def test_deliveries_that_end_together_are_acknowledged_together(make, raw, topic, group):
    release = asyncio.Event()
    started: list[Message] = []

    async def handle(message: Message) -> None:
        started.append(message)
        await release.wait()

    pubsub = await make(concurrency="20")
    await pubsub.subscribe(SubscribeRequest(topic, max_in_flight=20), handle)
    for n in range(20):
        await pubsub.publish(PublishRequest(topic, b"%d" % n))
    await wait_until(lambda: len(started) == 20)
    assert await pending(raw, topic, group) == 20
    acks_before = int((await raw.info("commandstats")).get("cmdstat_xack", {}).get("calls", 0))
    release.set()
    deadline = time.monotonic() + 5
    while await pending(raw, topic, group):
        assert time.monotonic() < deadline, "entries were never acknowledged"
        await asyncio.sleep(0.02)
    acks = int((await raw.info("commandstats"))["cmdstat_xack"]["calls"]) - acks_before
    assert acks < 20  # one XACK carried several ids


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("own_server", [False, True], ids=["no-persistence", "appendonly"], indirect=True)
async def test_delivery_resumes_after_a_redis_restart(make, own_server):
    got: list[Message] = []
    pubsub = await make(own_server)
    await pubsub.subscribe(SubscribeRequest("orders"), recorder(got))
    await pubsub.publish(PublishRequest("orders", b"before"))
    await wait_until(lambda: len(got) == 1)
    own_server.stop()
    await asyncio.sleep(0.5)  # the read loop meets a dead server for a while
    own_server.start()
    deadline = time.monotonic() + 10
    while True:  # the publisher's first attempts may still meet the old connections
        try:
            await pubsub.publish(PublishRequest("orders", b"after"))
            break
        except BackendError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    await wait_until(lambda: [m.data for m in got][-1:] == [b"after"], seconds=15)


async def test_publish_to_a_stopped_redis_is_a_backend_error(make, own_server):
    pubsub = await make(own_server, redisMaxRetries="0")
    own_server.stop()
    with pytest.raises(BackendError):
        await pubsub.publish(PublishRequest("orders", b"lost"))
