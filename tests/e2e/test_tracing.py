"""Tracing through real ``l8 run`` processes into a real OTLP receiver (tests/otlp_receiver.py):
one trace id from the calling app through two sidecars to the called app, and from a publish
through a real broker to the delivery; Dapr's span names and attributes; ``samplingRate: "0"``
exports nothing; gRPC and http/protobuf both; an invalid ``baggage`` is refused as daprd does."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.process import L8Launcher, L8Process, run_l8, write_component
from tests.echo_app import echo_app
from tests.otlp_receiver import OtlpGrpcReceiver, OtlpHttpReceiver, ReceivedSpan, ZipkinReceiver
from tests.servers import free_port
from tests.subscriber_app import SubscriberApp

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as found:
        yield found


@pytest.fixture
async def app_port() -> AsyncIterator[int]:
    async with echo_app() as port:
        yield port


def tracing_resources(folder: Path, tracing: dict[str, Any]) -> Path:
    """A resources folder holding a Configuration with ``spec.tracing``."""
    folder.mkdir(parents=True, exist_ok=True)
    document = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Configuration",
        "metadata": {"name": "tracing"},
        "spec": {"tracing": tracing},
    }
    (folder / "tracing.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return folder


def otel(endpoint: str, rate: str = "1", protocol: str = "http") -> dict[str, Any]:
    return {
        "samplingRate": rate,
        "otel": {"endpointAddress": endpoint, "isSecure": False, "protocol": protocol},
    }


async def started(l8: L8Launcher, **options: Any) -> L8Process:
    return await asyncio.to_thread(l8, **options)


def by_name(spans: list[ReceivedSpan], service: str, name: str, kind: str | None = None) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.name == name and kind in (None, s.kind)]
    assert len(found) == 1, [(s.service, s.name) for s in spans]
    return found[0]


async def test_one_trace_from_the_caller_app_through_two_sidecars_to_the_app(
    l8: L8Launcher, receiver: OtlpHttpReceiver, app_port: int, tmp_path: Path
) -> None:
    back = await started(
        l8,
        app_id="back",
        resources=[tracing_resources(tmp_path / "back", otel(receiver.endpoint))],
        args=["--app-port", str(app_port)],
    )
    settings = tmp_path / "front.yaml"
    settings.write_text(f"name_resolution:\n  type: static\n  apps:\n    back: 127.0.0.1:{back.port}\n")
    front = await started(
        l8,
        app_id="front",
        resources=[tracing_resources(tmp_path / "front", otel(receiver.endpoint))],
        args=["--config", str(settings)],
    )
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{front.url}/v1.0/invoke/back/method/orders/7",
            content=b"{}",
            headers={"traceparent": TRACEPARENT, "baggage": "tenant=acme"},
        )
    assert answer.status_code == 200, answer.text
    received = {name.lower(): value for name, value in answer.json()["headers"]}
    app_trace, app_parent = received["traceparent"].split("-")[1:3]
    assert app_trace == TRACE_ID
    assert received["baggage"] == "tenant=acme"  # baggage travels every hop
    assert answer.headers["traceparent"].split("-")[1] == TRACE_ID

    spans = receiver.wait_for(lambda spans: {s.service for s in spans} == {"front", "back"})
    assert {s.trace_id for s in spans} == {TRACE_ID}  # ONE trace: caller app -> l8 -> l8 -> app
    # As daprd: one span per sidecar, both named CallLocal/{app}/{method}; the caller's API span
    # is a CLIENT span, the callee's a SERVER span; the app gets the callee's span as its parent.
    assert len(spans) == 2, [(s.service, s.name, s.kind) for s in spans]
    front = by_name(spans, "front", "CallLocal/back/orders/7", "client")
    back_span = by_name(spans, "back", "CallLocal/back/orders/7", "server")
    assert front.parent_id == CALLER_SPAN
    assert back_span.parent_id == front.span_id
    assert app_parent == back_span.span_id
    assert front.attributes == {
        "rpc.service": "ServiceInvocation",
        "net.peer.name": "back",
        "dapr.protocol": "http",
        "dapr.api": "POST /v1.0/invoke/back/method/orders/7",
        "dapr.status_code": "200",
    }
    assert back_span.attributes["rpc.service"] == "ServiceInvocation"
    assert back_span.attributes["dapr.invoke_method"] == "orders/7"
    assert front.status == ("UNSET", "")


async def test_state_and_lock_calls_get_a_server_span_and_a_component_span(
    l8: L8Launcher, tmp_path: Path, redis_server: Any
) -> None:
    with OtlpGrpcReceiver() as receiver:
        folder = tracing_resources(tmp_path / "resources", otel(receiver.endpoint, protocol="grpc"))
        write_component(folder, "statestore", "state.redis", {"redisHost": redis_server.address})
        write_component(folder, "locks", "lock.redis", {"redisHost": redis_server.address})
        sidecar = await started(l8, app_id="stateful", resources=[folder])
        async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
            saved = await client.post("/v1.0/state/statestore", json=[{"key": "k", "value": 1}])
            assert saved.status_code == 204, saved.text
            got = await client.get("/v1.0/state/statestore/k", headers={"traceparent": TRACEPARENT})
            assert got.status_code == 200
            assert (await client.get("/v1.0/healthz")).status_code == 204
            assert (await client.get("/actuator/health/liveness")).status_code == 200
            lock = {"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 5}
            assert (await client.post("/v1.0-alpha1/lock/locks", json=lock)).json() == {"success": True}
            assert (await client.get("/v1.0/state/nostore/k")).status_code == 400
        spans = receiver.wait_for(
            lambda spans: {"state/get", "lock/try_lock", "/v1.0/state/nostore/k"} <= {s.name for s in spans}
        )
    server = by_name(spans, "stateful", "/v1.0/state/statestore/k")
    component = by_name(spans, "stateful", "state/get")
    assert (server.trace_id, server.parent_id) == (TRACE_ID, CALLER_SPAN)
    assert component.parent_id == server.span_id and component.kind == "client"
    assert server.attributes["db.system"] == "state"
    assert server.attributes["db.name"] == "statestore"
    assert server.attributes["db.statement"] == "GET /v1.0/state/statestore/k"
    assert server.attributes["db.connection_string"] == "state"
    assert server.attributes["dapr.status_code"] == "200"
    assert server.kind == "client" and server.status == ("UNSET", "")  # daprd's API spans
    refused = by_name(spans, "stateful", "/v1.0/state/nostore/k")
    assert refused.status == ("ERROR", "Code(400): Bad Request")
    assert refused.attributes["dapr.status_code"] == "400"
    assert component.attributes["db.name"] == "statestore"
    assert not [s for s in spans if "health" in s.name]  # probes are not traced (daprd: healthz)
    locked = by_name(spans, "stateful", "lock/try_lock")
    assert locked.parent_id == by_name(spans, "stateful", "/v1.0-alpha1/lock/locks").span_id
    assert (locked.attributes["db.system"], locked.attributes["db.name"]) == ("lock", "locks")


BROKERS = {
    "kafka": ("pubsub.kafka", "kafka_server", "brokers"),
    "redis": ("pubsub.redis", "redis_server", "redisHost"),
}


@pytest.mark.parametrize("broker", sorted(BROKERS))
async def test_publish_and_delivery_share_one_trace_through_the_broker(
    l8: L8Launcher, receiver: OtlpHttpReceiver, tmp_path: Path, broker: str, request: pytest.FixtureRequest
) -> None:
    topic = f"traced-{uuid.uuid4().hex[:10]}"
    folder = tracing_resources(tmp_path / "resources", otel(receiver.endpoint))
    component_type, server, field = BROKERS[broker]
    write_component(folder, "pubsub", component_type, {field: request.getfixturevalue(server).address})
    async with SubscriberApp(
        subscriptions=[{"pubsubname": "pubsub", "topic": topic, "route": "/orders"}]
    ) as app:
        sidecar = l8.create(
            app_id=f"orders-{tmp_path.name}", resources=[folder], args=["--app-port", str(app.port)]
        )
        await asyncio.to_thread(sidecar.start)
        await _subscribed(sidecar, topic)
        async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
            answer = await client.post(
                f"/v1.0/publish/pubsub/{topic}", json={"n": 1}, headers={"traceparent": TRACEPARENT}
            )
            assert answer.status_code == 204, answer.text
        delivery = (await app.wait_for(1, timeout=20))[0]
    spans = receiver.wait_for(lambda spans: any(s.name == f"pubsub/{topic}" for s in spans))
    # As daprd: no span of the publish itself; the CloudEvent carries the API call's span, and the
    # delivery is a CLIENT span pubsub/{topic} under it, whose id the app's request carries.
    traced = [s for s in spans if s.trace_id == TRACE_ID]  # the test's /v1.0/metadata polls aside
    assert len(traced) == 2, [(s.name, s.kind) for s in traced]
    server = by_name(spans, sidecar.app_id, f"/v1.0/publish/pubsub/{topic}", "client")
    consumer = by_name(spans, sidecar.app_id, f"pubsub/{topic}", "client")
    assert {server.trace_id, consumer.trace_id} == {TRACE_ID}
    assert consumer.parent_id == server.span_id  # linked by the event
    assert delivery.json["traceparent"].split("-")[2] == server.span_id  # the CloudEvent's
    assert delivery.headers["traceparent"].split("-")[1:3] == [TRACE_ID, consumer.span_id]
    assert server.attributes["messaging.system"] == "pubsub"
    assert server.attributes["messaging.destination.name"] == topic
    assert consumer.attributes == {"messaging.system": "pubsub", "messaging.destination.name": topic}
    assert consumer.status == ("UNSET", "")


async def test_bulk_publish_entries_are_delivered_each_under_its_producer_span(
    l8: L8Launcher, receiver: OtlpHttpReceiver, tmp_path: Path, redis_server: Any
) -> None:
    topic = f"bulk-{uuid.uuid4().hex[:10]}"
    folder = tracing_resources(tmp_path / "resources", otel(receiver.endpoint))
    write_component(folder, "pubsub", "pubsub.redis", {"redisHost": redis_server.address})
    async with SubscriberApp(
        subscriptions=[{"pubsubname": "pubsub", "topic": topic, "route": "/orders"}]
    ) as app:
        sidecar = l8.create(
            app_id=f"bulk-{tmp_path.name}", resources=[folder], args=["--app-port", str(app.port)]
        )
        await asyncio.to_thread(sidecar.start)
        await _subscribed(sidecar, topic)
        entries = [{"entryId": str(n), "event": {"n": n}, "contentType": "application/json"} for n in (1, 2)]
        async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
            answer = await client.post(
                f"/v1.0-alpha1/publish/bulk/pubsub/{topic}",
                json=entries,
                headers={"traceparent": TRACEPARENT},
            )
            assert answer.status_code == 204, answer.text
        await app.wait_for(2, timeout=20)
    consumed = f"pubsub/{topic}"
    spans = receiver.wait_for(lambda spans: sum(s.name == consumed for s in spans) == 2)
    # As daprd: a PRODUCER span per entry, named after the path, under the API call's span; each
    # entry's CloudEvent carries its own, so each delivery is under its entry's span.
    path = f"/v1.0-alpha1/publish/bulk/pubsub/{topic}"
    server = by_name(spans, sidecar.app_id, path, "client")
    producers = [s for s in spans if s.name == path and s.kind == "producer"]
    consumers = [s for s in spans if s.name == consumed]
    assert len(producers) == 2 and {s.parent_id for s in producers} == {server.span_id}
    assert {s.trace_id for s in [*producers, *consumers]} == {TRACE_ID}
    assert sorted(s.parent_id for s in consumers) == sorted(s.span_id for s in producers)


async def test_sampling_rate_zero_exports_nothing(
    l8: L8Launcher, receiver: OtlpHttpReceiver, tmp_path: Path
) -> None:
    folder = tracing_resources(tmp_path / "resources", otel(receiver.endpoint, rate="0"))
    sidecar = await started(l8, app_id="quiet", resources=[folder])
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
        for _ in range(5):
            assert (
                await client.get("/v1.0/metadata", headers={"traceparent": TRACEPARENT})
            ).status_code == 200
        refused = await client.get("/v1.0/metadata", headers={"baggage": "not baggage"})
        assert refused.status_code == 200  # tracing off: baggage is not checked, as in daprd
    await asyncio.to_thread(sidecar.stop_ok)  # a shutdown would flush what was batched
    assert receiver.requests == 0 and receiver.spans == []


async def test_an_invalid_baggage_header_is_refused_with_tracing_on(
    l8: L8Launcher, receiver: OtlpHttpReceiver, tmp_path: Path
) -> None:
    folder = tracing_resources(tmp_path / "resources", otel(receiver.endpoint))
    sidecar = await started(l8, app_id="strict", resources=[folder])
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
        refused = await client.get("/v1.0/metadata", headers={"baggage": "no-equals-sign"})
        fine = await client.get("/v1.0/metadata", headers={"baggage": "a=1,b=two;prop=x"})
    assert refused.status_code == 400
    assert refused.text == "invalid baggage header\n"
    assert refused.headers["content-type"].startswith("text/plain")
    assert fine.status_code == 200


async def _subscribed(process: L8Process, topic: str, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with httpx.AsyncClient(base_url=process.url) as client:
        while True:
            found = (await client.get("/v1.0/metadata")).json().get("subscriptions", [])
            if topic in {s["topic"] for s in found}:
                await asyncio.sleep(0.5)  # Kafka: partitions assigned after the subscribe call
                return
            assert loop.time() < deadline, f"not subscribed to {topic}"
            await asyncio.sleep(0.05)


async def test_spans_go_to_zipkin(l8: L8Launcher, tmp_path: Path) -> None:
    with ZipkinReceiver() as zipkin:
        tracing = {"samplingRate": "1", "zipkin": {"endpointAddress": zipkin.endpoint}}
        sidecar = await started(l8, app_id="zipped", resources=[tracing_resources(tmp_path / "r", tracing)])
        async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
            answer = await client.get("/v1.0/metadata", headers={"traceparent": TRACEPARENT})
        assert answer.status_code == 200
        spans = zipkin.wait_for(lambda spans: any(s.name == "/v1.0/metadata" for s in spans))
    span = by_name(spans, "zipped", "/v1.0/metadata")
    assert (span.trace_id, span.parent_id, span.kind) == (TRACE_ID, CALLER_SPAN, "client")  # daprd's kind
    assert answer.headers["traceparent"] == f"00-{TRACE_ID}-{span.span_id}-01"
    assert span.attributes["dapr.api"] == "GET /v1.0/metadata"


def test_a_bad_tracing_field_fails_start_up_naming_it(tmp_path: Path) -> None:
    tracing = {"samplingRate": "1", "otel": {"endpointAddress": "c:4317", "protocol": "thrift"}}
    folder = tracing_resources(tmp_path / "r", tracing)
    done = run_l8(
        "run", "--port", str(free_port()), "--resources-path", str(folder), "--data-dir", str(tmp_path / "d")
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("l8:")]
    assert len(lines) == 1 and "spec.tracing.otel.protocol: 'thrift' is not http or grpc" in lines[0], lines


async def test_an_unreachable_collector_fails_no_request_and_does_not_hold_shutdown(
    l8: L8Launcher, tmp_path: Path
) -> None:
    folder = tracing_resources(tmp_path / "r", otel(f"127.0.0.1:{free_port()}"))
    sidecar = await started(l8, app_id="lonely", resources=[folder])
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
        for _ in range(3):
            assert (await client.get("/v1.0/metadata")).status_code == 200
    await asyncio.sleep(1.5)  # a batch is being sent (and retried) when the stop comes
    began = time.monotonic()
    await asyncio.to_thread(sidecar.stop_ok)
    assert time.monotonic() - began < 8


async def test_a_callers_unsampled_trace_is_followed_not_exported(
    l8: L8Launcher, receiver: OtlpHttpReceiver, tmp_path: Path, app_port: int
) -> None:
    folder = tracing_resources(tmp_path / "r", otel(receiver.endpoint))
    sidecar = await started(l8, app_id="follower", resources=[folder], args=["--app-port", str(app_port)])
    unsampled = f"00-{TRACE_ID}-{CALLER_SPAN}-00"
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
        answer = await client.get("/v1.0/invoke/follower/method/x", headers={"traceparent": unsampled})
        sampled = await client.get("/v1.0/metadata")  # no parent: a new trace, sampled at rate 1
    assert answer.status_code == 200
    received = {name.lower(): value for name, value in answer.json()["headers"]}
    trace_id, _, flags = received["traceparent"].split("-")[1:]
    assert (trace_id, flags) == (TRACE_ID, "00")  # the caller's decision travels on (ParentBased)
    assert answer.headers["traceparent"].endswith("-00")
    assert sampled.headers["traceparent"].endswith("-01")
    await asyncio.to_thread(sidecar.stop_ok)  # shutdown exports whatever was batched
    spans = receiver.wait_for(lambda spans: any(s.name == "/v1.0/metadata" for s in spans))
    assert TRACE_ID not in {s.trace_id for s in spans}


async def test_input_binding_deliveries_get_daprds_span_under_the_events_traceparent(
    l8: L8Launcher, receiver: OtlpHttpReceiver, tmp_path: Path, kafka_server: Any
) -> None:
    topic = f"binding-{uuid.uuid4().hex[:8]}"
    folder = tracing_resources(tmp_path / "resources", otel(receiver.endpoint))
    kafka = {
        "brokers": kafka_server.address,
        "topics": topic,
        "publishTopic": topic,
        "consumerGroup": f"group-{topic}",
        "initialOffset": "oldest",
        "consumeRetryInterval": "100ms",
    }
    write_component(folder, "orders", "bindings.kafka", kafka)
    write_component(folder, "tick", "bindings.cron", {"schedule": "@every 1s"})
    async with SubscriberApp() as app:
        refused: list[object] = []

        def answer(delivery: Any) -> int:
            if delivery.method == "POST" and not refused:
                refused.append(delivery)
                return 500  # refused once: the record comes again, in a delivery of its own
            return 200

        app.respond_with("/orders", answer)
        sidecar = l8.create(
            app_id=f"bound-{tmp_path.name}", resources=[folder], args=["--app-port", str(app.port)]
        )
        await asyncio.to_thread(sidecar.start)
        async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
            sent = await client.post(
                "/v1.0/bindings/orders",
                json={"operation": "create", "data": {"id": 7}},
                headers={"traceparent": TRACEPARENT},
            )
            assert sent.status_code == 204, sent.text
        spans = await asyncio.to_thread(
            receiver.wait_for,
            lambda spans: (
                sum(s.name == "bindings/orders" for s in spans) == 2
                and any(s.name == "bindings/tick" for s in spans)
            ),
            30,
        )
        posts = [d for d in app.received("/orders") if d.method == "POST"]
    deliveries = [s for s in spans if s.name == "bindings/orders"]
    # daprd (processor/binding sendBindingEventToApp): bindings/{name}, a CLIENT span under the
    # event's traceparent (the Kafka record's header), with ConstructInputBindingSpanAttributes
    # and the app's HTTP answer as its status.
    assert {s.trace_id for s in deliveries} == {TRACE_ID}
    assert {s.kind for s in deliveries} == {"client"}
    assert deliveries[0].attributes == {
        "db.name": "orders",
        "rpc.service": "Dapr",
        "db.system": "bindings",
        "db.connection_string": "POST /orders",
    }
    assert sorted(s.status for s in deliveries) == [
        ("ERROR", "Code(500): Internal Server Error"),
        ("UNSET", ""),
    ]
    # The app's request carries the delivery's span.
    assert sorted(p.headers["traceparent"].split("-")[2] for p in posts[:2]) == sorted(
        s.span_id for s in deliveries
    )
    tick = next(s for s in spans if s.name == "bindings/tick")
    assert tick.parent_id == "" and tick.trace_id != TRACE_ID  # no traceparent: a new trace
