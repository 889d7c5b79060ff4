"""``SubscribeTopicEventsAlpha1``'s edge cases on an in-process sidecar (routers/grpc/subscribe.py
over services/pubsub/streaming.py): the first message, daprd's refusals and their codes, the
event's fields, answers by id (unknown ids, unknown statuses, out of order), a second initial
request, two streams on one topic, the metadata listing, the subscription's end with the client's.
The unmodified SDK against a real ``l8 run`` on every broker is tests/compat/test_dapr_streaming.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
import pytest
import yaml
from dapr.proto.runtime.v1 import appcallback_pb2, dapr_pb2_grpc, metadata_pb2, pubsub_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from structlog.testing import capture_logs

from tests.routers.conftest import Sidecar, StartSidecar, component
from tests.servers import LOOPBACK

Status = appcallback_pb2.TopicEventResponse.TopicEventResponseStatus
PUBSUB = component("pubsub", "pubsub.in-memory")


def _initial(
    topic: str, pubsub: str = "pubsub", **fields: Any
) -> pubsub_pb2.SubscribeTopicEventsRequestAlpha1:
    return pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
        initial_request=pubsub_pb2.SubscribeTopicEventsRequestInitialAlpha1(
            pubsub_name=pubsub, topic=topic, **fields
        )
    )


def _processed(event_id: str, status: int = Status.SUCCESS) -> pubsub_pb2.SubscribeTopicEventsRequestAlpha1:
    return pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
        event_processed=pubsub_pb2.SubscribeTopicEventsRequestProcessedAlpha1(
            id=event_id, status=appcallback_pb2.TopicEventResponse(status=status)
        )
    )


class Stream:
    """One bidirectional call: what the test writes, and reads with a deadline."""

    def __init__(self, stub: dapr_pb2_grpc.DaprStub) -> None:
        self.call = stub.SubscribeTopicEventsAlpha1()

    async def send(self, request: pubsub_pb2.SubscribeTopicEventsRequestAlpha1) -> None:
        await self.call.write(request)

    async def read(self, timeout: float = 5.0) -> Any:  # noqa: ASYNC109 - a test's bound
        return await asyncio.wait_for(self.call.read(), timeout)

    async def opened(self, topic: str, **fields: Any) -> Stream:
        await self.send(_initial(topic, **fields))
        first = await self.read()
        assert first.WhichOneof("subscribe_topic_events_response_type") == "initial_response"
        return self

    async def event(self) -> appcallback_pb2.TopicEventRequest:
        answer = await self.read()
        assert answer.WhichOneof("subscribe_topic_events_response_type") == "event_message"
        message: appcallback_pb2.TopicEventRequest = answer.event_message
        return message


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar(PUBSUB)


@pytest.fixture
async def stub(sidecar: Sidecar) -> AsyncIterator[dapr_pb2_grpc.DaprStub]:
    port = sidecar.app.state.grpc_api.port
    async with grpc.aio.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        yield dapr_pb2_grpc.DaprStub(channel)


async def _publish(sidecar: Sidecar, topic: str, data: Any, pubsub: str = "pubsub") -> None:
    answer = await sidecar.client.post(f"/v1.0/publish/{pubsub}/{topic}", json=data)
    assert answer.status_code == 204, answer.text


async def _streaming(sidecar: Sidecar) -> list[dict[str, Any]]:
    body = (await sidecar.client.get("/v1.0/metadata")).json()
    return [s for s in body.get("subscriptions", ()) if s["type"] == "STREAMING"]


async def _eventually(check: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a test's bound
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "never became true"
        await asyncio.sleep(0.02)


# -- opening ---------------------------------------------------------------------------------------


async def test_an_event_reaches_the_stream_as_a_topic_event_request(
    sidecar: Sidecar, stub: dapr_pb2_grpc.DaprStub
) -> None:
    stream = await Stream(stub).opened("orders", metadata={"rawPayload": "false"}, dead_letter_topic="")
    await _publish(sidecar, "orders", {"qty": 3})
    event = await stream.event()
    assert (event.topic, event.pubsub_name, event.path) == ("orders", "pubsub", "/")
    assert (event.type, event.spec_version, event.data_content_type) == (
        "com.dapr.event.sent",
        "1.0",
        "application/json",
    )
    assert event.id and event.source == sidecar.app_id
    assert orjson.loads(event.data) == {"qty": 3}
    assert "traceparent" in event.extensions.fields
    await stream.send(_processed(event.id))
    stream.call.cancel()


async def test_the_first_message_must_be_an_initial_request(stub: dapr_pb2_grpc.DaprStub) -> None:
    stream = Stream(stub)
    await stream.send(_processed("x"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stream.read()
    assert refused.value.code() == grpc.StatusCode.UNKNOWN
    assert refused.value.details() == "initial request is required"
    assert rpc_status.from_call(refused.value) is None  # a plain error: no google.rpc details


@pytest.mark.parametrize(
    ("pubsub", "topic", "message"),
    [("", "orders", "pubsubName is required"), ("pubsub", "", "topic is required")],
)
async def test_a_missing_name_is_daprds_plain_error(
    stub: dapr_pb2_grpc.DaprStub, pubsub: str, topic: str, message: str
) -> None:
    stream = Stream(stub)
    await stream.send(_initial(topic, pubsub))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stream.read()
    assert (refused.value.code(), refused.value.details()) == (grpc.StatusCode.UNKNOWN, message)


async def test_an_unknown_pubsub_is_invalid_argument_with_its_reason(
    stub: dapr_pb2_grpc.DaprStub, sidecar: Sidecar
) -> None:
    stream = Stream(stub)
    await stream.send(_initial("orders", "nope"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stream.read()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(refused.value)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("DAPR_PUBSUB_NOT_FOUND", "dapr.io")
    assert await _streaming(sidecar) == []


async def test_a_topic_the_scopes_close_is_refused(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("pubsub", "pubsub.in-memory", allowedTopics="orders"))
    async with grpc.aio.insecure_channel(f"{LOOPBACK}:{sidecar.app.state.grpc_api.port}") as channel:
        stream = Stream(dapr_pb2_grpc.DaprStub(channel))
        await stream.send(_initial("payments"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.read()
    assert refused.value.code() == grpc.StatusCode.UNKNOWN
    assert refused.value.details() == (
        "failed to create subscription for pubsub: "
        "subscription to topic 'payments' on pubsub 'pubsub' is not allowed"
    )


async def test_a_second_initial_request_ends_the_stream(
    stub: dapr_pb2_grpc.DaprStub, sidecar: Sidecar
) -> None:
    stream = await Stream(stub).opened("orders")
    await stream.send(_initial("orders"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stream.read()
    assert (refused.value.code(), refused.value.details()) == (
        grpc.StatusCode.UNKNOWN,
        "duplicate initial request received",
    )
    await _eventually(lambda: _none_streaming(sidecar))


async def _none_streaming(sidecar: Sidecar) -> bool:
    return await _streaming(sidecar) == []


# -- answers ---------------------------------------------------------------------------------------


async def test_answers_are_matched_by_id_in_any_order(sidecar: Sidecar, stub: dapr_pb2_grpc.DaprStub) -> None:
    stream = await Stream(stub).opened("orders")
    for number in range(3):
        await _publish(sidecar, "orders", {"n": number})
    events = [await stream.event() for _ in range(3)]
    with capture_logs() as logs:
        await stream.send(_processed("no-such-event"))
        for event in reversed(events):
            await stream.send(_processed(event.id))
        # Every one answered: the stream carries a new event straight away.
        await _publish(sidecar, "orders", {"n": 3})
        assert orjson.loads((await stream.event()).data) == {"n": 3}
    assert any(entry["event"] == "no event waiting for this answer" for entry in logs)
    stream.call.cancel()


async def test_retry_and_an_unknown_status_deliver_again_under_the_inbound_policy(
    start_sidecar: StartSidecar, tmp_path: Any
) -> None:
    resiliency = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "inbound"},
        "spec": {
            "policies": {"retries": {"twice": {"policy": "constant", "duration": "10ms", "maxRetries": 2}}},
            "targets": {"components": {"pubsub": {"inbound": {"retry": "twice"}}}},
        },
    }
    sidecar = await start_sidecar(PUBSUB, yaml.safe_dump(resiliency))
    async with grpc.aio.insecure_channel(f"{LOOPBACK}:{sidecar.app.state.grpc_api.port}") as channel:
        stream = await Stream(dapr_pb2_grpc.DaprStub(channel)).opened("orders")
        await _publish(sidecar, "orders", {"qty": 1})
        first = await stream.event()
        await stream.send(_processed(first.id, Status.RETRY))
        second = await stream.event()
        await stream.send(_processed(second.id, 7))  # no such status: retried, as daprd does
        third = await stream.event()
        assert first.id == second.id == third.id
        await stream.send(_processed(third.id))
        stream.call.cancel()


async def test_drop_sends_the_event_to_the_dead_letter_topic(
    sidecar: Sidecar, stub: dapr_pb2_grpc.DaprStub
) -> None:
    dead = await Stream(stub).opened("orders-dead")
    stream = await Stream(stub).opened("orders", dead_letter_topic="orders-dead")
    await _publish(sidecar, "orders", {"qty": 1})
    event = await stream.event()
    await stream.send(_processed(event.id, Status.DROP))
    copy = await dead.event()
    assert (copy.id, copy.topic, orjson.loads(copy.data)) == (event.id, "orders-dead", {"qty": 1})
    await dead.send(_processed(copy.id))
    for call in (stream, dead):
        call.call.cancel()


async def test_an_event_left_unanswered_is_neither_retried_nor_dead_lettered(
    start_sidecar: StartSidecar,
) -> None:
    """The stream ends with the event unanswered: it goes back to the broker (which redelivers it
    on Redis and Kafka: tests/compat/test_dapr_streaming.py), not to the dead-letter topic, and the
    inbound retry policy does not spin on the closed stream."""
    resiliency = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "inbound"},
        "spec": {
            "policies": {"retries": {"many": {"policy": "constant", "duration": "10ms", "maxRetries": 50}}},
            "targets": {"components": {"pubsub": {"inbound": {"retry": "many"}}}},
        },
    }
    sidecar = await start_sidecar(PUBSUB, yaml.safe_dump(resiliency))
    async with grpc.aio.insecure_channel(f"{LOOPBACK}:{sidecar.app.state.grpc_api.port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        dead = await Stream(stub).opened("orders-dead")
        stream = await Stream(stub).opened("orders", dead_letter_topic="orders-dead")
        await _publish(sidecar, "orders", {"qty": 1})
        await stream.event()
        with capture_logs() as logs:
            stream.call.cancel()
            await _eventually(lambda: _streaming_topics(sidecar, ["orders-dead"]))
            with pytest.raises(TimeoutError):
                await dead.read(timeout=0.5)
        # The broker was told: not done (the in-memory one drops it, as Dapr's does).
        assert [
            e["topic"] for e in logs if e["event"] == "pubsub.in-memory: handler failed, message dropped"
        ] == ["orders"]
        dead.call.cancel()


async def _streaming_topics(sidecar: Sidecar, topics: list[str]) -> bool:
    return [s["topic"] for s in await _streaming(sidecar)] == topics


# -- two streams, metadata, the end ----------------------------------------------------------------


async def test_two_streams_on_one_topic_share_its_events_and_list_once(
    sidecar: Sidecar, stub: dapr_pb2_grpc.DaprStub
) -> None:
    first = await Stream(stub).opened("orders")
    second = await Stream(stub).opened("orders", metadata={"rawPayload": "false"})
    listed = await _streaming(sidecar)
    assert listed == [
        {
            "pubsubname": "pubsub",
            "topic": "orders",
            "rules": [{"match": "", "path": "/"}],
            "deadLetterTopic": "",
            "type": "STREAMING",
        }
    ]
    answer = await stub.GetMetadata(metadata_pb2.GetMetadataRequest())
    (streaming,) = [s for s in answer.subscriptions if s.type == metadata_pb2.STREAMING]
    assert (streaming.pubsub_name, streaming.topic, streaming.rules.rules[0].path) == (
        "pubsub",
        "orders",
        "/",
    )

    for number in range(4):
        await _publish(sidecar, "orders", {"n": number})
    got = []
    for stream in (first, second, first, second):  # the group's members take turns
        event = await stream.event()
        got.append(orjson.loads(event.data)["n"])
        await stream.send(_processed(event.id))
    assert sorted(got) == [0, 1, 2, 3]

    first.call.cancel()
    second.call.cancel()
    await _eventually(lambda: _none_streaming(sidecar))


async def test_the_subscription_ends_with_the_client_and_the_sidecar(
    start_sidecar: StartSidecar,
) -> None:
    sidecar = await start_sidecar(PUBSUB)
    streams = sidecar.app.state.runtime.services.streams
    async with grpc.aio.insecure_channel(f"{LOOPBACK}:{sidecar.app.state.grpc_api.port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        half_closed = await Stream(stub).opened("a")
        await half_closed.call.done_writing()
        assert await half_closed.read() is grpc.aio.EOF
        cancelled = await Stream(stub).opened("b")
        cancelled.call.cancel()
        await _eventually(lambda: _none_streaming(sidecar))
        assert streams.subscriptions() == []

        # The service's end (the runtime's, at shutdown) ends the open streams and refuses more.
        kept = await Stream(stub).opened("c")
        await streams.aclose()
        assert await kept.read() is grpc.aio.EOF
        refused = Stream(stub)
        await refused.send(_initial("d"))
        with pytest.raises(grpc.aio.AioRpcError) as closed:
            await refused.read()
        assert (closed.value.code(), closed.value.details()) == (
            grpc.StatusCode.UNKNOWN,
            "subscriber is closed",
        )


async def test_the_servers_stop_ends_a_stream_as_unavailable(
    sidecar: Sidecar, stub: dapr_pb2_grpc.DaprStub
) -> None:
    """The lifespan stops the gRPC server (before the services close): the SDK reads UNAVAILABLE as
    a reason to reconnect, as it reads daprd's "api server closed"."""
    last = await Stream(stub).opened("e")
    await sidecar.app.state.grpc_api.stop(1)
    with pytest.raises(grpc.aio.AioRpcError) as stopped:
        await last.read()
    assert stopped.value.code() == grpc.StatusCode.UNAVAILABLE
    await _eventually(lambda: _none_streaming(sidecar))
