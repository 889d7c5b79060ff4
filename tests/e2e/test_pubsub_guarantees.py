"""Pub/sub's at-least-once guarantees, proved on real ``l8 run`` processes against a real Redis and a
real Kafka-protocol broker, with a real subscriber app (tests/subscriber_app.py):

* nothing is lost when the app answers RETRY or 500, or is down for a while: the message is
  delivered once the app recovers, or lands in the dead-letter topic when retries run out;
* a message published just before l8 is killed with SIGKILL is delivered after l8 restarts;
* two sidecars of one app id share the messages (each to one of them); two app ids each get all.

Every test runs against both brokers; what differs is only the component in BROKERS.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.subscriber_app import Response, SubscriberApp

pytestmark = pytest.mark.e2e

BROKERS: dict[str, Callable[[pytest.FixtureRequest], tuple[str, dict[str, str]]]] = {
    # Short redelivery timings so a test sees the broker's own redelivery within seconds.
    "redis": lambda request: (
        "pubsub.redis",
        {
            "redisHost": request.getfixturevalue("redis_server").address,
            "processingTimeout": "1s",
            "redeliverInterval": "250ms",
        },
    ),
    "kafka": lambda request: (
        "pubsub.kafka",
        {
            "brokers": request.getfixturevalue("kafka_server").address,
            "partitionCount": "3",
            "sessionTimeout": "2s",
            "heartbeatInterval": "200ms",
            "consumeRetryInterval": "100ms",
        },
    ),
}


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A resources folder holding one pub/sub component named ``pubsub`` for the broker."""
    component_type, metadata = BROKERS[request.param](request)
    folder = tmp_path / "resources"
    write_component(folder, "pubsub", component_type, metadata)
    return folder


@pytest.fixture
def topic() -> str:
    return f"orders-{uuid.uuid4().hex[:10]}"


def subscription(topic: str, route: str = "/orders", **extra: Any) -> dict[str, Any]:
    return {"pubsubname": "pubsub", "topic": topic, "route": route, **extra}


def resiliency(folder: Path, *, max_retries: int, interval: str = "50ms") -> None:
    document = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "delivery"},
        "spec": {
            "policies": {
                "retries": {"quick": {"policy": "constant", "duration": interval, "maxRetries": max_retries}}
            },
            "targets": {"components": {"pubsub": {"inbound": {"retry": "quick"}}}},
        },
    }
    (folder / "resiliency.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")


async def sidecar(l8: L8Launcher, app: SubscriberApp, resources: Path, app_id: str = "orders") -> L8Process:
    """An l8 for ``app``. The app id names the consumer group: unique per test (the topic's suffix),
    so no test waits for another test's group to rebalance."""
    unique = f"{app_id}-{resources.parent.name}"
    process = l8.create(app_id=unique, resources=[resources], args=["--app-port", str(app.port)])
    await asyncio.to_thread(process.start)
    return process


