"""pubsub.kafka never hangs a shutdown: every wait of ``KafkaSubscription.stop()`` and
``KafkaPubSub.close()`` has a deadline, after which what is stuck is abandoned with a warning.

The broker's side is faked: a consumer whose commits never get an answer (a coordinator that moved,
a group in the middle of a join) and whose ``stop()`` even ignores cancellation, a handler that
ignores cancellation, a producer whose flush never ends."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from components.pubsub import kafka
from components.pubsub.base import Message
from components.pubsub.kafka import KafkaPubSub
from components.pubsub.kafka_consumer import KafkaSubscription, finish_within

TOPIC = "orders"
TP = TopicPartition(TOPIC, 0)


async def _stubborn_wait(released: asyncio.Event) -> None:
    """Wait until ``released``, swallowing every cancellation meanwhile."""
    while not released.is_set():
        try:
            await released.wait()
        except asyncio.CancelledError:
            continue


class StuckConsumer:
    """An AIOKafkaConsumer stand-in: one record on partition 0, then nothing; commits never
    answered; ``stop()`` never finishes and ignores cancellation until ``released``."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.records: list[Any] = [
            SimpleNamespace(
                topic=TOPIC, partition=0, offset=7, timestamp=0, key=None, value=b"{}", headers=[]
            )
        ]
        self.commits = 0
        self.stop_calls = 0

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        if self.records:
            records, self.records = self.records, []
            return {TP: records}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def pause(self, tp: TopicPartition) -> None: ...

    def resume(self, tp: TopicPartition) -> None: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits += 1
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stop_calls += 1
        await _stubborn_wait(self.released)


@pytest.fixture
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(KafkaSubscription, "stop_timeout", 0.2)
    monkeypatch.setattr(KafkaSubscription, "commit_timeout", 0.2)
    monkeypatch.setattr(KafkaSubscription, "leave_timeout", 0.2)
    monkeypatch.setattr(kafka, "_CLOSE_TIMEOUT", 0.2)


async def _wait_for(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


@pytest.mark.usefixtures("short_deadlines")
async def test_stop_is_bounded_when_the_broker_and_the_handler_do_not_answer() -> None:
    consumer = StuckConsumer()
    handler_started = asyncio.Event()
    handler_released = asyncio.Event()

    async def handler(message: Message) -> None:
        handler_started.set()
        await _stubborn_wait(handler_released)

    stopped: list[KafkaSubscription] = []
    subscription = KafkaSubscription(
        cast(AIOKafkaConsumer, consumer),
        TOPIC,
        handler,
        max_in_flight=1,
        retry_interval=0.05,
        start_offsets=None,
        drain_timeout=0.2,
        on_stopped=stopped.append,
    )
    subscription.start()
    await subscription.on_partitions_assigned([TP])
    await asyncio.wait_for(handler_started.wait(), 5)
    # Pretend an earlier record finished, so the stop has something to commit.
    subscription._partitions[TP].commit_to = 7

    began = time.monotonic()
    await asyncio.wait_for(subscription.stop(), 5)
    elapsed = time.monotonic() - began
    try:
        # deliveries 0.2 + grace 0.5, commit 0.2 + 0.5, consumer stop 0.2 + 0.5, tasks <= 0.5
        assert elapsed < 3.0
        assert consumer.commits == 1 and consumer.stop_calls == 1
        assert stopped == [subscription]
        assert subscription.partitions == frozenset()
        await subscription.stop()  # idempotent, and done
    finally:
        handler_released.set()
        consumer.released.set()
        await asyncio.sleep(0.05)


@pytest.mark.usefixtures("short_deadlines")
async def test_revoke_is_bounded_when_the_commit_is_not_answered() -> None:
    consumer = StuckConsumer()
    consumer.records = []

    async def handler(message: Message) -> None: ...

    subscription = KafkaSubscription(
        cast(AIOKafkaConsumer, consumer),
        TOPIC,
        handler,
        max_in_flight=1,
        retry_interval=0.05,
        start_offsets=None,
        drain_timeout=0.2,
    )
    await subscription.on_partitions_assigned([TP])
    subscription._partitions[TP].commit_to = 3
    began = time.monotonic()
    await asyncio.wait_for(subscription.on_partitions_revoked([TP]), 5)
    assert time.monotonic() - began < 2.0
    assert consumer.commits == 1


@pytest.mark.usefixtures("short_deadlines")
async def test_close_is_bounded_when_the_producer_flush_never_ends() -> None:
    released = asyncio.Event()

    class StuckProducer:
        async def stop(self) -> None:
            await _stubborn_wait(released)

    pubsub = KafkaPubSub()
    pubsub._producer = cast(AIOKafkaProducer, StuckProducer())
    began = time.monotonic()
    try:
        await asyncio.wait_for(pubsub.close(), 5)
        assert time.monotonic() - began < 2.0
    finally:
        released.set()
        await asyncio.sleep(0.05)


async def test_finish_within_reports_the_outcome() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    assert await finish_within(asyncio.sleep(0), 1, "nothing")
    assert not await finish_within(fails(), 1, "failing")
    assert not await finish_within(asyncio.sleep(10), 0.05, "slow")

    # Cancelling the caller cancels the work and does not wait for it.
    work = asyncio.Event()
    waiter = asyncio.create_task(finish_within(work.wait(), 10, "cancelled"))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
