"""Delivering one message to the app (§4.5): the response table row by row, the request the app
gets (body, headers, trace context), rawPayload envelopes, expiry and unreadable events.

Everything goes over real HTTP to the recording app; messages travel through the real
``pubsub.in-memory`` broker.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from structlog.testing import capture_logs

from components.pubsub.base import PublishRequest
from components.pubsub.in_memory import InMemoryPubSub
from mesh.app_channel import AppChannel
from mesh.resiliency import Resiliency
from services.pubsub.delivery import (
    DeliveryResult,
    Outcome,
    deliver,
    delivery_headers,
    interpret,
    is_expired,
    trace_headers,
)
from services.pubsub.handles import PubSubHandle
from services.pubsub.scopes import TopicScopes
from services.pubsub.subscriber import Subscriber
from services.pubsub.subscriptions import Rule, Subscription, SubscriptionType
from tests.servers import free_port
from tests.subscriber_app import Response, SubscriberApp

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def cloud_event(data: Any = None, **fields: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "checkout",
        "type": "com.dapr.event.sent",
        "datacontenttype": "application/json",
        "topic": "orders",
        "pubsubname": "pubsub",
        "data": data if data is not None else {"n": 1},
    }
    event.update(fields)
    return event


def subscription(
    topic: str = "orders", path: str = "/orders", *, dead_letter_topic: str = "", **metadata: str
) -> Subscription:
    return Subscription(
        "pubsub",
        topic,
        (Rule("", path),),
        SubscriptionType.PROGRAMMATIC,
        metadata=metadata,
        dead_letter_topic=dead_letter_topic,
    )


@pytest.fixture
async def app() -> AsyncIterator[SubscriberApp]:
    async with SubscriberApp() as app:
        yield app


@contextlib.asynccontextmanager
async def running(app: SubscriberApp, *subscriptions: Subscription) -> AsyncIterator[InMemoryPubSub]:
    broker = InMemoryPubSub()
    await broker.init({"consumerID": "subscriber"})
    handle = PubSubHandle("pubsub", broker, frozenset(), TopicScopes.from_metadata({}), {})
    async with app.channel() as channel:
        subscriber = Subscriber({"pubsub": handle}, channel, "subscriber", Resiliency())
        await subscriber.apply(subscriptions)
        try:
            yield broker
        finally:
            await subscriber.aclose()
            await broker.close()


async def publish(
    broker: InMemoryPubSub, data: bytes | Mapping[str, Any], topic: str = "orders", **metadata: str
) -> None:
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    await broker.publish(PublishRequest(topic=topic, data=body, metadata=metadata))


# -- the response table ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (200, Outcome.SUCCESS),  # 2xx, empty body
        (204, Outcome.SUCCESS),
        (Response(200, b"thanks", "text/plain"), Outcome.SUCCESS),  # 2xx, non-JSON body
        (Response(200, b"{not json", "application/json"), Outcome.SUCCESS),
        ({}, Outcome.SUCCESS),  # 2xx JSON without status
        ({"other": 1}, Outcome.SUCCESS),
        ({"status": ""}, Outcome.SUCCESS),
        ({"status": None}, Outcome.SUCCESS),
        ({"status": 3}, Outcome.SUCCESS),  # Go fails to decode it: the body is ignored
        (Response.json([1, 2]), Outcome.SUCCESS),
        ({"status": "SUCCESS"}, Outcome.SUCCESS),
        ({"status": "RETRY"}, Outcome.RETRY),
        ({"status": "DROP"}, Outcome.DROP),
        ({"Status": "DROP"}, Outcome.DROP),  # Go matches JSON keys case-insensitively
        ({"status": "success"}, Outcome.RETRY),  # unknown: case-sensitive
        ({"status": "drop"}, Outcome.RETRY),
        ({"status": "OK"}, Outcome.RETRY),
        (Response.json({"status": "DROP"}, status=202), Outcome.DROP),
        (Response.json({"status": "RETRY"}, status=201), Outcome.RETRY),
        (404, Outcome.DROP),
        (Response.json({"status": "SUCCESS"}, status=404), Outcome.DROP),
        (400, Outcome.RETRY),
        (302, Outcome.RETRY),
        (409, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (Response.json({"status": "SUCCESS"}, status=500), Outcome.RETRY),
    ],
)
async def test_response_table(app: SubscriberApp, answer: Any, outcome: Outcome) -> None:
    app.respond("/orders", answer)
    async with app.channel() as channel:
        result = await deliver(channel, "/orders", b"{}", {"Content-Type": "application/cloudevents+json"})
    assert result.outcome is outcome
    assert result.status == (
        answer.status if isinstance(answer, Response) else answer if isinstance(answer, int) else 200
    )


async def test_no_answer_is_a_retry_without_status() -> None:
    channel = AppChannel("a", free_port())  # nothing listens there
    await channel.start()
    try:
        result = await deliver(channel, "/orders", b"{}", {})
    finally:
        await channel.aclose()
    assert result.outcome is Outcome.RETRY and result.status is None and "did not answer" in result.detail


def test_interpret_keeps_a_reason_for_failures() -> None:
    assert interpret(500, b"boom") == DeliveryResult(Outcome.RETRY, 500, "the app answered 500: boom")
    assert "unknown status 'nope'" in interpret(200, b'{"status":"nope"}').detail


# -- what the app receives -------------------------------------------------------------------------


async def test_the_stored_bytes_arrive_as_they_are(app: SubscriberApp) -> None:
    stored = b'{ "specversion" : "1.0",  "id":"x", "data" : {"z": 1, "a": [1,2]} }'
    async with running(app, subscription()) as broker:
        await publish(broker, stored)
        [delivery] = await app.wait_for(1, path="/orders")
    assert delivery.method == "POST"
    assert delivery.body == stored
    assert delivery.headers["Content-Type"] == "application/cloudevents+json"


async def test_headers_carry_broker_metadata_pubsubname_and_trace(app: SubscriberApp) -> None:
    event = cloud_event(traceparent=PARENT, tracestate="congo=t61rcWkgMzE")
    metadata = {
        "x-order-kind": "express",
        "kafka-key": "k1",
        "bad name": "skipped",
        "x-multiline": "a\r\nInjected: yes",
        "x-unicode": "caf\u00e9",
        "content-type": "text/evil",
        "traceparent": "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01",
    }
    async with running(app, subscription()) as broker:
        await publish(broker, event, **metadata)
        [delivery] = await app.wait_for(1, path="/orders")
    headers = delivery.headers
    assert headers["x-order-kind"] == "express"
    assert headers["kafka-key"] == "k1"
    assert "bad name" not in headers
    assert "x-multiline" not in headers and "Injected" not in headers
    assert "x-unicode" not in headers
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert headers["pubsubname"] == "pubsub"
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id != "00f067aa0ba902b7" and len(span_id) == 16
    assert headers["tracestate"] == "congo=t61rcWkgMzE"


def test_trace_context_from_traceid_or_fresh() -> None:
    child = trace_headers({"traceid": PARENT})["traceparent"]
    assert child.split("-")[1] == TRACE_ID
    for event in ({}, {"traceparent": "garbage"}, {"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}):
        fresh = trace_headers(event)
        version, trace_id, span_id, _ = fresh["traceparent"].split("-")
        assert version == "00" and len(trace_id) == 32 and trace_id != "0" * 32 and len(span_id) == 16
        assert "tracestate" not in fresh
    two = {trace_headers({})["traceparent"] for _ in range(5)}
    assert len(two) == 5


def test_delivery_headers_never_let_metadata_override_ours() -> None:
    headers = delivery_headers(
        {"pubsubname": "evil", "Content-Type": "x", "dapr-api-token": "t", "Host": "h", "ok": "1"},
        "pubsub",
        {},
        "application/cloudevents+json",
    )
    assert headers["pubsubname"] == "pubsub"
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert {k.lower() for k in headers} == {"pubsubname", "content-type", "ok", "traceparent"}


async def test_app_api_token_is_sent(app: SubscriberApp) -> None:
    async with app.channel(app_api_token="s3cret") as channel:
        await deliver(channel, "/orders", b"{}", {})
    [delivery] = app.received("/orders")
    assert delivery.headers["dapr-api-token"] == "s3cret"


async def test_raw_payload_gets_a_fresh_envelope(app: SubscriberApp) -> None:
    raw = b"\x00\x01 not json \xff"
    async with running(app, subscription(rawPayload="true")) as broker:
        await publish(broker, raw, traceparent=PARENT)
        [delivery] = await app.wait_for(1, path="/orders")
    envelope = delivery.json
    assert delivery.headers["Content-Type"] == "application/cloudevents+json"
    assert base64.b64decode(envelope.pop("data_base64")) == raw
    assert len(envelope.pop("id")) == 36
    assert envelope == {
        "specversion": "1.0",
        "datacontenttype": "application/octet-stream",
        "source": "Dapr",
        "type": "com.dapr.event.sent",
        "topic": "orders",
        "pubsubname": "pubsub",
        "traceparent": PARENT,
        "traceid": PARENT,
    }
    assert delivery.headers["traceparent"].split("-")[1] == TRACE_ID


async def test_raw_payload_of_a_cloud_event_is_still_wrapped(app: SubscriberApp) -> None:
    event = cloud_event()
    async with running(app, subscription(rawPayload="True")) as broker:
        await publish(broker, event)
        [delivery] = await app.wait_for(1, path="/orders")
    assert orjson.loads(base64.b64decode(delivery.json["data_base64"])) == event


# -- messages that are not delivered -----------------------------------------------------------------


def test_expiry() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert is_expired({"expiration": "2029-12-31T23:59:59Z"}, now)
    assert is_expired({"expiration": "2029-12-31T23:59:59.999999999Z"}, now)
    assert not is_expired({"expiration": "2030-01-01T00:00:01Z"}, now)
    assert is_expired({"expiration": "2030-01-01T01:00:00+02:00"}, now)  # 23:00 UTC the day before
    assert not is_expired({}, now)
    assert not is_expired({"expiration": "whenever"}, now)  # unreadable: never expires, as in daprd
    assert not is_expired({"expiration": 12}, now)


async def test_an_expired_event_is_not_delivered(app: SubscriberApp) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    async with running(app, subscription()) as broker:
        with capture_logs() as logs:
            await publish(broker, cloud_event(id="old", expiration=past))
            await publish(broker, cloud_event(id="fresh", expiration=future))
            [delivery] = await app.wait_for(1, path="/orders")
            await app.quiet(0.1)
    assert delivery.json["id"] == "fresh"
    assert app.received() == [delivery]
    [dropped] = [entry for entry in logs if entry["event"] == "message dropped"]
    assert dropped["event_id"] == "old" and "expired" in dropped["reason"]


async def test_an_expired_event_goes_to_the_dead_letter_topic(app: SubscriberApp) -> None:
    past = "2001-01-01T00:00:00Z"
    stored = orjson.dumps(cloud_event(id="old", expiration=past))
    # The dead-letter copy is expired too: read it raw, or it would be dropped again (as in daprd).
    poison = subscription("poison", "/poison", rawPayload="true")
    async with running(app, subscription(dead_letter_topic="poison"), poison) as broker:
        await publish(broker, stored, origin="test")
        [dead] = await app.wait_for(1, path="/poison")
    assert base64.b64decode(dead.json["data_base64"]) == stored
    assert dead.headers["origin"] == "test"
    assert app.received("/orders") == []


async def test_non_json_bytes_without_raw_payload_are_a_failure(app: SubscriberApp) -> None:
    poison = subscription("poison", "/poison", rawPayload="true")
    async with running(app, subscription(dead_letter_topic="poison"), poison) as broker:
        with capture_logs() as logs:
            await publish(broker, b"plain text, not an event")
            await publish(broker, b"[1, 2, 3]")
            dead = await app.wait_for(2, path="/poison")
    copies = sorted(base64.b64decode(d.json["data_base64"]) for d in dead)
    assert copies == [b"[1, 2, 3]", b"plain text, not an event"]
    assert app.received("/orders") == []
    failures = [entry for entry in logs if entry["event"].startswith("delivery failed")]
    assert len(failures) == 2 and all(entry["log_level"] == "warning" for entry in failures)
