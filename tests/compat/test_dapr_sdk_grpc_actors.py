"""The Dapr Python SDK's gRPC actor host (``ActorGrpcHost``), unmodified, through a real ``l8 run``
with **no app port**: the app (tests/compat/sdk_grpc_actor_app.py) dials l8's gRPC API and hosts
its actors over ``SubscribeActorEventsAlpha1``. Calls come over HTTP (the SDK's ``ActorProxy``)
and over gRPC (``InvokeActor``); the actor's state, reminder and timer go through the SDK's gRPC
actor client; l8 deactivates it after its idle timeout over the stream; and when the app goes
away its types leave placement and calls fail as daprd fails them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from dapr.actor import ActorId, ActorProxy
from dapr.proto.runtime.v1 import actors_pb2, dapr_pb2_grpc

from tests.compat.actor_hosting import wait_hosting
from tests.compat.sdk_grpc_actor_app import StreamCartInterface
from tests.e2e.actor_cluster import actor_state_store, coordination_config
from tests.e2e.process import L8Launcher, L8Process, l8_env
from tests.servers import LOOPBACK, RedisServer, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
TYPE = "StreamCartActor"


class GrpcActorApp:
    """The SDK app in a process of its own, pointed at the sidecar's gRPC port only."""

    def __init__(self, workdir: Path, sidecar: L8Process, name: str = "app", app_port: int = 0) -> None:
        self.events_file = workdir / f"{name}-events.jsonl"
        self.events_file.touch()
        self.log = workdir / f"{name}.log"
        env = l8_env(
            {
                "DAPR_RUNTIME_HOST": LOOPBACK,
                "DAPR_GRPC_PORT": str(sidecar.grpc_port),
                "DAPR_HTTP_PORT": str(sidecar.port),
            }
        )
        for name_ in ("APP_PORT", "DAPR_GRPC_ENDPOINT", "DAPR_HTTP_ENDPOINT", "DAPR_API_TOKEN"):
            env.pop(name_, None)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "tests.compat.sdk_grpc_actor_app"),
                    *("--events", str(self.events_file), "--app-port", str(app_port)),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.events_file.read_text().splitlines() if line]

    async def wait_for(self, what: str, count: int = 1, within: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while True:
            assert self.process.poll() is None, self.log.read_text()
            found = [event for event in self.events() if event["event"] == what]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, f"{count} {what} expected: {self.events()}"
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


@pytest.fixture
def sidecar(l8: L8Launcher) -> L8Process:
    return l8(app_id="streamcarts")


@pytest.fixture
def app(sidecar: L8Process, tmp_path: Path) -> Iterator[GrpcActorApp]:
    started = GrpcActorApp(tmp_path, sidecar)
    try:
        yield started
    finally:
        started.stop()


def invoke_actor(sidecar: L8Process, actor_id: str, method: str, data: bytes) -> bytes:
    with grpc.insecure_channel(sidecar.grpc_address) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        answer = stub.InvokeActor(
            actors_pb2.InvokeActorRequest(actor_type=TYPE, actor_id=actor_id, method=method, data=data),
            timeout=30,
        )
    found: bytes = answer.data
    return found


async def test_the_sdk_grpc_host_serves_its_actors_over_the_stream(
    sidecar: L8Process, app: GrpcActorApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAPR_RUNTIME_HOST", LOOPBACK)
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    metadata = await wait_hosting(sidecar, TYPE)
    assert metadata["actorRuntime"]["hostReady"] is True
    assert {"type": TYPE, "count": 0} in metadata["actorRuntime"]["activeActors"]

    cart = ActorProxy.create(TYPE, ActorId("cart-1"), StreamCartInterface)
    assert await cart.AddItem("apple") == 1
    # Over gRPC: InvokeActor's data is the method's JSON input, its answer the method's JSON output.
    assert await asyncio.to_thread(invoke_actor, sidecar, "cart-1", "AddItem", b'"pear"') == b"2"
    assert await cart.GetItems() == ["apple", "pear"]
    assert [event["id"] for event in await app.wait_for("activate")] == ["cart-1"]
    async with httpx.AsyncClient() as client:
        state = await client.get(f"{sidecar.url}/v1.0/actors/{TYPE}/cart-1/state/items")
        assert state.status_code == 200 and state.json() == ["apple", "pear"]

    # Idle for 2 s: l8 sends a deactivate_request; the state comes back on the next activation.
    await app.wait_for("deactivate", within=20)
    assert await cart.GetItems() == ["apple", "pear"]
    assert len(await app.wait_for("activate", 2)) == 2

    await cart.StartReminder("remember me")
    (reminder, *_) = await app.wait_for("reminder", within=20)
    assert reminder == {"event": "reminder", "id": "cart-1", "name": "ping", "state": "remember me"}

    await cart.StartTimer("tick tock")
    ticks = await app.wait_for("timer", count=2, within=20)
    assert ticks[0] == {"event": "timer", "id": "cart-1", "state": {"note": "tick tock"}}
    await cart.StopTimer()
    await asyncio.sleep(1.5)
    stopped = len(await app.wait_for("timer", count=2))
    await asyncio.sleep(1.5)
    assert len(await app.wait_for("timer", count=2)) == stopped, "the timer ticked after it was stopped"


async def test_an_actor_error_reaches_the_caller_verbatim(sidecar: L8Process, app: GrpcActorApp) -> None:
    await wait_hosting(sidecar, TYPE)
    async with httpx.AsyncClient(timeout=30) as client:
        failed = await client.put(f"{sidecar.url}/v1.0/actors/{TYPE}/c/method/Fail", json="boom")
        # The app's error payload (error: true) comes back as daprd passes it: 200, the payload, and
        # the actor-error header.
        assert failed.status_code == 200, failed.text
        assert failed.headers["x-daprerrorresponseheader"] == "true"
        assert "ValueError('boom')" in failed.json()["message"]
        missing = await client.put(f"{sidecar.url}/v1.0/actors/{TYPE}/c/method/NoSuchMethod", json=1)
        assert missing.status_code == 500
        assert missing.json() == {
            "errorCode": "ERR_ACTOR_INVOKE_METHOD",
            "message": "error invoke actor method: actor method not found: NoSuchMethod",
        }


async def test_the_stream_closing_removes_the_types(sidecar: L8Process, app: GrpcActorApp) -> None:
    await wait_hosting(sidecar, TYPE)
    async with httpx.AsyncClient(timeout=30) as client:
        sleeping = asyncio.create_task(
            client.put(f"{sidecar.url}/v1.0/actors/{TYPE}/s/method/Sleep", json=30)
        )
        await app.wait_for("sleeping")
        app.stop()
        # The call in flight fails at once with daprd's error for a host gone mid-call.
        interrupted = await asyncio.wait_for(sleeping, 10)
        assert interrupted.status_code == 500
        assert interrupted.json() == {
            "errorCode": "ERR_ACTOR_INVOKE_METHOD",
            "message": "error invoke actor method: actor host disconnected before responding",
        }
        runtime = (await client.get(f"{sidecar.url}/v1.0/metadata")).json()["actorRuntime"]
        assert runtime["runtimeStatus"] == "DISABLED" and runtime["activeActors"] == []
        after = await client.put(f"{sidecar.url}/v1.0/actors/{TYPE}/s/method/GetItems")
        assert after.status_code == 404 and after.json()["errorCode"] == "ERR_ACTOR_NO_ADDRESS"


async def test_a_grpc_app_with_its_own_port_hosts_over_the_stream_too(l8: L8Launcher, tmp_path: Path) -> None:
    """daprd's own setting: ``--app-protocol grpc --app-port`` (the SDK listens there, empty); the
    actor types still come from the stream alone, and the runtime waits for it (INITIALIZING)."""
    port = free_port()
    sidecar = l8(app_id="grpccarts", args=["--app-protocol", "grpc", "--app-port", str(port)])
    async with httpx.AsyncClient(timeout=30) as client:
        runtime = (await client.get(f"{sidecar.url}/v1.0/metadata")).json()["actorRuntime"]
        assert runtime["runtimeStatus"] == "INITIALIZING"
        app = GrpcActorApp(tmp_path, sidecar, app_port=port)
        try:
            await wait_hosting(sidecar, TYPE)
            added = await client.put(f"{sidecar.url}/v1.0/actors/{TYPE}/g/method/AddItem", json="fig")
            assert added.status_code == 200 and added.json() == 1
        finally:
            app.stop()
        for _ in range(100):
            runtime = (await client.get(f"{sidecar.url}/v1.0/metadata")).json()["actorRuntime"]
            if runtime["runtimeStatus"] == "INITIALIZING":
                break
            await asyncio.sleep(0.1)
        assert runtime["runtimeStatus"] == "INITIALIZING" and runtime["activeActors"] == []


async def test_a_call_on_another_sidecar_reaches_the_stream_hosted_actor(
    l8: L8Launcher, tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two sidecars of one app id on shared Redis name resolution (placement) and a Redis actor
    store: A has no app at all, B's app hosts the type over its stream. A call on A goes to B, and
    once B's app is gone, A finds no host."""
    config = coordination_config(tmp_path, "redis", redis_server.address, ttl=3.0)
    resources = actor_state_store(tmp_path, redis_server.address)
    args = ["--config", str(config)]
    a = l8(app_id="sharedcarts", resources=[resources], args=args)
    b = l8(app_id="sharedcarts", resources=[resources], args=args)
    app = GrpcActorApp(tmp_path, b, name="b-app")
    try:
        await wait_hosting(b, TYPE)
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(100):  # until A's placement reads B's membership
                via_a = await client.put(f"{a.url}/v1.0/actors/{TYPE}/far/method/AddItem", json="kiwi")
                if via_a.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert via_a.status_code == 200 and via_a.json() == 1, via_a.text
            via_b = await client.put(f"{b.url}/v1.0/actors/{TYPE}/far/method/GetItems")
            assert via_b.json() == ["kiwi"]
            assert [event["id"] for event in await app.wait_for("activate")] == ["far"]
            members = (await client.get(f"{a.url}/v1.0/metadata")).json()["placement"]["members"]
            assert members[TYPE] == [f"{LOOPBACK}:{b.port}"]

            app.stop()
            for _ in range(100):
                gone = await client.put(f"{a.url}/v1.0/actors/{TYPE}/far/method/GetItems")
                if gone.status_code == 404:
                    break
                await asyncio.sleep(0.1)
            assert gone.status_code == 404 and gone.json()["errorCode"] == "ERR_ACTOR_NO_ADDRESS"
    finally:
        app.stop()
