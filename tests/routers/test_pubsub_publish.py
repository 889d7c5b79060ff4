"""Publish and bulk publish through the HTTP API, checked at the broker: each test subscribes
straight on the live component instance and asserts the exact bytes the publish put there (the
CloudEvent envelope of §4.1, or the raw body). Runs against the in-memory and the Redis brokers."""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from components.pubsub.base import Message, SubscribeRequest
from tests.routers.conftest import JSON, Sidecar, StartSidecar, assert_error, component, detail

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")
ENVELOPE_KEYS = {
    "datacontenttype",
    "id",
    "pubsubname",
    "source",
    "specversion",
    "time",
    "topic",
    "traceid",
    "traceparent",
    "tracestate",
    "type",
}
PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{PARENT_TRACE}-00f067aa0ba902b7-01"
RICH = ["ResourceInfo", "ErrorInfo"]


def _redis(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"redisHost": request.getfixturevalue("redis_server").address}


BROKERS: dict[str, tuple[str, Callable[[pytest.FixtureRequest], dict[str, str]]]] = {
    "in-memory": ("pubsub.in-memory", lambda request: {}),
    "redis": ("pubsub.redis", _redis),
}


@pytest.fixture(params=list(BROKERS))
def broker(request: pytest.FixtureRequest) -> Callable[..., str]:
    """``broker(name, **metadata)``: a pub/sub component document of this test's broker type."""
    kind, metadata = BROKERS[request.param]

    def make(name: str = "pubsub", **extra: str) -> str:
        return component(name, kind, **metadata(request), **extra)

    return make


@dataclass
class Captured:
    queue: asyncio.Queue[Message]

    async def next(self) -> Message:
        return await asyncio.wait_for(self.queue.get(), 5.0)

    async def envelope(self) -> dict[str, Any]:
        message = await self.next()
        event: dict[str, Any] = orjson.loads(message.data)
        assert list(event) == sorted(event), "envelope keys are sorted, as Go writes a map"
        return event

    async def nothing(self, wait: float = 0.3) -> None:
        await asyncio.sleep(wait)
        assert self.queue.empty(), self.queue.get_nowait()


async def capture(sidecar: Sidecar, topic: str, pubsub: str = "pubsub") -> Captured:
    """What reaches the broker on ``topic`` from now on."""
    queue: asyncio.Queue[Message] = asyncio.Queue()

    async def handler(message: Message) -> None:
        queue.put_nowait(message)

    instance = sidecar.app.state.runtime.components.of("pubsub")[pubsub].instance
    await instance.subscribe(SubscribeRequest(topic), handler)
    return Captured(queue)


def new_topic() -> str:
    return f"orders-{uuid.uuid4().hex[:8]}"


async def publish(sidecar: Sidecar, topic: str, body: bytes, *, method: str = "POST", **kwargs: Any) -> None:
    response = await sidecar.request(method, f"/v1.0/publish/pubsub/{topic}", content=body, **kwargs)
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert "content-type" not in response.headers


def assert_time_is_now(text: str) -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", text), text
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=5)


# -- the envelope ----------------------------------------------------------------------------------


