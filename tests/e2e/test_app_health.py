"""Dapr's app health checks on real ``l8 run`` processes with a real app whose ``/healthz`` is
flipped (tests/subscriber_app.py): while the app is unhealthy no pub/sub message (a real Redis, a
real Kafka-protocol broker, the in-memory broker), no Kafka binding event and no cron event
reaches it and an invocation of it is refused; once it is healthy
again every message published meanwhile arrives, each once; GET /v1.0/metadata shows the settings
in Dapr's shape and the status."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.servers import LOOPBACK, free_port
from tests.subscriber_app import SubscriberApp

pytestmark = pytest.mark.e2e

HEALTH_FLAGS = [
    "--enable-app-health-check",
    "--app-health-probe-interval",
    "200ms",
    "--app-health-probe-timeout",
    "1000",
    "--app-health-threshold",
    "2",
]

BROKERS: dict[str, Any] = {
    "in-memory": lambda request: ("pubsub.in-memory", {}),
    "redis": lambda request: ("pubsub.redis", {"redisHost": request.getfixturevalue("redis_server").address}),
    "kafka": lambda request: (
        "pubsub.kafka",
        {
            "brokers": request.getfixturevalue("kafka_server").address,
            "partitionCount": "3",
            "sessionTimeout": "2s",
            "heartbeatInterval": "200ms",
        },
    ),
}


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    component_type, metadata = BROKERS[request.param](request)
    folder = tmp_path / "resources"
    write_component(folder, "pubsub", component_type, metadata)
    return folder


async def sidecar(l8: L8Launcher, app: SubscriberApp, resources: Path, *args: str) -> L8Process:
    process = l8.create(
        app_id=f"health-{uuid.uuid4().hex[:8]}",
        resources=[resources],
        args=["--app-port", str(app.port), *HEALTH_FLAGS, *args],
    )
    await asyncio.to_thread(process.start)
    return process


async def metadata(process: L8Process) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=process.url) as client:
        answer = await client.get("/v1.0/metadata")
        assert answer.status_code == 200
        found: dict[str, Any] = answer.json()
        return found


async def status_becomes(process: L8Process, status: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while (await metadata(process))["appHealth"]["status"] != status:
        assert time.monotonic() < deadline, f"app health never became {status}"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the listeners (pause, resume) run right after the status changes


async def publish(process: L8Process, topic: str, numbers: range) -> None:
    async with httpx.AsyncClient(base_url=process.url) as client:
        for n in numbers:
            answer = await client.post(
                f"/v1.0/publish/pubsub/{topic}", json={"n": n}, params={"metadata.partitionKey": str(n)}
            )
            assert answer.status_code == 204, answer.text


async def health_changes(metrics_port: int) -> dict[str, float]:
    """``l8_app_health_changes_total`` by status, parsed by prometheus_client's parser."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://{LOOPBACK}:{metrics_port}/metrics")
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
        if sample.name == "l8_app_health_changes_total"
    }


async def invoke(process: L8Process) -> httpx.Response:
    async with httpx.AsyncClient(base_url=process.url) as client:
        return await client.post(f"/v1.0/invoke/{process.app_id}/method/hello", content=b"hi")


def delivered(app: SubscriberApp) -> list[int]:
    return [d.json["data"]["n"] for d in app.received("/orders") if d.method == "POST"]


async def test_messages_wait_while_the_app_is_unhealthy_and_all_arrive_once_after(
    l8: L8Launcher, broker: Path
) -> None:
    topic = f"orders-{uuid.uuid4().hex[:10]}"
    subscriptions = [{"pubsubname": "pubsub", "topic": topic, "route": "/orders"}]
    async with SubscriberApp(subscriptions=subscriptions) as app:
        app.respond("/healthz", 200)
        process = await sidecar(l8, app, broker)
        await status_becomes(process, "healthy")
        assert (await metadata(process))["appConnectionProperties"]["health"] == {
            "healthCheckPath": "/healthz",
            "healthProbeInterval": "200ms",
            "healthProbeTimeout": "1s",
            "healthThreshold": 2,
        }
        # Consumers live (Kafka: partitions assigned) once a first message arrives.
        deadline = time.monotonic() + 20
        while not delivered(app):
            assert time.monotonic() < deadline, "no delivery while the app is healthy"
            await publish(process, topic, range(1))
            await asyncio.sleep(0.5)
        await asyncio.sleep(0.5)
        before = len(delivered(app))

        app.respond("/healthz", 503)
        await status_becomes(process, "unhealthy")
        await publish(process, topic, range(1, 11))
        await asyncio.sleep(2.0)
        assert len(delivered(app)) == before, "delivered while the app was unhealthy"

        app.respond("/healthz", 200)
        await status_becomes(process, "healthy")
        deadline = time.monotonic() + 30
        while not set(range(1, 11)) <= set(delivered(app)):
            assert time.monotonic() < deadline, f"messages lost: got {sorted(set(delivered(app)))}"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        after = [n for n in delivered(app) if n > 0]
        assert sorted(after) == list(range(1, 11)), "a message came twice"


