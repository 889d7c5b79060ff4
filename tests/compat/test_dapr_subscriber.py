"""A subscriber app written with the Dapr Python SDK's FastAPI extension (``dapr.ext.fastapi.DaprApp``)
receives events through a real ``l8 run`` process, unmodified.

``DaprApp`` serves ``GET /dapr/subscribe`` (``pubsubname``, ``topic``, ``route``, ``metadata`` and an
optional ``deadLetterTopic``) and mounts each handler as a ``POST`` route that reads the CloudEvent
body. The app runs in this test process under uvicorn, on a thread; l8 is a separate process pointed
at it with ``--app-port``, with its embedded defaults (the in-memory pub/sub named ``pubsub``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from dapr.ext.fastapi import DaprApp
from fastapi import Body, FastAPI

from tests.e2e.process import L8Launcher
from tests.servers import LOOPBACK, free_port


class SdkSubscriber:
    """A FastAPI app made a Dapr subscriber by DaprApp, recording what its handlers receive."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {"orders": [], "poison": []}
        self.fail_orders = False
        app = FastAPI()
        dapr_app = DaprApp(app)

        @dapr_app.subscribe(pubsub="pubsub", topic="orders", dead_letter_topic="poison")
        def orders(event: dict[str, Any] = Body()) -> dict[str, str]:
            self.received["orders"].append(event)
            return {"status": "DROP" if self.fail_orders else "SUCCESS"}

        @dapr_app.subscribe(pubsub="pubsub", topic="poison", route="/dead-letters")
        def poison(event: dict[str, Any] = Body()) -> None:
            self.received["poison"].append(event)

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=LOOPBACK, port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the SDK app did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def wait_for(self, topic: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received[topic]) < count:
            assert time.monotonic() < deadline, f"{topic}: {len(self.received[topic])} of {count} events"
            time.sleep(0.02)
        return self.received[topic]


@pytest.fixture
def sdk_app() -> Iterator[SdkSubscriber]:
    subscriber = SdkSubscriber()
    yield subscriber
    subscriber.stop()


def _wait_subscribed(url: str, topics: set[str], timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.get(f"{url}/v1.0/metadata").json().get("subscriptions", [])
        if {s["topic"] for s in found} >= topics:
            return list(found)
        assert time.monotonic() < deadline, f"subscriptions not loaded: {found}"
        time.sleep(0.05)


def test_a_dapr_app_started_after_l8_receives_events(l8: L8Launcher, sdk_app: SdkSubscriber) -> None:
    sidecar = l8(app_id="checkout", args=["--app-port", str(sdk_app.port)])
    sdk_app.start()  # the app comes up after its sidecar, as it often does
    subscriptions = _wait_subscribed(sidecar.url, {"orders", "poison"})
    orders = next(s for s in subscriptions if s["topic"] == "orders")
    assert orders["type"] == "PROGRAMMATIC"
    assert orders["deadLetterTopic"] == "poison"
    assert orders["rules"] == [{"match": "", "path": "/events/pubsub/orders"}]

    answer = httpx.post(f"{sidecar.url}/v1.0/publish/pubsub/orders", json={"orderId": 7})
    assert answer.status_code == 204, answer.text
    (event,) = sdk_app.wait_for("orders", 1)
    assert event["data"] == {"orderId": 7}
    assert event["source"] == "checkout"
    assert event["topic"] == "orders"
    assert event["pubsubname"] == "pubsub"
    assert event["type"] == "com.dapr.event.sent"
    assert event["datacontenttype"] == "application/json"

    text = httpx.post(
        f"{sidecar.url}/v1.0/publish/pubsub/orders", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert text.status_code == 204
    assert sdk_app.wait_for("orders", 2)[1]["data"] == "hello"


def test_a_dropped_event_reaches_the_sdk_apps_dead_letter_route(
    l8: L8Launcher, sdk_app: SdkSubscriber
) -> None:
    sdk_app.start()
    sdk_app.fail_orders = True
    sidecar = l8(app_id="checkout", args=["--app-port", str(sdk_app.port)])
    _wait_subscribed(sidecar.url, {"orders", "poison"})
    answer = httpx.post(f"{sidecar.url}/v1.0/publish/pubsub/orders", json={"orderId": 8})
    assert answer.status_code == 204
    (dropped,) = sdk_app.wait_for("orders", 1)
    (dead,) = sdk_app.wait_for("poison", 1)
    assert dead["id"] == dropped["id"]  # the original event, unchanged
    assert dead["data"] == {"orderId": 8}