async def test_json_body_is_the_data_with_numbers_exactly_as_sent(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    body = b'{"orderId": 123456789012345678901234567890, "price": 1.10, "tags": ["a"], "n": -0.0}'
    await publish(sidecar, topic, body, headers={"content-type": JSON})
    message = await captured.next()
    assert message.topic == topic
    assert body in message.data  # spliced, not re-serialised
    event = orjson.loads(message.data)
    assert set(event) == ENVELOPE_KEYS | {"data"}
    assert UUID4.fullmatch(event["id"])
    assert event["source"] == sidecar.app_id
    assert event["type"] == "com.dapr.event.sent"
    assert event["specversion"] == "1.0"
    assert event["datacontenttype"] == JSON
    assert event["topic"] == topic
    assert event["pubsubname"] == "pubsub"
    assert TRACEPARENT.fullmatch(event["traceparent"])
    assert event["traceid"] == event["traceparent"]
    assert event["tracestate"] == ""
    assert_time_is_now(event["time"])
    assert event["data"]["tags"] == ["a"]


@pytest.mark.parametrize(
    ("content_type", "body", "field", "data", "datacontenttype"),
    [
        ("application/json", b"{not json", "data", "{not json", "application/json"),
        ("application/json; charset=utf-8", b'{"a": 1}', "data", {"a": 1}, "application/json; charset=utf-8"),
        ("APPLICATION/JSON", b"[1, 2]", "data", [1, 2], "APPLICATION/JSON"),
        ("application/json", b"", "data", "", "application/json"),
        ("application/json", b'{"a": 1} trailing', "data", {"a": 1}, "application/json"),
        (None, b"hello", "data", "hello", "text/plain"),
        ("text/plain", b"caf\xc3\xa9", "data", "café", "text/plain"),
        ("application/xml", b"<root/>", "data", "<root/>", "application/xml"),
        ("application/vnd.api+json", b'{"a": 1}', "data", '{"a": 1}', "application/vnd.api+json"),
        (
            "application/x-www-form-urlencoded",
            b"a=1&b=2",
            "data",
            "a=1&b=2",
            "application/x-www-form-urlencoded",
        ),
        ("application/octet-stream", b"\x00\xff\x10", "data_base64", "AP8Q", "application/octet-stream"),
        (
            "application/cloudevents+protobuf",
            b"\x0a\x01",
            "data_base64",
            "CgE=",
            "application/cloudevents+protobuf",
        ),
    ],
)
async def test_data_by_content_type(
    start_sidecar: StartSidecar,
    broker: Callable[..., str],
    content_type: str | None,
    body: bytes,
    field: str,
    data: Any,
    datacontenttype: str,
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    headers = {"content-type": content_type} if content_type else {}
    await publish(sidecar, topic, body, headers=headers)
    event = await captured.envelope()
    assert set(event) == ENVELOPE_KEYS | {field}
    assert event[field] == data
    assert event["datacontenttype"] == datacontenttype


async def test_a_number_beyond_a_double_is_kept_digit_for_digit(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    body = b"1" + b"0" * 400
    await publish(sidecar, topic, body, headers={"content-type": JSON})
    assert b'{"data":' + body + b',"datacontenttype":"application/json",' in (await captured.next()).data


async def test_user_cloudevent_is_kept_with_topic_and_pubsub_overwritten(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    event = {
        "id": "my-id",
        "source": "my-source",
        "type": "my.type",
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "data": {"price": "PRICE"},
        "topic": "elsewhere",
        "pubsubname": "other",
        "traceid": "my-trace",
        "tracestate": "s=1",
        "time": "2020-01-01T00:00:00Z",
        "extension": 7,
    }
    body = orjson.dumps(event).replace(b'"PRICE"', b"1.10")
    await publish(sidecar, topic, body, headers={"content-type": "application/cloudevents+json"})
    raw = (await captured.next()).data
    assert b'"price":1.10' in raw
    stored = orjson.loads(raw)
    assert stored == {**event, "data": {"price": 1.1}, "topic": topic, "pubsubname": "pubsub"}


async def test_user_cloudevent_gets_dapr_defaults_for_missing_fields(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    body = b'{"data": {"n": 1}, "source": null}'
    await publish(
        sidecar, topic, body, headers={"content-type": "application/cloudevents+json", "traceparent": PARENT}
    )
    event = await captured.envelope()
    # id and datacontenttype are not defaulted for a user event.
    assert set(event) == {
        "data",
        "pubsubname",
        "source",
        "specversion",
        "time",
        "topic",
        "traceid",
        "traceparent",
        "tracestate",
        "type",
    }
    assert event["source"] == "Dapr"
    assert event["type"] == "com.dapr.event.sent"
    assert event["specversion"] == "1.0"
    assert event["traceid"] == event["traceparent"]
    assert event["traceparent"].startswith(f"00-{PARENT_TRACE}-")
    assert_time_is_now(event["time"])


async def test_raw_payload_puts_the_body_on_the_broker_as_it_is(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    body = b'{"not": "wrapped"}\n'
    await publish(
        sidecar, topic, body, params={"metadata.rawPayload": "true"}, headers={"content-type": JSON}
    )
    message = await captured.next()
    assert message.data == body


@pytest.mark.parametrize("value", ["false", "0", "F", ""])
async def test_raw_payload_false_still_wraps(
    start_sidecar: StartSidecar, broker: Callable[..., str], value: str
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    await publish(sidecar, topic, b"x", params={"metadata.rawPayload": value})
    assert (await captured.envelope())["data"] == "x"


async def test_cloudevent_metadata_overrides_fields(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    override = f"00-{'1' * 32}-{'2' * 16}-01"
    params = {
        "metadata.cloudevent.id": "fixed-id",
        "metadata.CloudEvent.Source": "billing",
        "metadata.cloudevent.type": "order.placed",
        "metadata.cloudevent.subject": "order-1",
        "metadata.cloudevent.traceid": "ignored-because-traceparent-wins",
        "metadata.cloudevent.traceparent": override,
        "metadata.cloudevent.tracestate": "k=v",
        "metadata.partitionKey": "p1",
    }
    await publish(sidecar, topic, b"x", params=params, headers={"traceparent": PARENT})
    message = await captured.next()
    event = orjson.loads(message.data)
    assert set(event) == ENVELOPE_KEYS | {"data", "subject"}
    assert event["id"] == "fixed-id"
    assert event["source"] == "billing"
    assert event["type"] == "order.placed"
    assert event["subject"] == "order-1"
    assert event["traceid"] == event["traceparent"] == override
    assert event["tracestate"] == "k=v"
    # Every metadata.* parameter also goes to the broker.
    assert message.metadata["partitionKey"] == "p1"


@pytest.mark.parametrize("name", ["ttlInSeconds", "ttl", "TTLINSECONDS"])
async def test_ttl_becomes_an_expiration(
    start_sidecar: StartSidecar, broker: Callable[..., str], name: str
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    await publish(sidecar, topic, b"x", params={f"metadata.{name}": "120"})
    event = await captured.envelope()
    assert set(event) == ENVELOPE_KEYS | {"data", "expiration"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["expiration"])
    expires = datetime.fromisoformat(event["expiration"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(seconds=120))) < timedelta(seconds=5)


async def test_incoming_traceparent_keeps_its_trace_with_a_new_span(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    await publish(sidecar, topic, b"x", headers={"traceparent": PARENT, "tracestate": "vendor=1"})
    event = await captured.envelope()
    match = TRACEPARENT.fullmatch(event["traceparent"])
    assert match is not None
    assert match.group(1) == PARENT_TRACE
    assert match.group(2) != "00f067aa0ba902b7"
    assert event["tracestate"] == "vendor=1"


async def test_invalid_traceparent_starts_a_new_trace(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    await publish(sidecar, topic, b"x", headers={"traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"})
    event = await captured.envelope()
    assert TRACEPARENT.fullmatch(event["traceparent"])
    assert "0" * 32 not in event["traceparent"]


# -- paths and verbs -------------------------------------------------------------------------------


async def test_topic_may_contain_slashes_and_put_is_an_alias(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = f"{new_topic()}/eu/created"
    captured = await capture(sidecar, topic)
    await publish(sidecar, topic, b"one")
    await publish(sidecar, topic, b"two", method="PUT")
    first, second = await captured.envelope(), await captured.envelope()
    assert (first["topic"], first["data"]) == (topic, "one")
    assert (second["topic"], second["data"]) == (topic, "two")


async def test_publish_to_a_second_component_by_name(start_sidecar: StartSidecar) -> None:
    # In-memory brokers: two Redis components on one server would share the stream of a topic.
    sidecar = await start_sidecar(
        component("pubsub", "pubsub.in-memory"), component("events", "pubsub.in-memory")
    )
    topic = new_topic()
    first, second = await capture(sidecar, topic), await capture(sidecar, topic, "events")
    response = await sidecar.request("POST", f"/v1.0/publish/events/{topic}", content=b"x")
    assert response.status_code == 204
    assert (await second.envelope())["pubsubname"] == "events"
    await first.nothing()


# -- scopes ----------------------------------------------------------------------------------------


async def test_publishing_scopes_forbid_unlisted_topics(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    allowed, other = new_topic(), new_topic()
    scopes = f"checkout={allowed};billing={other}"
    sidecar = await start_sidecar(broker(publishingScopes=scopes), app_id="checkout")
    captured_allowed, captured_other = await capture(sidecar, allowed), await capture(sidecar, other)
    await publish(sidecar, allowed, b"ok")
    response = await sidecar.request("POST", f"/v1.0/publish/pubsub/{other}", content=b"no")
    body = assert_error(
        response,
        403,
        "ERR_PUBSUB_FORBIDDEN",
        message=f"topic {other} is not allowed for app id checkout",
        details=RICH,
    )
    info = detail(body, "ErrorInfo")
    assert info["reason"] == "DAPR_PUBSUB_FORBIDDEN"
    assert info["metadata"] == {"topic": other, "error": body["message"]}
    assert (await captured_allowed.envelope())["data"] == "ok"
    await captured_other.nothing()
    # An app the scopes do not name may publish anywhere.
    unlisted = await start_sidecar(broker(publishingScopes=scopes), app_id="shipping")
    await publish(unlisted, other, b"x")


async def test_allowed_topics_apply_to_every_app(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    allowed, other = new_topic(), new_topic()
    sidecar = await start_sidecar(broker(allowedTopics=f"{allowed}, unused"))
    captured = await capture(sidecar, other)
    response = await sidecar.request("POST", f"/v1.0/publish/pubsub/{other}", content=b"x")
    assert_error(response, 403, "ERR_PUBSUB_FORBIDDEN", details=RICH)
    bulk = await sidecar.request(
        "POST",
        f"/v1.0-alpha1/publish/bulk/pubsub/{other}",
        json=[{"entryId": "1", "event": "x", "contentType": "text/plain"}],
    )
    assert_error(bulk, 403, "ERR_PUBSUB_FORBIDDEN", details=RICH)
    await captured.nothing()
    await publish(sidecar, allowed, b"x")


async def test_protected_topics_need_a_scope(start_sidecar: StartSidecar, broker: Callable[..., str]) -> None:
    protected = new_topic()
    sidecar = await start_sidecar(broker(protectedTopics=protected), app_id="checkout")
    response = await sidecar.request("POST", f"/v1.0/publish/pubsub/{protected}", content=b"x")
    assert_error(response, 403, "ERR_PUBSUB_FORBIDDEN", details=RICH)
    scoped = await start_sidecar(
        broker(protectedTopics=protected, publishingScopes=f"checkout={protected}"), app_id="checkout"
    )
    await publish(scoped, protected, b"x")


# -- bulk publish ----------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/v1.0-alpha1/publish/bulk", "/v1.0/publish/bulk"])
@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_bulk_publish_wraps_every_entry(
    start_sidecar: StartSidecar, broker: Callable[..., str], prefix: str, method: str
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    entries = [
        {"entryId": "a", "event": {"n": 1}, "contentType": "application/json"},
        {
            "entryID": "b",
            "event": "hello",
            "contentType": "text/plain",
            "metadata": {"cloudevent.type": "t.b"},
        },
        {
            "entryId": "c",
            "event": base64.b64encode(b"\x00\x01").decode(),
            "contentType": "application/octet-stream",
        },
        {"entryId": "d", "event": {"id": "ce-d", "data": 1}, "contentType": "application/cloudevents+json"},
    ]
    response = await sidecar.request(
        method, f"{prefix}/pubsub/{topic}", json=entries, headers={"traceparent": PARENT}
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    events = [await captured.envelope() for _ in entries]
    by_data = {orjson.dumps(e.get("data", e.get("data_base64"))): e for e in events}
    assert set(by_data) == {b'{"n":1}', b'"hello"', b'"AAE="', b"1"}
    assert by_data[b'"hello"']["type"] == "t.b"
    assert by_data[b'"hello"']["datacontenttype"] == "text/plain"
    assert by_data[b'"AAE="']["datacontenttype"] == "application/octet-stream"
    assert by_data[b"1"]["id"] == "ce-d"
    spans = set()
    for event in events:
        assert event["topic"] == topic
        match = TRACEPARENT.fullmatch(event["traceparent"])
        assert match is not None and match.group(1) == PARENT_TRACE
        spans.add(match.group(2))
    assert len(spans) == len(entries), "every entry has a span of its own"


async def test_bulk_raw_payload_publishes_the_converted_events(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    body = (
        b'[{"entryId": "a", "event": {"n": 123456789012345678901234567890}, "contentType": "application/json"},'
        b' {"entryId": "b", "event": "AAE=", "contentType": "application/octet-stream"}]'
    )
    response = await sidecar.request(
        "POST",
        f"/v1.0-alpha1/publish/bulk/pubsub/{topic}",
        params={"metadata.rawPayload": "true"},
        content=body,
        headers={"content-type": JSON},
    )
    assert response.status_code == 204, response.text
    got = {(await captured.next()).data for _ in range(2)}
    assert got == {b'{"n":123456789012345678901234567890}', b"\x00\x01"}


async def test_bulk_entry_metadata_is_merged_over_the_request_metadata(
    start_sidecar: StartSidecar, broker: Callable[..., str]
) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    entries = [
        {
            "entryId": "a",
            "event": "a",
            "contentType": "text/plain",
            "metadata": {"cloudevent.source": "entry"},
        },
        {"entryId": "b", "event": "b", "contentType": "text/plain"},
    ]
    params = {"metadata.cloudevent.source": "request", "metadata.cloudevent.subject": "s"}
    response = await sidecar.request(
        "POST", f"/v1.0/publish/bulk/pubsub/{topic}", json=entries, params=params
    )
    assert response.status_code == 204, response.text
    events = {e["data"]: e for e in [await captured.envelope(), await captured.envelope()]}
    assert (events["a"]["source"], events["a"]["subject"]) == ("entry", "s")
    # An entry without metadata of its own gets an envelope without overrides, as in Dapr.
    assert events["b"]["source"] == sidecar.app_id
    assert "subject" not in events["b"]


async def test_empty_bulk_publishes_nothing(start_sidecar: StartSidecar, broker: Callable[..., str]) -> None:
    sidecar = await start_sidecar(broker())
    topic = new_topic()
    captured = await capture(sidecar, topic)
    for body in (b"[]", b"null"):
        response = await sidecar.request("POST", f"/v1.0/publish/bulk/pubsub/{topic}", content=body)
        assert response.status_code == 204, response.text
    await captured.nothing()


# -- broker failures -------------------------------------------------------------------------------


async def test_broker_failures_answer_publish_message_errors(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest
) -> None:
    """A Redis key of another type refuses XADD: every publish to that topic fails at the broker."""
    sidecar = await start_sidecar(component("pubsub", "pubsub.redis", **_redis(request)))
    topic = new_topic()
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_server").url)
    try:
        await client.set(topic, "a string, not a stream")
        response = await sidecar.request("POST", f"/v1.0/publish/pubsub/{topic}", content=b"x")
        body = assert_error(response, 500, "ERR_PUBSUB_PUBLISH_MESSAGE", details=RICH)
        assert body["message"].startswith(f"error when publishing to topic {topic} in pubsub pubsub: ")
        assert "WRONGTYPE" in body["message"]
        info = detail(body, "ErrorInfo")
        assert info["reason"] == "DAPR_PUBSUB_PUBLISH_MESSAGE"
        assert info["metadata"]["topic"] == topic

        entries = [{"entryId": str(n), "event": str(n), "contentType": "text/plain"} for n in range(3)]
        response = await sidecar.request("POST", f"/v1.0-alpha1/publish/bulk/pubsub/{topic}", json=entries)
        assert response.status_code == 500
        assert response.headers["content-type"] == JSON
        failure = response.json()
        assert list(failure) == ["failedEntries", "errorCode"]
        assert failure["errorCode"] == "ERR_PUBSUB_PUBLISH_MESSAGE"
        assert [entry["entryId"] for entry in failure["failedEntries"]] == ["0", "1", "2"]
        assert all("WRONGTYPE" in entry["error"] for entry in failure["failedEntries"])
        assert response.headers["metadata.responseData"] == response.text
        assert response.headers["metadata.error"].startswith(
            f"api error: code = Internal desc = error when publishing to topic {topic} in pubsub pubsub: "
        )
        assert await client.type(topic) == b"string"
    finally:
        await client.delete(topic)
        await client.aclose()


async def test_a_closed_broker_fails_only_its_own_publishes(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("down", "pubsub.in-memory"), component("up", "pubsub.in-memory"))
    topic = new_topic()
    captured = await capture(sidecar, topic, "up")
    await sidecar.app.state.runtime.components.of("pubsub")["down"].instance.close()
    response = await sidecar.request("POST", f"/v1.0/publish/down/{topic}", content=b"x")
    assert_error(response, 500, "ERR_PUBSUB_PUBLISH_MESSAGE", details=RICH)
    entries = [{"entryId": "only", "event": "x", "contentType": "text/plain"}]
    response = await sidecar.request("POST", f"/v1.0/publish/bulk/down/{topic}", json=entries)
    assert response.status_code == 500
    assert response.json()["failedEntries"][0]["entryId"] == "only"
    response = await sidecar.request("POST", f"/v1.0/publish/up/{topic}", content=b"fine")
    assert response.status_code == 204
    assert (await captured.envelope())["data"] == "fine"