async def test_a_cron_binding_stops_while_the_app_is_unhealthy_and_fires_again_after(
    l8: L8Launcher, tmp_path: Path
) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "tick", "bindings.cron", {"schedule": "@every 1s"})
    async with SubscriberApp() as app:
        app.respond("/healthz", 200)
        metrics_port = free_port()
        process = await sidecar(l8, app, resources, "--metrics-port", str(metrics_port))

        def ticks() -> int:
            return len([d for d in app.received("/tick") if d.method == "POST"])

        deadline = time.monotonic() + 10
        while ticks() < 2:
            assert time.monotonic() < deadline, "the cron binding never fired"
            await asyncio.sleep(0.1)

        assert (await invoke(process)).status_code == 200
        app.respond("/healthz", 500)
        await status_becomes(process, "unhealthy")
        paused_at = ticks()
        refused = await invoke(process)  # daprd short-circuits calls to an unhealthy app
        assert refused.status_code == 500
        assert refused.json() == {
            "errorCode": "ERR_DIRECT_INVOKE",
            "message": f"failed to invoke, id: {process.app_id}, err: app is not in a healthy state",
        }
        await asyncio.sleep(2.5)
        assert ticks() == paused_at, "the cron binding fired while the app was unhealthy"
        assert app.received("/hello") and len(app.received("/hello")) == 1

        app.respond("/healthz", 200)
        await status_becomes(process, "healthy")
        assert (await invoke(process)).status_code == 200
        deadline = time.monotonic() + 10
        while ticks() < paused_at + 2:
            assert time.monotonic() < deadline, "the cron binding did not fire again"
            await asyncio.sleep(0.1)
        assert await health_changes(metrics_port) == {"healthy": 2, "unhealthy": 1}


async def test_nothing_is_pulled_before_the_first_healthy_probe(l8: L8Launcher, tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "tick", "bindings.cron", {"schedule": "@every 1s"})
    async with SubscriberApp() as app:
        app.respond("/healthz", 503)
        process = await sidecar(l8, app, resources)
        await status_becomes(process, "unhealthy")
        await asyncio.sleep(2.0)
        assert app.received("/tick") == []  # not even the OPTIONS probe
        assert (await metadata(process))["appHealth"] == {"status": "unhealthy"}
        app.respond("/healthz", 204)
        await status_becomes(process, "healthy")
        deadline = time.monotonic() + 10
        while not [d for d in app.received("/tick") if d.method == "POST"]:
            assert time.monotonic() < deadline, "the cron binding never fired"
            await asyncio.sleep(0.1)


async def test_without_the_flag_there_is_no_health_in_metadata(l8: L8Launcher) -> None:
    async with SubscriberApp() as app:
        process = l8.create(app_id="no-health", args=["--app-port", str(app.port)])
        await asyncio.to_thread(process.start)
        found = await metadata(process)
        assert "health" not in found["appConnectionProperties"]
        assert "appHealth" not in found
        await asyncio.sleep(0.5)
        assert app.received("/healthz") == []


async def test_kafka_binding_events_wait_while_the_app_is_unhealthy(
    l8: L8Launcher, tmp_path: Path, kafka_server: Any
) -> None:
    topic = f"binding-{uuid.uuid4().hex[:8]}"
    resources = tmp_path / "resources"
    write_component(
        resources,
        "orders",
        "bindings.kafka",
        {
            "brokers": kafka_server.address,
            "topics": topic,
            "publishTopic": topic,
            "consumerGroup": f"group-{topic}",
            "initialOffset": "oldest",
            "sessionTimeout": "2s",
            "heartbeatInterval": "200ms",
        },
    )
    async with SubscriberApp() as app:
        app.respond("/healthz", 200)
        process = await sidecar(l8, app, resources)

        def events() -> list[int]:
            return [d.json["n"] for d in app.received("/orders") if d.method == "POST"]

        async def send(numbers: range) -> None:
            async with httpx.AsyncClient(base_url=process.url) as client:
                for n in numbers:
                    answer = await client.post(
                        "/v1.0/bindings/orders", json={"operation": "create", "data": {"n": n}}
                    )
                    assert answer.status_code == 204, answer.text

        await send(range(1))
        deadline = time.monotonic() + 20
        while not events():
            assert time.monotonic() < deadline, "no binding event while the app is healthy"
            await asyncio.sleep(0.1)

        app.respond("/healthz", 503)
        await status_becomes(process, "unhealthy")
        await send(range(1, 6))
        await asyncio.sleep(2.0)
        assert events() == [0], "binding events delivered while the app was unhealthy"

        app.respond("/healthz", 200)
        await status_becomes(process, "healthy")
        deadline = time.monotonic() + 30
        while not set(range(6)) <= set(events()):
            assert time.monotonic() < deadline, f"binding events lost: got {events()}"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert sorted(events()) == list(range(6)), "a binding event came twice"
