"""The subscriber: running exactly the given subscriptions, the end of every message (ack, dead
letter, redelivery), concurrency and bulk delivery.

Messages travel through the real ``pubsub.in-memory`` broker to the recording app over HTTP.
:class:`RecordingPubSub`, a test double of the backend Protocol, is used where the in-memory
broker cannot show a behaviour: what reaches ``subscribe`` and ``stop``, and that a handler raises
(the in-memory broker swallows it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from components.errors import BackendError
from components.pubsub.base import Feature, Handler, Message, PublishRequest, SubscribeRequest
from components.pubsub.in_memory import InMemoryPubSub
from mesh.resiliency import Resiliency
from services.pubsub.handles import PubSubHandle
from services.pubsub.message_handler import DeliveryFailed
from services.pubsub.scopes import TopicScopes
from services.pubsub.subscriber import DEFAULT_MAX_IN_FLIGHT, Subscriber
from services.pubsub.subscriptions import BulkSubscribe, Rule, Subscription, SubscriptionType
from tests.subscriber_app import Delivery, SubscriberApp

APP_ID = "subscriber"


def subscription(
    topic: str = "orders",
    path: str = "/orders",
    *,
    pubsub: str = "pubsub",
    rules: tuple[Rule, ...] = (),
    dead_letter_topic: str = "",
    bulk: BulkSubscribe | None = None,
    **metadata: str,
) -> Subscription:
    return Subscription(
        pubsub,
        topic,
        (*rules, Rule("", path)) if path else rules,
        SubscriptionType.PROGRAMMATIC,
        metadata=metadata,
        dead_letter_topic=dead_letter_topic,
        bulk=bulk or BulkSubscribe(),
    )


def event(n: int, **fields: Any) -> bytes:
    return orjson.dumps(
        {"specversion": "1.0", "id": f"e{n}", "type": "t", "source": "s", "data": {"n": n}, **fields}
    )


def resiliency(max_retries: int, duration: str = "10ms") -> Resiliency:
    doc = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "r"},
        "spec": {
            "policies": {
                "retries": {"fast": {"policy": "constant", "duration": duration, "maxRetries": max_retries}}
            },
            "targets": {"components": {"pubsub": {"inbound": {"retry": "fast"}}}},
        },
    }
    return Resiliency.from_resources([("Resiliency", doc, "r.yaml")], APP_ID)


# -- the test double -----------------------------------------------------------------------------------


@dataclass
class RecordedConsumer:
    request: SubscribeRequest
    handler: Handler
    stopped: bool = False

    async def stop(self) -> None:
        self.stopped = True


@dataclass
class RecordingPubSub:
    """Records subscribe calls; publish records too (the dead-letter copies), or fails."""

    consumers: list[RecordedConsumer] = field(default_factory=list)
    published: list[PublishRequest] = field(default_factory=list)
    fail_publish: bool = False
    fail_subscribe: bool = False

    async def init(self, metadata: Mapping[str, str]) -> None:
        pass

    def features(self) -> frozenset[Feature]:
        return frozenset()

    async def publish(self, request: PublishRequest) -> None:
        if self.fail_publish:
            raise BackendError("broker down")
        self.published.append(request)

    async def subscribe(self, request: SubscribeRequest, handler: Handler) -> RecordedConsumer:
        if self.fail_subscribe:
            raise BackendError("cannot subscribe")
        consumer = RecordedConsumer(request, handler)
        self.consumers.append(consumer)
        return consumer

    async def close(self) -> None:
        pass

    def consumer(self, topic: str) -> RecordedConsumer:
        [running] = [c for c in self.consumers if c.request.topic == topic and not c.stopped]
        return running


def handle(instance: Any, name: str = "pubsub", **metadata: str) -> PubSubHandle:
    return PubSubHandle(name, instance, frozenset(), TopicScopes.from_metadata(metadata), metadata)


@pytest.fixture
async def app() -> AsyncIterator[SubscriberApp]:
    async with SubscriberApp() as app:
        yield app


@contextlib.asynccontextmanager
async def subscriber_for(
    app: SubscriberApp, *handles: PubSubHandle, policies: Resiliency | None = None
) -> AsyncIterator[Subscriber]:
    async with app.channel(APP_ID) as channel:
        subscriber = Subscriber({h.name: h for h in handles}, channel, APP_ID, policies or Resiliency())
        try:
            yield subscriber
        finally:
            await subscriber.aclose()


@contextlib.asynccontextmanager
async def in_memory(
    app: SubscriberApp, *subscriptions: Subscription, policies: Resiliency | None = None, **metadata: str
) -> AsyncIterator[InMemoryPubSub]:
    broker = InMemoryPubSub()
    await broker.init({"consumerID": APP_ID})
    try:
        async with subscriber_for(app, handle(broker, **metadata), policies=policies) as subscriber:
            await subscriber.apply(subscriptions)
            yield broker
    finally:
        await broker.close()


async def publish(broker: Any, data: bytes, topic: str = "orders", **metadata: str) -> None:
    await broker.publish(PublishRequest(topic=topic, data=data, metadata=metadata))


# -- apply -------------------------------------------------------------------------------------------


async def test_apply_starts_stops_and_keeps(app: SubscriberApp) -> None:
    backend = RecordingPubSub()
    a, b, c = subscription("a", "/a"), subscription("b", "/b"), subscription("c", "/c")
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([a, b])
        assert subscriber.active == [a, b]
        first_a, first_b = backend.consumer("a"), backend.consumer("b")

        changed_b = replace(b, dead_letter_topic="poison")
        await subscriber.apply([a, changed_b, c])
        assert subscriber.active == [a, changed_b, c]
        assert backend.consumer("a") is first_a and not first_a.stopped  # unchanged: left running
        assert first_b.stopped and backend.consumer("b") is not first_b  # changed: restarted

        await subscriber.apply([c])
        assert subscriber.active == [c]
        assert first_a.stopped and backend.consumer("c")
        assert len(backend.consumers) == 4

        await subscriber.apply([c])
        assert len(backend.consumers) == 4
    assert all(consumer.stopped for consumer in backend.consumers)


async def test_subscription_metadata_reaches_the_backend(app: SubscriberApp) -> None:
    backend = RecordingPubSub()
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([subscription(consumerID="group-7", rawPayload="false")])
    assert backend.consumers[0].request.metadata == {"consumerID": "group-7", "rawPayload": "false"}


async def test_a_later_duplicate_is_ignored(app: SubscriberApp) -> None:
    backend = RecordingPubSub()
    first, second = subscription(path="/first"), subscription(path="/second")
    async with subscriber_for(app, handle(backend)) as subscriber:
        with capture_logs() as logs:
            await subscriber.apply([first, second])
        assert subscriber.active == [first]
    assert any(entry["event"] == "duplicate subscription ignored" for entry in logs)


async def test_unknown_pubsub_denied_topic_bad_rule_and_failed_subscribe_are_skipped(
    app: SubscriberApp,
) -> None:
    backend = RecordingPubSub()
    broken = RecordingPubSub(fail_subscribe=True)
    scoped = handle(backend, subscriptionScopes=f"{APP_ID}=orders,widgets")
    wanted = [
        subscription("orders"),
        subscription("payments"),  # not in this app's subscriptionScopes
        subscription("orders", pubsub="nope"),
        subscription("widgets", rules=(Rule("event.type ==", "/w"),)),
        subscription("orders", pubsub="broken"),
    ]
    async with subscriber_for(app, scoped, handle(broken, name="broken")) as subscriber:
        with capture_logs() as logs:
            await subscriber.apply(wanted)
        assert subscriber.active == [wanted[0]]
    messages = {
        (entry["event"], entry.get("topic"), entry.get("pubsub"))
        for entry in logs
        if entry["log_level"] != "info"
    }
    assert messages == {
        (
            "subscription skipped: the component's scopes do not let this app subscribe to the topic",
            "payments",
            "pubsub",
        ),
        ("subscription skipped: no such pub/sub component", "orders", "nope"),
        ("subscription skipped: bad routing rule", "widgets", "pubsub"),
        ("subscription failed to start", "orders", "broken"),
    }


async def test_bad_retry_metadata_skips_the_subscription(app: SubscriberApp) -> None:
    backend = RecordingPubSub()
    async with subscriber_for(app, handle(backend, backOffMaxRetries="lots")) as subscriber:
        with capture_logs() as logs:
            await subscriber.apply([subscription()])
        assert subscriber.active == []
    assert any("backOffMaxRetries" in entry.get("error", "") for entry in logs)


async def test_aclose_stops_everything_and_later_applies_do_nothing(app: SubscriberApp) -> None:
    backend = RecordingPubSub()
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([subscription("a"), subscription("b")])
        await subscriber.aclose()
        assert subscriber.active == [] and all(c.stopped for c in backend.consumers)
        await subscriber.apply([subscription("c")])
        assert subscriber.active == [] and len(backend.consumers) == 2
        await subscriber.aclose()


# -- max_in_flight -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sub_metadata", "component_metadata", "bulk", "expected"),
    [
        ({}, {}, None, DEFAULT_MAX_IN_FLIGHT),
        ({"maxConcurrency": "1"}, {}, None, 1),
        ({}, {"concurrency": "4"}, None, 4),
        ({"maxConcurrency": "2"}, {"concurrency": "4"}, None, 2),
        ({"maxConcurrency": "zero"}, {"concurrency": "4"}, None, 4),
        ({"maxConcurrency": "0"}, {}, None, DEFAULT_MAX_IN_FLIGHT),
        ({}, {}, BulkSubscribe(True, 50, 100), 50),
        ({"maxConcurrency": "1"}, {}, BulkSubscribe(True, 3, 100), 3),
        ({"maxConcurrency": "80"}, {}, BulkSubscribe(True, 50, 100), 80),
    ],
)
async def test_max_in_flight(
    app: SubscriberApp,
    sub_metadata: dict[str, str],
    component_metadata: dict[str, str],
    bulk: Any,
    expected: int,
) -> None:
    backend = RecordingPubSub()
    async with subscriber_for(app, handle(backend, **component_metadata)) as subscriber:
        await subscriber.apply([subscription(bulk=bulk, **sub_metadata)])
    assert backend.consumers[0].request.max_in_flight == expected


async def test_max_in_flight_is_honoured_end_to_end(app: SubscriberApp) -> None:
    app.respond("/orders", 200, delay=0.2)
    async with in_memory(app, subscription(maxConcurrency="2")) as broker:
        for n in range(4):
            await publish(broker, event(n))
        first = await app.wait_for(2, path="/orders")
        await asyncio.sleep(0.1)
        assert len(app.received("/orders")) == 2  # the third waits for a free slot
        deliveries = await app.wait_for(4, path="/orders")
    assert deliveries[2].arrived - first[0].arrived >= 0.15
    assert [d.json["id"] for d in deliveries[:2]] == ["e0", "e1"]


# -- the end of a message --------------------------------------------------------------------------


async def test_success_acks_without_a_dead_letter(app: SubscriberApp) -> None:
    backend = RecordingPubSub()
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([subscription(dead_letter_topic="poison")])
        await backend.consumer("orders").handler(Message("orders", event(1)))
    assert backend.published == []
    assert len(app.received("/orders")) == 1


@pytest.mark.parametrize("answer", [{"status": "DROP"}, 404])
async def test_drop_goes_to_the_dead_letter_topic(app: SubscriberApp, answer: Any) -> None:
    app.respond("/orders", answer)
    stored = event(1)
    async with in_memory(
        app, subscription(dead_letter_topic="poison"), subscription("poison", "/poison")
    ) as broker:
        await publish(broker, stored, source="test")
        [dead] = await app.wait_for(1, path="/poison")
    assert dead.body == stored and dead.headers["source"] == "test"
    assert len(app.received("/orders")) == 1  # a drop is not retried


async def test_drop_without_a_dead_letter_topic_is_acked(app: SubscriberApp) -> None:
    app.respond("/orders", {"status": "DROP"})
    backend = RecordingPubSub()
    async with subscriber_for(app, handle(backend), policies=resiliency(3)) as subscriber:
        await subscriber.apply([subscription()])
        with capture_logs() as logs:
            await backend.consumer("orders").handler(Message("orders", event(1)))  # returns: acked
    assert len(app.received("/orders")) == 1
    assert [entry["event"] for entry in logs] == ["message dropped"]


async def test_retries_then_dead_letter_when_exhausted(app: SubscriberApp) -> None:
    app.respond("/orders", 500)
    stored = event(1)
    policies = resiliency(max_retries=2)
    async with in_memory(
        app, subscription(dead_letter_topic="poison"), subscription("poison", "/poison"), policies=policies
    ) as broker:
        with capture_logs() as logs:
            await publish(broker, stored)
            [dead] = await app.wait_for(1, path="/poison")
    assert dead.body == stored
    assert len(app.received("/orders")) == 3  # one attempt, two retries
    [failure] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert failure["event"] == "delivery failed, message sent to the dead-letter topic"
    assert "500" in failure["reason"]


async def test_retries_until_the_app_recovers(app: SubscriberApp) -> None:
    app.respond("/orders", [500, {"status": "RETRY"}, 200])
    backend = RecordingPubSub()
    async with subscriber_for(app, handle(backend), policies=resiliency(max_retries=5)) as subscriber:
        await subscriber.apply([subscription(dead_letter_topic="poison")])
        await backend.consumer("orders").handler(Message("orders", event(1)))
    assert len(app.received("/orders")) == 3 and backend.published == []


async def test_component_metadata_retry_applies_without_a_resiliency(app: SubscriberApp) -> None:
    app.respond("/orders", [503, 200])
    backend = RecordingPubSub()
    async with subscriber_for(
        app, handle(backend, backOffMaxRetries="1", backOffDuration="10ms")
    ) as subscriber:
        await subscriber.apply([subscription()])
        await backend.consumer("orders").handler(Message("orders", event(1)))
    assert len(app.received("/orders")) == 2


async def test_no_dead_letter_topic_raises_so_the_broker_redelivers(app: SubscriberApp) -> None:
    app.respond("/orders", 500)
    backend = RecordingPubSub()
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([subscription()])
        with capture_logs() as logs, pytest.raises(DeliveryFailed, match="the app answered 500"):
            await backend.consumer("orders").handler(Message("orders", event(1), id="7-0"))
    assert len(app.received("/orders")) == 1  # no policy: one attempt, Dapr's default
    assert [
        entry for entry in logs if entry["log_level"] in ("warning", "error")
    ] == []  # the backend logs it


@pytest.mark.parametrize("data", [b"not json", event(1)])
async def test_unreadable_event_or_failing_rule_raises_without_dead_letter(
    app: SubscriberApp, data: bytes
) -> None:
    backend = RecordingPubSub()
    routed = subscription(rules=(Rule("event.data.missing == 1", "/never"),))
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([routed])
        with pytest.raises(DeliveryFailed):
            await backend.consumer("orders").handler(Message("orders", data))
    assert app.received() == []


async def test_a_failed_dead_letter_publish_raises(app: SubscriberApp) -> None:
    app.respond("/orders", {"status": "DROP"})
    backend = RecordingPubSub(fail_publish=True)
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([subscription(dead_letter_topic="poison")])
        with pytest.raises(DeliveryFailed, match="could not be sent to dead-letter topic 'poison'"):
            await backend.consumer("orders").handler(Message("orders", event(1)))


async def test_dead_letter_copy_keeps_bytes_metadata_and_content_type(app: SubscriberApp) -> None:
    app.respond("/orders", 404)
    backend = RecordingPubSub()
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([subscription(dead_letter_topic="poison")])
        message = Message("orders", event(1), {"k": "v"}, content_type="application/json")
        await backend.consumer("orders").handler(message)
    assert backend.published == [
        PublishRequest(topic="poison", data=event(1), content_type="application/json", metadata={"k": "v"})
    ]


async def test_expired_and_unrouted_events_are_acked_and_dead_lettered(app: SubscriberApp) -> None:
    backend = RecordingPubSub()
    routed = subscription(
        path="", rules=(Rule('event.type == "widget"', "/widgets"),), dead_letter_topic="poison"
    )
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([routed])
        handler = backend.consumer("orders").handler
        await handler(Message("orders", event(1, expiration="2000-01-01T00:00:00Z", type="widget")))
        await handler(Message("orders", event(2, type="gadget")))
        await handler(Message("orders", event(3, type="widget")))
    assert [orjson.loads(p.data)["id"] for p in backend.published] == ["e1", "e2"]
    assert [d.json["id"] for d in app.received("/widgets")] == ["e3"]


async def test_routing_rules_pick_the_path(app: SubscriberApp) -> None:
    rules = (Rule("event.data.n > 10", "/big"), Rule('event.type == "special"', "special"))
    async with in_memory(app, subscription(path="/default", rules=rules)) as broker:
        await publish(broker, event(50))
        await publish(broker, event(1, type="special"))
        await publish(broker, event(2))
        await app.wait_for(3)
    assert {d.path: d.json["id"] for d in app.received()} == {
        "/big": "e50",
        "/special": "e1",
        "/default": "e2",
    }


# -- bulk subscribe --------------------------------------------------------------------------------


def statuses(delivery: Delivery, decide: Any) -> dict[str, Any]:
    return {
        "statuses": [
            {"entryId": entry["entryId"], "status": status}
            for entry in delivery.json["entries"]
            if (status := decide(entry)) is not None
        ]
    }


async def test_bulk_batches_by_count_and_by_time(app: SubscriberApp) -> None:
    app.respond_with("/orders", lambda d: statuses(d, lambda entry: "SUCCESS"))
    bulk = BulkSubscribe(True, max_messages_count=3, max_await_duration_ms=150)
    async with in_memory(app, subscription(bulk=bulk)) as broker:
        for n in range(7):
            await publish(broker, event(n), tag=f"t{n}")
        full = await app.wait_for(2, path="/orders")
        assert [len(d.json["entries"]) for d in full] == [3, 3]
        [*_, last] = await app.wait_for(3, path="/orders", timeout=2)
    assert len(last.json["entries"]) == 1
    assert last.arrived - full[1].arrived >= 0.1  # the partial batch waited for maxAwaitDurationMs
    body = full[0].json
    assert full[0].headers["Content-Type"] == "application/json"
    assert (body["type"], body["topic"], body["pubsubname"]) == (
        "com.dapr.event.sent.bulk",
        "orders",
        "pubsub",
    )
    first = body["entries"][0]
    assert first["contentType"] == "application/cloudevents+json"
    assert first["event"] == orjson.loads(event(0))
    assert first["metadata"] == {"tag": "t0"}
    every = [entry["event"]["id"] for d in app.received("/orders") for entry in d.json["entries"]]
    assert sorted(every) == [f"e{n}" for n in range(7)]


async def test_bulk_per_entry_statuses(app: SubscriberApp) -> None:
    verdicts = {0: "SUCCESS", 1: "DROP", 2: "RETRY", 3: None, 4: "", 5: "bogus"}
    app.respond_with("/orders", lambda d: statuses(d, lambda entry: verdicts[entry["event"]["data"]["n"]]))
    backend = RecordingPubSub()
    bulk = BulkSubscribe(True, max_messages_count=6, max_await_duration_ms=1000)
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([subscription(bulk=bulk)])
        handler = backend.consumer("orders").handler
        results = await asyncio.gather(
            *(handler(Message("orders", event(n))) for n in range(6)), return_exceptions=True
        )
    assert len(app.received("/orders")) == 1
    assert results[0] is None and results[1] is None  # SUCCESS, DROP: acked
    assert all(isinstance(r, DeliveryFailed) for r in results[2:])  # RETRY, missing, empty, unknown


async def test_bulk_drop_and_exhausted_entries_go_to_the_dead_letter_topic(app: SubscriberApp) -> None:
    verdicts = {0: "SUCCESS", 1: "DROP", 2: "RETRY"}
    app.respond_with("/orders", lambda d: statuses(d, lambda entry: verdicts[entry["event"]["data"]["n"]]))
    backend = RecordingPubSub()
    bulk = BulkSubscribe(True, max_messages_count=3, max_await_duration_ms=1000)
    async with subscriber_for(app, handle(backend), policies=resiliency(max_retries=2)) as subscriber:
        await subscriber.apply([subscription(bulk=bulk, dead_letter_topic="poison")])
        handler = backend.consumer("orders").handler
        await asyncio.gather(*(handler(Message("orders", event(n))) for n in range(3)))
    requests = app.received("/orders")
    assert [len(d.json["entries"]) for d in requests] == [3, 1, 1]  # retries resend only entry 2
    assert {orjson.loads(p.data)["id"] for p in backend.published} == {"e1", "e2"}


@pytest.mark.parametrize(
    ("answer", "acked"),
    [(404, True), (500, False), ({"not": "statuses"}, False), (200, False)],
)
async def test_bulk_whole_batch_answers(app: SubscriberApp, answer: Any, acked: bool) -> None:
    app.respond("/orders", answer)
    backend = RecordingPubSub()
    bulk = BulkSubscribe(True, max_messages_count=2, max_await_duration_ms=1000)
    async with subscriber_for(app, handle(backend)) as subscriber:
        await subscriber.apply([subscription(bulk=bulk)])
        handler = backend.consumer("orders").handler
        results = await asyncio.gather(
            *(handler(Message("orders", event(n))) for n in range(2)), return_exceptions=True
        )
    if acked:
        assert results == [None, None]
    else:
        assert all(isinstance(r, DeliveryFailed) for r in results)


async def test_bulk_raw_payload_entries_are_base64(app: SubscriberApp) -> None:
    app.respond_with("/orders", lambda d: statuses(d, lambda entry: "SUCCESS"))
    bulk = BulkSubscribe(True, max_messages_count=2, max_await_duration_ms=1000)
    async with in_memory(app, subscription(bulk=bulk, rawPayload="true")) as broker:
        await publish(broker, b"\x00raw-1")
        await publish(broker, b"raw-2")
        [delivery] = await app.wait_for(1, path="/orders")
    entries = delivery.json["entries"]
    assert [base64.b64decode(e["event"]) for e in entries] == [b"\x00raw-1", b"raw-2"]
    assert {e["contentType"] for e in entries} == {"application/octet-stream"}


async def test_bulk_entries_to_different_routes_go_in_separate_requests(app: SubscriberApp) -> None:
    for path in ("/big", "/small"):
        app.respond_with(path, lambda d: statuses(d, lambda entry: "SUCCESS"))
    bulk = BulkSubscribe(True, max_messages_count=4, max_await_duration_ms=1000)
    routed = subscription(path="/small", rules=(Rule("event.data.n > 1", "/big"),), bulk=bulk)
    async with in_memory(app, routed) as broker:
        for n in range(4):
            await publish(broker, event(n))
        await app.wait_for(2)
    assert sorted((d.path, len(d.json["entries"])) for d in app.received()) == [("/big", 2), ("/small", 2)]


async def test_stopping_a_bulk_subscription_sends_what_is_pending(app: SubscriberApp) -> None:
    app.respond_with("/orders", lambda d: statuses(d, lambda entry: "SUCCESS"))
    bulk = BulkSubscribe(True, max_messages_count=100, max_await_duration_ms=60_000)
    async with in_memory(app, subscription(bulk=bulk)) as broker:
        await publish(broker, event(1))
        await asyncio.sleep(0.05)
        assert app.received() == []
    [delivery] = app.received("/orders")  # sent at stop, not after a minute
    assert len(delivery.json["entries"]) == 1
