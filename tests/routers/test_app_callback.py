"""routers/grpc/app_callback.py against a real grpcio app serving ``AppCallback`` (and its health
and alpha services) in this loop: what each call sends the app, and how each answer, error or
missing method reads through the services' own interpreters (the same ones an HTTP app's answers
go through)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import appcallback_pb2
from google.protobuf import empty_pb2

from mesh.app_channel import AppUnreachable, BindingAnswer
from routers.grpc.app_callback import GrpcAppChannel
from services.pubsub.bulk_subscribe import interpret_bulk
from services.pubsub.delivery import Outcome, interpret
from services.pubsub.programmatic import parse_programmatic
from tests.grpc_callback_app import Recorder, Status
from tests.servers import LOOPBACK, free_port


@pytest.fixture
async def app() -> AsyncIterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = await recorder.start()
    yield recorder, port
    await recorder.stop()


@pytest.fixture
async def channel(app: tuple[Recorder, int]) -> AsyncIterator[GrpcAppChannel]:
    found = GrpcAppChannel("orders", app[1], address=LOOPBACK, token="app-token")
    await found.start()
    yield found
    await found.aclose()


async def test_an_invocation_carries_the_method_verb_query_data_and_token(
    app: tuple[Recorder, int], channel: GrpcAppChannel
) -> None:
    recorder, _ = app
    answer = await channel.request(
        "PUT",
        "/orders/7?a=1&b=2",
        body=b"ping",
        headers={
            "Content-Type": "text/plain",
            "dapr-caller-app-id": "cart",
            "dapr-api-token": "forged",
            "X-Name": "caf\u00e9",  # not ASCII: gRPC metadata cannot carry it
            "trace-bin": "x",
            "bad key": "v",
        },
    )
    assert (answer.status, answer.body, answer.headers["content-type"]) == (200, b"pong:ping", "text/x")
    name, request, metadata = recorder.calls[-1]
    assert name == "OnInvoke"
    assert request.method == "orders/7"
    assert (request.data.value, request.content_type) == (b"ping", "text/plain")
    assert request.http_extension.verb == common_pb2.HTTPExtension.Verb.PUT
    assert request.http_extension.querystring == "a=1&b=2"
    assert metadata["dapr-caller-app-id"] == "cart"
    assert metadata["dapr-api-token"] == "app-token"  # APP_API_TOKEN's, never the caller's
    assert not {"x-name", "trace-bin", "bad key", "content-type"} & set(metadata)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.CANCELLED, 408),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 500),
    ],
)
async def test_an_invocation_error_is_daprs_http_status_with_the_status_as_json(
    app: tuple[Recorder, int], channel: GrpcAppChannel, code: grpc.StatusCode, status: int
) -> None:
    app[0].error = code
    answer = await channel.request("POST", "/m", body=b"x")
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert orjson.loads(answer.body) == {"code": code.value[0], "message": "OnInvoke refused", "details": []}


async def test_an_app_that_does_not_listen_is_unreachable() -> None:
    channel = GrpcAppChannel("orders", free_port(), address=LOOPBACK)
    await channel.start()
    try:
        with pytest.raises(AppUnreachable):
            await channel.request("POST", "/m", body=b"x", timeout=2)
        with pytest.raises(AppUnreachable):
            await channel.deliver_event("/", b"{}", {})
        with pytest.raises(AppUnreachable):
            await channel.probe("/healthz", 1)
        assert not await channel.listening()
    finally:
        await channel.aclose()


async def test_subscriptions_read_as_the_http_ones_with_the_apps_paths(
    app: tuple[Recorder, int], channel: GrpcAppChannel
) -> None:
    recorder, _ = app
    recorder.subscriptions = [
        appcallback_pb2.TopicSubscription(
            pubsub_name="pubsub",
            topic="orders",
            metadata={"rawPayload": "true"},
            routes=appcallback_pb2.TopicRoutes(
                rules=[appcallback_pb2.TopicRule(match='event.type == "big"', path="big")],
                default="other",
            ),
            dead_letter_topic="poison",
            bulk_subscribe=appcallback_pb2.BulkSubscribeConfig(
                enabled=True, max_messages_count=5, max_await_duration_ms=200
            ),
        ),
        appcallback_pb2.TopicSubscription(pubsub_name="pubsub", topic="plain"),
    ]
    answer = await channel.read_subscriptions({}, 5)
    assert answer.status == 200
    orders, plain = parse_programmatic(answer.body)
    assert [(r.match, r.path) for r in orders.rules] == [('event.type == "big"', "/big"), ("", "/other")]
    assert orders.metadata == {"rawPayload": "true"}
    assert orders.dead_letter_topic == "poison"
    assert (orders.bulk.enabled, orders.bulk.max_messages_count, orders.bulk.max_await_duration_ms) == (
        True,
        5,
        200,
    )
    # No route named: daprd's empty path, which OnTopicEvent gets back as it was.
    assert [(r.match, r.path) for r in plain.rules] == [("", "/")]
    await channel.deliver_event("/", b'{"id": "1"}', {"pubsubname": "pubsub"}, "plain")
    await channel.deliver_event("/big", b'{"id": "2"}', {"pubsubname": "pubsub"}, "orders")
    assert [call[1].path for call in recorder.calls[-2:]] == ["", "big"]

    recorder.error = grpc.StatusCode.UNIMPLEMENTED
    assert (await channel.read_subscriptions({}, 5)).status == 404  # no subscriptions, as daprd


async def test_an_event_carries_the_cloudevent_fields(
    app: tuple[Recorder, int], channel: GrpcAppChannel
) -> None:
    recorder, _ = app
    event = {
        "id": "e-1",
        "source": "cart",
        "type": "com.dapr.event.sent",
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "data": {"n": 1},
        "topic": "first-topic",
        "pubsubname": "pubsub",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "custom": "x",
    }
    headers = {"pubsubname": "pubsub", "Content-Type": "application/cloudevents+json", "kafka-key": "k"}
    answer = await channel.deliver_event("/orders", orjson.dumps(event), headers, "orders-dead")
    assert interpret(answer.status, answer.body).outcome is Outcome.SUCCESS
    name, request, metadata = recorder.calls[-1]
    assert name == "OnTopicEvent"
    assert (request.id, request.source, request.type, request.spec_version) == (
        "e-1",
        "cart",
        "com.dapr.event.sent",
        "1.0",
    )
    assert (request.data_content_type, orjson.loads(request.data)) == ("application/json", {"n": 1})
    assert (request.topic, request.pubsub_name, request.path) == ("orders-dead", "pubsub", "orders")
    assert request.extensions["custom"] == "x"
    assert request.extensions["traceparent"] == event["traceparent"]
    assert (metadata["kafka-key"], metadata["pubsubname"], metadata["dapr-api-token"]) == (
        "k",
        "pubsub",
        "app-token",
    )


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ({"datacontenttype": "text/plain", "data": "hello"}, b"hello"),
        ({"data": "hello"}, b'"hello"'),  # no content type: JSON
        (
            {
                "datacontenttype": "application/octet-stream",
                "data_base64": base64.b64encode(b"\x00\x01").decode(),
            },
            b"\x00\x01",
        ),
        ({"datacontenttype": "application/json"}, b""),
    ],
)
async def test_event_data_as_daprd_hands_it_over(
    app: tuple[Recorder, int], channel: GrpcAppChannel, event: dict[str, Any], data: bytes
) -> None:
    await channel.deliver_event("/", orjson.dumps({"id": "e", **event}), {}, "t")
    assert app[0].calls[-1][1].data == data


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (Status.SUCCESS, None, Outcome.SUCCESS),
        (Status.RETRY, None, Outcome.RETRY),
        (Status.DROP, None, Outcome.DROP),
        (7, None, Outcome.RETRY),  # an unknown status is retried
        (Status.SUCCESS, grpc.StatusCode.UNIMPLEMENTED, Outcome.SUCCESS),  # daprd acknowledges
        (Status.SUCCESS, grpc.StatusCode.INTERNAL, Outcome.RETRY),
    ],
)
async def test_the_apps_answer_is_the_deliverys_outcome(
    app: tuple[Recorder, int],
    channel: GrpcAppChannel,
    status: int,
    error: grpc.StatusCode | None,
    outcome: Outcome,
) -> None:
    app[0].topic_status = status
    app[0].error = error
    answer = await channel.deliver_event("/", b'{"id": "e"}', {"pubsubname": "p"}, "t")
    assert interpret(answer.status, answer.body).outcome is outcome


async def test_an_event_that_is_no_cloudevent_is_dropped(channel: GrpcAppChannel) -> None:
    answer = await channel.deliver_event("/", b"[1, 2]", {}, "t")
    assert interpret(answer.status, answer.body).outcome is Outcome.DROP


async def test_a_bulk_batch_goes_to_the_alpha_service(
    app: tuple[Recorder, int], channel: GrpcAppChannel
) -> None:
    envelope = {
        "id": "batch",
        "type": "com.dapr.event.sent.bulk",
        "topic": "orders",
        "pubsubname": "pubsub",
        "metadata": {},
        "entries": [
            {
                "entryId": "a",
                "event": {"id": "1", "data": {"n": 1}},
                "contentType": "application/cloudevents+json",
                "metadata": {},
            },
            {
                "entryId": "b",
                "event": base64.b64encode(b"raw").decode(),
                "contentType": "application/octet-stream",
                "metadata": {"m": "v"},
            },
        ],
    }
    answer = await channel.deliver_bulk("/bulk", orjson.dumps(envelope), {"pubsubname": "pubsub"})
    results = interpret_bulk(answer.status, answer.body, ["a", "b"])
    assert (results["a"].outcome, results["b"].outcome) == (Outcome.SUCCESS, Outcome.DROP)
    _, request, _ = app[0].calls[-1]
    assert (request.topic, request.pubsub_name, request.path) == ("orders", "pubsub", "bulk")
    first, second = request.entries
    assert first.cloud_event.id == "1" and orjson.loads(first.cloud_event.data) == {"n": 1}
    assert (second.bytes, dict(second.metadata)) == (b"raw", {"m": "v"})

    app[0].error = grpc.StatusCode.UNIMPLEMENTED
    answer = await channel.deliver_bulk("/bulk", orjson.dumps(envelope), {})
    assert {r.outcome for r in interpret_bulk(answer.status, answer.body, ["a", "b"]).values()} == {
        Outcome.SUCCESS
    }


async def test_input_bindings_are_the_ones_the_app_lists(
    app: tuple[Recorder, int], channel: GrpcAppChannel
) -> None:
    assert (await channel.binding_wanted("tick", "/tick", 5)).status == 200
    assert (await channel.binding_wanted("other", "/other", 5)).status == 404
    app[0].error = grpc.StatusCode.UNIMPLEMENTED
    assert (await channel.binding_wanted("tick", "/tick", 5)).status == 404


async def test_a_binding_event_carries_its_data_and_metadata(
    app: tuple[Recorder, int], channel: GrpcAppChannel
) -> None:
    headers = {
        "Content-Type": "application/json",
        "timeZone": "Local",
        "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    }
    answer = await channel.deliver_binding("tick", "/tick", b"payload", headers)
    assert (answer.status, answer.body) == (200, b"ack:payload")
    name, request, metadata = app[0].calls[-1]
    assert (name, request.name, request.data) == ("OnBindingEvent", "tick", b"payload")
    assert dict(request.metadata) == {"timeZone": "Local"}
    assert metadata["traceparent"] == headers["traceparent"]
    assert metadata["dapr-api-token"] == "app-token"

    app[0].error = grpc.StatusCode.INTERNAL
    assert (await channel.deliver_binding("tick", "/tick", b"", {})).status == 500


async def test_a_binding_answer_naming_output_bindings_comes_back_with_them(
    app: tuple[Recorder, int], channel: GrpcAppChannel
) -> None:
    assert (await channel.deliver_binding("tick", "/tick", b"x", {})).binding is None  # asks nothing
    parallel = appcallback_pb2.BindingEventResponse.PARALLEL
    app[0].binding_reply = appcallback_pb2.BindingEventResponse(
        data=b'{"n": 1}', to=["files", "audit"], concurrency=parallel
    )
    answer = await channel.deliver_binding("tick", "/tick", b"x", {})
    assert answer.binding == BindingAnswer(("files", "audit"), b'{"n": 1}', True)
    assert answer.body == b'{"n": 1}'
    app[0].binding_reply = appcallback_pb2.BindingEventResponse(to=["files"])
    assert (await channel.deliver_binding("tick", "/tick", b"x", {})).binding == BindingAnswer(
        ("files",), b"ack:x", False
    )
    # daprd never reads store_name and states from a gRPC answer: neither does l8.
    state = common_pb2.StateItem(key="k", value=b"v")
    app[0].binding_reply = appcallback_pb2.BindingEventResponse(store_name="store", states=[state])
    assert (await channel.deliver_binding("tick", "/tick", b"x", {})).binding is None


async def test_a_job_trigger_is_on_job_event(app: tuple[Recorder, int], channel: GrpcAppChannel) -> None:
    answer = await channel.deliver_job("nightly", b'{"n": 1}', 5)
    assert answer.status == 200
    name, request, metadata = app[0].calls[-1]
    assert (name, request.name, request.method) == ("OnJobEventAlpha1", "nightly", "job/nightly")
    assert (request.data.value, request.content_type) == (b'{"n": 1}', "application/json")
    assert request.http_extension.verb == common_pb2.HTTPExtension.Verb.POST
    assert metadata["dapr-api-token"] == "app-token"
    app[0].error = grpc.StatusCode.UNIMPLEMENTED  # no handler: done, as an HTTP app's 404
    assert (await channel.deliver_job("nightly", b"", 5)).status == 404
    app[0].error = grpc.StatusCode.INTERNAL
    assert (await channel.deliver_job("nightly", b"", 5)).status == 500


async def test_the_probe_is_the_health_check_without_the_token(
    app: tuple[Recorder, int], channel: GrpcAppChannel
) -> None:
    assert await channel.probe("/healthz", 1) == 200
    name, request, metadata = app[0].calls[-1]
    assert name == "HealthCheck" and "dapr-api-token" not in metadata
    assert isinstance(request, empty_pb2.Empty)
    app[0].error = grpc.StatusCode.INTERNAL
    assert await channel.probe("/healthz", 1) == 500
    assert await channel.listening()
