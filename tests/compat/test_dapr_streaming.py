"""Streaming subscriptions with the Dapr Python SDK, unmodified, against a real ``l8 run`` with no
app port at all, on the in-memory, Redis and Kafka pub/subs: ``DaprClient.subscribe`` (a
``Subscription``: ``next_message``, ``respond_success``/``_retry``/``_drop``, ``close``) and
``subscribe_with_handler``.

Events published over HTTP and gRPC reach the stream with the fields a gRPC app's ``OnTopicEvent``
gets; RETRY delivers again (the component's inbound Resiliency policy); DROP copies the event to
the dead-letter topic; a closed stream gets nothing more and, on a durable broker, the event it
left unanswered goes to the next stream; the metadata API lists the subscription (``STREAMING``)
while the stream is open; daprd's refusals reach the SDK with daprd's codes."""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._response import TopicEventResponse
from dapr.clients.grpc.subscription import Subscription
from dapr.common.pubsub.subscription import SubscriptionMessage
from dapr.proto.runtime.v1 import appcallback_pb2, dapr_pb2_grpc, metadata_pb2, pubsub_pb2

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.servers import LOOPBACK

pytestmark = pytest.mark.e2e

BROKERS: dict[str, Callable[[pytest.FixtureRequest], tuple[str, dict[str, str]]]] = {
    "in-memory": lambda request: ("pubsub.in-memory", {}),
    # Short redelivery timings: an event a closed stream left unanswered comes back within seconds.
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
            "initialOffset": "oldest",
            "sessionTimeout": "2s",
            "heartbeatInterval": "200ms",
            "consumeRetryInterval": "100ms",
        },
    ),
}
DURABLE = {"redis", "kafka"}
WAIT = 20.0
"""A Kafka consumer joins its group in a few seconds on a loaded machine."""


def _resources(folder: Path, broker: tuple[str, dict[str, str]]) -> Path:
    kind, metadata = broker
    write_component(folder, "pubsub", kind, metadata)
    resiliency = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "inbound"},
        "spec": {
            "policies": {"retries": {"again": {"policy": "constant", "duration": "50ms", "maxRetries": 3}}},
            "targets": {"components": {"pubsub": {"inbound": {"retry": "again"}}}},
        },
    }
    (folder / "resiliency.yaml").write_text(yaml.safe_dump(resiliency), encoding="utf-8")
    return folder


