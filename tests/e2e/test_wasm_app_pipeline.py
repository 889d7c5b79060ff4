"""middleware.http.wasm in a Configuration's ``appHttpPipeline`` through a real ``l8 run`` and a
real app: service invocation delivered to the app passes the example guests (one answering 401
without the right Authorization header, so the app is never called; one rewriting the path the app
sees), in the pipeline's order; pub/sub and input-binding deliveries go through the same pipeline;
the sidecar's own API (httpPipeline) is not affected."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.echo_app import calls, echo_app
from tests.subscriber_app import SubscriberApp
from wasm.examples.builder import build

pytestmark = pytest.mark.e2e


def _configuration(tmp_path: Path, *handlers: str) -> Path:
    path = tmp_path / "config.yaml"
    listed = "".join(f"      - {{name: {name}, type: middleware.http.wasm}}\n" for name in handlers)
    path.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: appconfig}\n"
        f"spec:\n  appHttpPipeline:\n    handlers:\n{listed}"
    )
    return path


def _resources(tmp_path: Path, prefix: str) -> Path:
    folder = tmp_path / "resources"
    write_component(folder, "pubsub", "pubsub.in-memory", {})
    write_component(
        folder,
        "auth",
        "middleware.http.wasm",
        {"url": f"file://{build('wat', 'auth')}", "guestConfig": "Bearer s3cret"},
    )
    write_component(
        folder,
        "rewrite",
        "middleware.http.wasm",
        {"url": str(build("wat", "rewrite")), "guestConfig": prefix},
    )
    return folder


@pytest.fixture
async def app_port() -> AsyncIterator[int]:
    async with echo_app() as port:
        yield port


async def test_invocation_of_the_app_runs_the_app_pipeline(
    l8: L8Launcher, tmp_path: Path, app_port: int
) -> None:
    app_id = f"back-{uuid.uuid4().hex[:6]}"
    sidecar: L8Process = await asyncio.to_thread(
        l8,
        app_id=app_id,
        resources=[_resources(tmp_path, "/orders/=/v2/orders/")],
        args=["--app-port", str(app_port), "--config", str(_configuration(tmp_path, "auth", "rewrite"))],
    )
    marker = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
        refused = await client.post(f"/v1.0/invoke/{app_id}/method/orders/{marker}", content=b"x")
        assert (refused.status_code, refused.text) == (401, "unauthorized by wasm\n")
        assert refused.headers["www-authenticate"] == "Bearer"
        assert calls[f"/v2/orders/{marker}"] == calls[f"/orders/{marker}"] == 0  # the app was not called

        answer = await client.post(
            f"/v1.0/invoke/{app_id}/method/orders/{marker}?x=1",
            content=b'{"n": 1}',
            headers={"Authorization": "Bearer s3cret", "content-type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        echoed = answer.json()
        assert (echoed["method"], echoed["path"], echoed["query"]) == ("POST", f"/v2/orders/{marker}", "x=1")
        assert echoed["body"] == '{"n": 1}'
        sent = {name.lower(): value for name, value in echoed["headers"]}
        assert sent["dapr-caller-app-id"] == app_id  # l8's own headers reach the guests and the app
        assert sent["content-type"] == "application/json"

        # the app's error statuses come back through the pipeline unchanged
        failing = await client.get(
            f"/v1.0/invoke/{app_id}/method/status/418", headers={"Authorization": "Bearer s3cret"}
        )
        assert (failing.status_code, failing.json(), failing.headers["x-app"]) == (
            418,
            {"status": 418},
            "yes",
        )

        # the sidecar's own API is not behind the app's pipeline
        assert (await client.get("/v1.0/metadata")).status_code == 200


async def test_pubsub_and_input_binding_deliveries_run_the_app_pipeline(
    l8: L8Launcher, tmp_path: Path
) -> None:
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    subscription = {"pubsubname": "pubsub", "topic": topic, "route": "/orders"}
    resources = _resources(tmp_path, "/orders=/v2/orders")
    write_component(resources, "ordersclock", "bindings.cron", {"schedule": "@every 1s"})  # POST /ordersclock
    async with SubscriberApp(subscriptions=[subscription]) as app:
        app.respond("/v2/orders", 200)
        sidecar: L8Process = await asyncio.to_thread(
            l8,
            app_id=f"sub-{uuid.uuid4().hex[:6]}",
            resources=[resources],
            args=["--app-port", str(app.port), "--config", str(_configuration(tmp_path, "rewrite"))],
        )
        async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
            for _ in range(100):  # until discovery has read the app's subscriptions
                subscriptions = (await client.get("/v1.0/metadata")).json().get("subscriptions", [])
                if any(s["topic"] == topic for s in subscriptions):
                    break
                await asyncio.sleep(0.1)
            published = await client.post(f"/v1.0/publish/pubsub/{topic}", json={"order": 1})
            assert published.status_code == 204
        [delivery] = await app.wait_for(1, path="/v2/orders", timeout=15)
        assert delivery.json["data"] == {"order": 1}
        assert app.received("/orders") == []
        # the binding's OPTIONS probe and its events went through the guest too
        ticks = await app.wait_for(2, path="/v2/ordersclock", timeout=15)
        assert {tick.method for tick in ticks} >= {"OPTIONS", "POST"}
        assert app.received("/ordersclock") == []
