"""A gRPC app behind real ``l8 run --app-protocol grpc`` processes (tests/grpc_callback_app.py, in
this loop): an app that starts after its sidecar, declarative and programmatic subscriptions merged,
a bulk subscription's batches through ``OnBulkTopicEventAlpha1``, a restarted app's subscriptions
read again, and no token in the calls without ``APP_API_TOKEN``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from dapr.proto.runtime.v1 import appcallback_pb2

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.grpc_callback_app import Recorder
from tests.servers import free_port

pytestmark = pytest.mark.e2e


async def subscribed(process: L8Process, *topics: str, within: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=process.url) as client:
        while True:
            found = (await client.get("/v1.0/metadata")).json().get("subscriptions", [])
            if set(topics) <= {s["topic"] for s in found}:
                return list(found)
            assert time.monotonic() < deadline, f"subscriptions: {found}"
            await asyncio.sleep(0.05)


async def received(app: Recorder, name: str, count: int, within: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + within
    while len(app.received(name)) < count:
        assert time.monotonic() < deadline, f"{len(app.received(name))} of {count} {name} calls"
        await asyncio.sleep(0.05)
    return app.received(name)


def declarative(folder: Path, topic: str, route: str) -> None:
    document = {
        "apiVersion": "dapr.io/v2alpha1",
        "kind": "Subscription",
        "metadata": {"name": f"{topic}-subscription"},
        "spec": {"pubsubname": "pubsub", "topic": topic, "routes": {"default": route}},
    }
    (folder / f"{topic}.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")


async def test_an_app_started_later_gets_declarative_programmatic_and_bulk_events(
    l8: L8Launcher, tmp_path: Path
) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "pubsub", "pubsub.in-memory")
    declarative(resources, "audit", "audited")
    app = Recorder()
    app.subscriptions = [
        appcallback_pb2.TopicSubscription(pubsub_name="pubsub", topic="orders"),
        appcallback_pb2.TopicSubscription(
            pubsub_name="pubsub",
            topic="batch",
            routes=appcallback_pb2.TopicRoutes(default="batches"),
            bulk_subscribe=appcallback_pb2.BulkSubscribeConfig(
                enabled=True, max_messages_count=3, max_await_duration_ms=300
            ),
        ),
    ]
    port = free_port()
    process = l8.create(
        app_id="grpc-later", resources=[resources], args=["--app-port", str(port), "--app-protocol", "grpc"]
    )
    await asyncio.to_thread(process.start)
    await asyncio.sleep(0.5)  # l8 waits for the app's port
    await app.start(port)
    try:
        found = await subscribed(process, "orders", "batch", "audit")
        by_topic = {s["topic"]: s for s in found}
        assert by_topic["audit"]["type"] == "DECLARATIVE"
        assert by_topic["batch"]["type"] == "PROGRAMMATIC"
        async with httpx.AsyncClient(base_url=process.url) as client:
            for topic, body in [("orders", {"n": 1}), ("audit", {"n": 2})]:
                answer = await client.post(f"/v1.0/publish/pubsub/{topic}", json=body)
                assert answer.status_code == 204, answer.text
            for n in range(3):
                assert (await client.post("/v1.0/publish/pubsub/batch", json={"n": n})).status_code == 204
        events = await received(app, "OnTopicEvent", 2)
        by_path = {event.path: event for event in events}
        assert set(by_path) == {"", "audited"}  # daprd's empty default route; the declared one as named
        assert orjson.loads(by_path[""].data) == {"n": 1} and by_path[""].topic == "orders"
        assert orjson.loads(by_path["audited"].data) == {"n": 2}
        batches = await received(app, "OnBulkTopicEventAlpha1", 1)
        entries = [entry for batch in batches for entry in batch.entries]
        deadline = time.monotonic() + 5
        while len(entries) < 3:
            assert time.monotonic() < deadline, f"{len(entries)} of 3 bulk entries"
            await asyncio.sleep(0.05)
            entries = [entry for batch in app.received("OnBulkTopicEventAlpha1") for entry in batch.entries]
        assert sorted(orjson.loads(e.cloud_event.data)["n"] for e in entries) == [0, 1, 2]
        assert {batch.path for batch in app.received("OnBulkTopicEventAlpha1")} == {"batches"}
        assert all("dapr-api-token" not in metadata for _, _, metadata in app.calls)  # no APP_API_TOKEN
    finally:
        await app.stop()


async def test_a_restarted_app_is_asked_for_its_subscriptions_again(l8: L8Launcher, tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "pubsub", "pubsub.in-memory")
    app = Recorder()
    app.subscriptions = [appcallback_pb2.TopicSubscription(pubsub_name="pubsub", topic="first")]
    port = await app.start(free_port())
    process = l8.create(
        app_id="grpc-restart", resources=[resources], args=["--app-port", str(port), "--app-protocol", "grpc"]
    )
    await asyncio.to_thread(process.start)
    try:
        await subscribed(process, "first")
        await app.stop()
        await asyncio.sleep(1.5)  # l8 sees the port close
        app.subscriptions = [appcallback_pb2.TopicSubscription(pubsub_name="pubsub", topic="second")]
        await app.start(port)
        await subscribed(process, "second")
        async with httpx.AsyncClient(base_url=process.url) as client:
            assert (await client.post("/v1.0/publish/pubsub/second", json={"n": 9})).status_code == 204
        (event,) = await received(app, "OnTopicEvent", 1)
        assert (event.topic, orjson.loads(event.data)) == ("second", {"n": 9})
        assert len(app.received("ListTopicSubscriptions")) >= 2
    finally:
        await app.stop()