@pytest.fixture(scope="module", params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sidecar(
    broker: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[L8Process]:
    """A sidecar (and so a consumer group) per test: a Kafka group that members of earlier tests
    left can take longer to hand a newcomer its partitions than a test waits."""
    workdir = tmp_path_factory.mktemp(f"l8-streaming-{broker}")
    launcher = L8Launcher(workdir)
    try:
        yield launcher(
            app_id=f"streamer-{uuid.uuid4().hex[:6]}",
            resources=[_resources(workdir / "resources", BROKERS[broker](request))],
        )
    finally:
        launcher.close()


def _sdk_finds(sidecar: L8Process, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's client finds ``sidecar`` from the environment, as an app's does."""
    for name in ("DAPR_HTTP_ENDPOINT", "DAPR_GRPC_ENDPOINT", "DAPR_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAPR_RUNTIME_HOST", LOOPBACK)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    monkeypatch.setenv("DAPR_GRPC_PORT", str(sidecar.grpc_port))
    monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")


@pytest.fixture
def client(sidecar: L8Process, monkeypatch: pytest.MonkeyPatch) -> Iterator[DaprClient]:
    _sdk_finds(sidecar, monkeypatch)
    with DaprClient() as found:
        yield found


@pytest.fixture
def topic() -> str:
    return f"orders-{uuid.uuid4().hex[:8]}"


def receive(subscription: Subscription, timeout: float = WAIT) -> SubscriptionMessage:
    """The stream's next message, within ``timeout`` (``next_message`` itself blocks for good)."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        message: SubscriptionMessage = pool.submit(subscription.next_message).result(timeout)
        return message
    finally:
        pool.shutdown(wait=False)


def publish_http(sidecar: L8Process, topic: str, data: Any) -> None:
    answer = httpx.post(f"{sidecar.url}/v1.0/publish/pubsub/{topic}", json=data)
    assert answer.status_code == 204, answer.text


def streaming(sidecar: L8Process) -> list[dict[str, Any]]:
    body = httpx.get(f"{sidecar.url}/v1.0/metadata").json()
    return [s for s in body.get("subscriptions", ()) if s["type"] == "STREAMING"]


def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never became true"
        time.sleep(0.05)


def test_events_published_over_http_and_grpc_reach_the_stream(
    client: DaprClient, sidecar: L8Process, topic: str
) -> None:
    subscription = client.subscribe("pubsub", topic)
    try:
        listed = streaming(sidecar)
        assert {"pubsubname": "pubsub", "topic": topic, "type": "STREAMING"}.items() <= listed[0].items()
        with grpc.insecure_channel(sidecar.grpc_address) as channel:
            answer = dapr_pb2_grpc.DaprStub(channel).GetMetadata(metadata_pb2.GetMetadataRequest())
        assert [(s.topic, s.type) for s in answer.subscriptions] == [(topic, metadata_pb2.STREAMING)]

        publish_http(sidecar, topic, {"over": "http"})
        first = receive(subscription)
        subscription.respond_success(first)
        client.publish_event("pubsub", topic, "over gRPC", data_content_type="text/plain")
        second = receive(subscription)
        subscription.respond_success(second)

        assert first.data() == {"over": "http"} and second.data() == "over gRPC"
        for message, content_type in ((first, "application/json"), (second, "text/plain")):
            assert (message.topic(), message.pubsub_name(), message.data_content_type()) == (
                topic,
                "pubsub",
                content_type,
            )
            assert (message.type(), message.spec_version(), message.source()) == (
                "com.dapr.event.sent",
                "1.0",
                sidecar.app_id,
            )
            assert message.id() and "traceparent" in message.extensions()
        assert first.id() != second.id()
    finally:
        subscription.close()
    eventually(lambda: streaming(sidecar) == [])


def test_retry_delivers_the_event_again(client: DaprClient, sidecar: L8Process, topic: str) -> None:
    subscription = client.subscribe("pubsub", topic)
    try:
        publish_http(sidecar, topic, {"qty": 1})
        first = receive(subscription)
        subscription.respond_retry(first)
        again = receive(subscription)
        assert (again.id(), again.data()) == (first.id(), {"qty": 1})
        subscription.respond_success(again)
    finally:
        subscription.close()


def test_drop_goes_to_the_dead_letter_topic(client: DaprClient, sidecar: L8Process, topic: str) -> None:
    dead = client.subscribe("pubsub", f"{topic}-dead")
    subscription = client.subscribe("pubsub", topic, dead_letter_topic=f"{topic}-dead")
    try:
        publish_http(sidecar, topic, {"qty": 2})
        event = receive(subscription)
        subscription.respond_drop(event)
        copy = receive(dead)
        assert (copy.id(), copy.topic(), copy.data()) == (event.id(), f"{topic}-dead", {"qty": 2})
        dead.respond_success(copy)
    finally:
        subscription.close()
        dead.close()


def test_a_closed_stream_gets_nothing_and_the_next_one_resumes(
    client: DaprClient, sidecar: L8Process, broker: str, topic: str
) -> None:
    first = client.subscribe("pubsub", topic)
    publish_http(sidecar, topic, {"n": 1})
    unanswered = receive(first)
    first.close()  # without answering
    eventually(lambda: streaming(sidecar) == [])
    publish_http(sidecar, topic, {"n": 2})  # while no stream is open

    second = client.subscribe("pubsub", topic)
    try:
        if broker in DURABLE:  # both come back: the unanswered one and the one that waited
            got = {}
            for _ in range(2):
                message = receive(second)
                got[message.data()["n"]] = message.id()
                second.respond_success(message)
            assert got[1] == unanswered.id()
        publish_http(sidecar, topic, {"n": 3})
        message = receive(second)
        assert message.data() == {"n": 3}
        second.respond_success(message)
    finally:
        second.close()


def test_subscribe_with_handler_answers_each_event(
    client: DaprClient, sidecar: L8Process, topic: str
) -> None:
    seen: list[Any] = []
    done = threading.Event()

    def handler(message: SubscriptionMessage) -> TopicEventResponse:
        seen.append(message.data())
        if len(seen) == 3:
            done.set()
        return TopicEventResponse("success")

    close = client.subscribe_with_handler("pubsub", topic, handler)
    try:
        for number in range(3):
            client.publish_event("pubsub", topic, f'{{"n": {number}}}', data_content_type="application/json")
        assert done.wait(WAIT), seen
    finally:
        close()
    assert sorted(item["n"] for item in seen) == [0, 1, 2]
    eventually(lambda: streaming(sidecar) == [])
    # Nothing more reaches the closed handler.
    client.publish_event("pubsub", topic, '{"n": 9}', data_content_type="application/json")
    time.sleep(0.5)
    assert len(seen) == 3


def test_refusals_reach_the_sdk_with_daprds_codes(
    l8: L8Launcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the broker: an unknown pub/sub, a first message that is not an initial request."""
    sidecar = l8(app_id="refusals", resources=[_resources(tmp_path / "resources", ("pubsub.in-memory", {}))])
    _sdk_finds(sidecar, monkeypatch)
    with (
        DaprClient() as client,
        pytest.raises(Exception, match="Error while initializing stream") as refused,
    ):
        client.subscribe("nope", "orders")
    error = DaprGrpcError(refused.value.__cause__)  # the SDK keeps the gRPC error as the cause
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.error_code() == "DAPR_PUBSUB_NOT_FOUND"

    # The SDK always opens with an initial request: a raw stub sends something else.
    processed = pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
        event_processed=pubsub_pb2.SubscribeTopicEventsRequestProcessedAlpha1(
            id="x", status=appcallback_pb2.TopicEventResponse()
        )
    )
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        stream = dapr_pb2_grpc.DaprStub(channel).SubscribeTopicEventsAlpha1(iter([processed]))
        with pytest.raises(grpc.RpcError) as bad:
            next(stream)
    assert DaprGrpcError(bad.value).code() == grpc.StatusCode.UNKNOWN
    assert bad.value.details() == "initial request is required"
