"""The subscriber and input bindings paused and resumed (what app health checks do), in process
with the in-memory broker and a real app: a pause holds messages, subscriptions applied while
paused start only on resume, and pause/resume are idempotent."""

from __future__ import annotations

import asyncio

import orjson

from components.pubsub.base import PublishRequest
from components.pubsub.in_memory import InMemoryPubSub
from mesh.resiliency import Resiliency
from services.pubsub.handles import PubSubHandle
from services.pubsub.scopes import TopicScopes
from services.pubsub.subscriber import Subscriber
from services.pubsub.subscriptions import Rule, Subscription, SubscriptionType
from tests.subscriber_app import SubscriberApp


def subscription(topic: str) -> Subscription:
    return Subscription("pubsub", topic, (Rule("", f"/{topic}"),), SubscriptionType.PROGRAMMATIC)


async def publish(broker: InMemoryPubSub, topic: str, n: int) -> None:
    event = {"specversion": "1.0", "id": str(n), "source": "t", "type": "t", "data": {"n": n}}
    await broker.publish(PublishRequest(topic=topic, data=orjson.dumps(event)))


def numbers(app: SubscriberApp, topic: str) -> list[int]:
    return [d.json["data"]["n"] for d in app.received(f"/{topic}")]


async def test_a_paused_subscriber_holds_messages_and_starts_late_subscriptions_on_resume() -> None:
    broker = InMemoryPubSub()
    await broker.init({"consumerID": "subscriber"})
    handle = PubSubHandle("pubsub", broker, frozenset(), TopicScopes.from_metadata({}), {})
    async with SubscriberApp() as app, app.channel() as channel:
        subscriber = Subscriber({"pubsub": handle}, channel, "subscriber", Resiliency())
        try:
            await subscriber.apply([subscription("orders")])
            await publish(broker, "orders", 1)
            await app.wait_for(1, path="/orders", timeout=5)
            await subscriber.pause()
            await subscriber.pause()
            assert subscriber.paused
            await subscriber.apply([subscription("orders"), subscription("late")])
            for n in range(2, 6):
                await publish(broker, "orders", n)
            await publish(broker, "late", 100)  # no consumer of "late" yet: in-memory keeps nothing
            await asyncio.sleep(0.3)
            assert numbers(app, "orders") == [1]
            assert [s.topic for s in subscriber.active] == ["orders"]  # held, not stopped
            await subscriber.resume()
            await subscriber.resume()
            await app.wait_for(5, path="/orders", timeout=5)
            await publish(broker, "late", 101)
            await app.wait_for(1, path="/late", timeout=5)
            await asyncio.sleep(0.2)
            assert sorted(numbers(app, "orders")) == [1, 2, 3, 4, 5]
            assert numbers(app, "late") == [101]
        finally:
            await subscriber.aclose()
            await broker.close()
        await subscriber.pause()  # after close: nothing to do
        await subscriber.resume()
