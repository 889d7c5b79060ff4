"""Input bindings on real ``l8 run`` processes with a real app (tests/subscriber_app.py): the
``OPTIONS`` probe (2xx and 405 read, 404 not read, ``direction: input`` not probed), cron events
with Dapr's headers and the app token, Kafka events from a real Kafka-protocol broker published
through the Kafka output binding, and redelivery of an event the app refused."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.subscriber_app import Delivery, SubscriberApp

pytestmark = pytest.mark.e2e

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def posts(app: SubscriberApp, path: str, count: int, within: float = 10.0) -> list[Delivery]:
    """The first ``count`` POSTs to ``path`` (the probes left out), waiting up to ``within``."""
    for _ in range(int(within * 10)):
        found = [d for d in app.received(path) if d.method == "POST"]
        if len(found) >= count:
            return found[:count]
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} POSTs to {path}: {app.received(path)}")


async def sidecar(l8: L8Launcher, app: SubscriberApp, resources: Path, **options: object) -> L8Process:
    process = l8.create(
        app_id=f"bindings-{uuid.uuid4().hex[:8]}",
        resources=[resources],
        args=["--app-port", str(app.port)],
        **options,  # type: ignore[arg-type]
    )
    await asyncio.to_thread(process.start)
    return process


async def test_cron_events_reach_the_app_with_daprs_headers(l8: L8Launcher, tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "tick", "bindings.cron", {"schedule": "@every 1s"})
    write_component(resources, "sixfields", "bindings.cron", {"schedule": "* * * * * *", "route": "/six"})
    async with SubscriberApp() as app:
        await sidecar(l8, app, resources, env={"APP_API_TOKEN": "app-secret"})
        ticks = await posts(app, "/tick", 2)
        await posts(app, "/six", 2)
        probes = [d for d in app.received() if d.method == "OPTIONS"]
        assert {d.path for d in probes} == {"/tick", "/six"}
        for tick in ticks:
            assert tick.method == "POST"
            assert tick.body == b""
            assert tick.headers["Content-Type"] == "application/json"
            assert tick.headers["timeZone"] == "Local"
            assert tick.headers["readTimeUTC"].endswith(" +0000 UTC")
            assert tick.headers["traceparent"].startswith("00-")
            assert tick.headers["dapr-api-token"] == "app-secret"
        assert 0.5 < ticks[1].arrived - ticks[0].arrived < 2.0  # a second apart, on a busy machine too


async def test_the_probe_decides_what_is_read(l8: L8Launcher, tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "absent", "bindings.cron", {"schedule": "@every 1s"})
    write_component(resources, "refuses", "bindings.cron", {"schedule": "@every 1s"})
    write_component(resources, "declared", "bindings.cron", {"schedule": "@every 1s", "direction": "input"})
    async with SubscriberApp() as app:
        app.respond("/absent", 404)
        app.respond("/refuses", 405)  # OPTIONS not allowed: still read, as daprd does
        app.respond("/declared", 404)
        process = await sidecar(l8, app, resources)
        await posts(app, "/refuses", 2)
        await posts(app, "/declared", 1)
        await asyncio.sleep(1.5)
        assert [d.method for d in app.received("/absent")] == ["OPTIONS"]
        assert "OPTIONS" not in {d.method for d in app.received("/declared")}
        async with httpx.AsyncClient(base_url=process.url) as client:
            components = {c["name"]: c for c in (await client.get("/v1.0/metadata")).json()["components"]}
        assert components["absent"]["capabilities"] == ["INPUT_BINDING"]


async def test_an_unread_binding_is_probed_again_when_the_app_comes_back(
    l8: L8Launcher, tmp_path: Path
) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "tick", "bindings.cron", {"schedule": "@every 1s"})
    async with SubscriberApp() as app:
        app.respond("/tick", 404)
        await sidecar(l8, app, resources)
        await app.wait_for(1, path="/tick", timeout=10)
        port = app.port
    await asyncio.sleep(1.5)  # down for longer than the sidecar's probe interval
    async with SubscriberApp(port=port) as back:
        await posts(back, "/tick", 2)
        assert back.received("/tick")[0].method == "OPTIONS"


async def test_kafka_events_and_redelivery(l8: L8Launcher, tmp_path: Path, kafka_server: object) -> None:
    topic = f"binding-{uuid.uuid4().hex[:8]}"
    resources = tmp_path / "resources"
    write_component(
        resources,
        "orders",
        "bindings.kafka",
        {
            "brokers": kafka_server.address,  # type: ignore[attr-defined]
            "topics": topic,
            "publishTopic": topic,
            "consumerGroup": f"group-{topic}",
            "initialOffset": "oldest",
            "sessionTimeout": "2s",
            "heartbeatInterval": "200ms",
            "consumeRetryInterval": "100ms",
        },
    )
    async with SubscriberApp() as app:
        refused: list[Delivery] = []

        def answer(delivery: Delivery) -> int:
            if delivery.method == "POST" and not refused:
                refused.append(delivery)
                return 500  # the first delivery is refused: the record comes again
            return 200

        app.respond_with("/orders", answer)
        process = await sidecar(l8, app, resources)
        async with httpx.AsyncClient(base_url=process.url) as client:
            answer = await client.post(
                "/v1.0/bindings/orders",
                json={
                    "operation": "create",
                    "data": {"id": 7},
                    "metadata": {"partitionKey": "k7", "source": "test"},
                },
                headers={"traceparent": PARENT},
            )
            assert answer.status_code == 204, answer.text
            events = await posts(app, "/orders", 2, within=20)
        assert [e.body for e in events] == [b'{"id":7}', b'{"id":7}']
        assert events[1].headers["__key"] == "k7"
        assert events[1].headers["source"] == "test"
        assert events[1].headers["__topic"] == topic
        # The trace goes on: the output call's span travels in the record, the delivery continues it.
        assert events[1].headers["traceparent"].split("-")[1] == PARENT.split("-")[1]
        await asyncio.sleep(1.0)
        assert len([d for d in app.received("/orders") if d.method == "POST"]) == 2  # acknowledged


async def test_the_inbound_resiliency_policy_retries_an_event_in_the_sidecar(
    l8: L8Launcher, tmp_path: Path
) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "tick", "bindings.cron", {"schedule": "@every 2s"})
    policy = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "bindings"},
        "spec": {
            "policies": {"retries": {"quick": {"policy": "constant", "duration": "50ms", "maxRetries": 3}}},
            "targets": {"components": {"tick": {"inbound": {"retry": "quick"}}}},
        },
    }
    (resources / "resiliency.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    async with SubscriberApp() as app:
        answers = iter([500, 503, 200])

        def answer(delivery: Delivery) -> int:
            return next(answers, 200) if delivery.method == "POST" else 200

        app.respond_with("/tick", answer)
        await sidecar(l8, app, resources)
        first, second, third = await posts(app, "/tick", 3, within=8)
        # One tick, delivered three times within the policy's 50 ms pauses (not a tick apart).
        assert first.headers["readTimeUTC"] == second.headers["readTimeUTC"] == third.headers["readTimeUTC"]
        assert third.arrived - first.arrived < 1.0