async def subscribed(process: L8Process, *topics: str, within: float = 15.0) -> None:
    """Wait until the sidecar runs consumers for ``topics`` (groups joined: later messages count)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=process.url) as client:
        while True:
            found = (await client.get("/v1.0/metadata")).json().get("subscriptions", [])
            if set(topics) <= {s["topic"] for s in found}:
                await asyncio.sleep(0.3)  # Kafka: partitions assigned after the subscribe call
                return
            assert time.monotonic() < deadline, f"not subscribed to {topics}: {found}"
            await asyncio.sleep(0.05)


async def publish(process: L8Process, topic: str, *events: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=process.url) as client:
        for event in events:
            answer = await client.post(
                f"/v1.0/publish/pubsub/{topic}", json=event, params={"metadata.partitionKey": str(event["n"])}
            )
            assert answer.status_code == 204, answer.text


def numbers(deliveries: list[Any]) -> list[int]:
    return [d.json["data"]["n"] for d in deliveries]


async def test_retry_and_500_answers_are_redelivered_by_the_broker(
    l8: L8Launcher, broker: Path, topic: str
) -> None:
    async with SubscriberApp(subscriptions=[subscription(topic)]) as app:
        app.respond("/orders", [Response.json({"status": "RETRY"}), 500, 200])
        process = await sidecar(l8, app, broker)
        await subscribed(process, topic)
        await publish(process, topic, {"n": 1})
        deliveries = await app.wait_for(3, path="/orders", timeout=15)
        assert numbers(deliveries) == [1, 1, 1]
        assert len({d.json["id"] for d in deliveries}) == 1  # the same event each time
        assert await app.quiet(1.5) == deliveries  # acknowledged after the success: no more


async def test_retries_of_a_resiliency_policy_happen_in_the_sidecar(
    l8: L8Launcher, broker: Path, topic: str
) -> None:
    resiliency(broker, max_retries=5)
    async with SubscriberApp(subscriptions=[subscription(topic)]) as app:
        app.respond("/orders", [500, 503, Response.json({"status": "RETRY"}), 200])
        process = await sidecar(l8, app, broker)
        await subscribed(process, topic)
        await publish(process, topic, {"n": 1})
        deliveries = await app.wait_for(4, path="/orders", timeout=10)
        assert numbers(deliveries) == [1, 1, 1, 1]
        # 50 ms apart, not at the pace of the broker's redelivery
        assert deliveries[-1].arrived - deliveries[0].arrived < 1.0
        assert await app.quiet(1.5) == deliveries


async def test_nothing_is_lost_while_the_app_is_down(l8: L8Launcher, broker: Path, topic: str) -> None:
    async with SubscriberApp(subscriptions=[subscription(topic)]) as app:
        process = await sidecar(l8, app, broker)
        await subscribed(process, topic)
        await app.stop()  # the app goes away; l8 keeps consuming and fails to deliver
        await publish(process, topic, *({"n": n} for n in range(5)))
        await asyncio.sleep(1.5)
        await app.start()  # back on the same port
        deliveries = await app.wait_for(5, path="/orders", timeout=20)
        assert set(numbers(deliveries)) == set(range(5))


async def test_exhausted_retries_land_in_the_dead_letter_topic(
    l8: L8Launcher, broker: Path, topic: str
) -> None:
    resiliency(broker, max_retries=2)
    dead = f"{topic}-dead"
    subscriptions = [subscription(topic, deadLetterTopic=dead), subscription(dead, route="/dead")]
    async with SubscriberApp(subscriptions=subscriptions) as app:
        app.respond("/orders", 500)
        process = await sidecar(l8, app, broker)
        await subscribed(process, topic, dead)
        await publish(process, topic, {"n": 1}, {"n": 2})
        dead_letters = await app.wait_for(2, path="/dead", timeout=15)
        assert sorted(numbers(dead_letters)) == [1, 2]
        assert {d.json["topic"] for d in dead_letters} == {topic}  # the original event, unchanged
        assert len(app.received("/orders")) == 6  # 1 attempt + 2 retries, per message
        await app.quiet(1.0)
        assert len(app.received("/dead")) == 2


async def test_a_message_published_before_sigkill_is_delivered_after_restart(
    l8: L8Launcher, broker: Path, topic: str
) -> None:
    async with SubscriberApp(subscriptions=[subscription(topic)]) as app:
        app.respond("/orders", 200, delay=8)  # l8 takes the messages but does not see an answer
        process = await sidecar(l8, app, broker)
        await subscribed(process, topic)
        await publish(process, topic, *({"n": n} for n in range(3)))
        await app.wait_for(1, path="/orders", timeout=10)  # deliveries are in flight
        process.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(process.wait_exit) == -signal.SIGKILL

        app.respond("/orders", 200)
        before = len(app.received("/orders"))
        await asyncio.to_thread(process.start)
        deadline = time.monotonic() + 20
        while set(numbers(app.received("/orders")[before:])) != set(range(3)):
            assert time.monotonic() < deadline, numbers(app.received("/orders"))
            await asyncio.sleep(0.1)


async def test_two_sidecars_of_one_app_share_the_messages(l8: L8Launcher, broker: Path, topic: str) -> None:
    async with (
        SubscriberApp(subscriptions=[subscription(topic)]) as first_app,
        SubscriberApp(subscriptions=[subscription(topic)]) as second_app,
    ):
        first = await sidecar(l8, first_app, broker, app_id="workers")
        second = await sidecar(l8, second_app, broker, app_id="workers")
        await subscribed(first, topic)
        await subscribed(second, topic)
        await asyncio.sleep(1.0)  # Kafka: the group rebalances over both members
        for n in range(40):
            await publish(first, topic, {"n": n})
            await asyncio.sleep(0.01)
        deadline = time.monotonic() + 20
        while len(first_app.received("/orders")) + len(second_app.received("/orders")) < 40:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        got_first, got_second = (
            numbers(first_app.received("/orders")),
            numbers(second_app.received("/orders")),
        )
        assert sorted(got_first + got_second) == list(range(40))  # each message to one of them
        assert got_first and got_second  # both did some of the work


async def test_two_app_ids_each_get_every_message(l8: L8Launcher, broker: Path, topic: str) -> None:
    async with (
        SubscriberApp(subscriptions=[subscription(topic)]) as billing_app,
        SubscriberApp(subscriptions=[subscription(topic)]) as shipping_app,
    ):
        billing = await sidecar(l8, billing_app, broker, app_id="billing")
        shipping = await sidecar(l8, shipping_app, broker, app_id="shipping")
        await subscribed(billing, topic)
        await subscribed(shipping, topic)
        await publish(billing, topic, *({"n": n} for n in range(10)))
        for app in (billing_app, shipping_app):
            deliveries = await app.wait_for(10, path="/orders", timeout=15)
            assert sorted(numbers(deliveries)) == list(range(10))
            await app.quiet(0.5)
            assert len(app.received("/orders")) == 10


async def test_redis_delivers_what_was_published_before_the_subscriber_first_started(
    l8: L8Launcher, tmp_path: Path, topic: str, request: pytest.FixtureRequest
) -> None:
    """Dapr's pub/sub quickstart started publisher first: a new Redis consumer group starts at ``0``
    (as in Dapr), so orders published before the subscriber's sidecar ever ran are delivered.
    Kafka is left out on purpose: Dapr's ``initialOffset`` defaults to ``newest`` there, and l8's too."""
    component_type, metadata = BROKERS["redis"](request)
    folder = tmp_path / "resources"
    write_component(folder, "pubsub", component_type, metadata)
    publisher = l8.create(app_id=f"checkout-{tmp_path.name}", resources=[folder])
    await asyncio.to_thread(publisher.start)
    await publish(publisher, topic, *({"n": n} for n in range(1, 10)))

    async with SubscriberApp(subscriptions=[subscription(topic)]) as app:
        await sidecar(l8, app, folder, app_id="order-processor")
        deliveries = await app.wait_for(9, path="/orders", timeout=15)
        assert sorted(numbers(deliveries)) == list(range(1, 10))
        assert await app.quiet(0.5) == deliveries
