"""The Dapr Python SDK's actors, unmodified, through a real ``l8 run`` (issue 17's proof).

The app (tests/compat/sdk_actor_app.py) is ``dapr.ext.fastapi.DaprActor`` on uvicorn, in a process
of its own: its actor keeps a list in ``self._state_manager``, registers a reminder and a timer, and
is deactivated after 2 s idle (``ActorRuntimeConfig``, sent in the SDK's ``1h0m0s0ms0μs`` form).
The client is the SDK's ``ActorProxy`` (``DaprActorHttpClient``), pointed at l8 by
``DAPR_HTTP_PORT``. l8 runs with its embedded defaults: the SQLite ``statestore`` is the actor
state store, and placement is local.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dapr.actor import ActorId, ActorProxy

from tests.compat.actor_hosting import wait_hosting
from tests.compat.sdk_actor_app import CartActorInterface
from tests.e2e.process import L8Launcher, L8Process, l8_env
from tests.servers import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]


class SdkActorApp:
    def __init__(self, workdir: Path, sidecar_port: int, port: int) -> None:
        self.port = port
        self.log = workdir / "sdk-actor-app.log"
        env = l8_env({"DAPR_HTTP_PORT": str(sidecar_port)})
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.compat.sdk_actor_app", "--port", str(self.port)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def wait_ready(self) -> None:
        """The SDK's ``register_actor`` waits for the sidecar before the app serves anything."""
        deadline = time.monotonic() + 20
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"http://{LOOPBACK}:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the SDK app did not start:\n{self.log.read_text()}"
            time.sleep(0.05)

    def events(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(f"http://{LOOPBACK}:{self.port}/events").json()
        return found

    async def wait_for(self, what: str, count: int = 1, within: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while True:
            events = [event for event in await asyncio.to_thread(self.events) if event["event"] == what]
            if len(events) >= count:
                return events
            assert time.monotonic() < deadline, (
                f"{count} {what} expected: {await asyncio.to_thread(self.events)}"
            )
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def sidecar_and_app(l8: L8Launcher, tmp_path: Path) -> Iterator[tuple[L8Process, SdkActorApp]]:
    """l8 first: the app comes up after its sidecar (the SDK waits for it), and l8 reads its
    ``/dapr/config`` once it answers."""
    app_port = free_port()
    sidecar = l8(app_id="carts", args=["--app-port", str(app_port)])
    app = SdkActorApp(tmp_path, sidecar.port, app_port)
    try:
        app.wait_ready()
        yield sidecar, app
    finally:
        app.stop()


async def test_python_sdk_actor_keeps_state_across_deactivation_and_gets_a_reminder_and_a_timer(
    sidecar_and_app: tuple[L8Process, SdkActorApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    sidecar, app = sidecar_and_app
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    await wait_hosting(sidecar, "CartActor")
    cart = ActorProxy.create("CartActor", ActorId("cart-1"), CartActorInterface)

    assert await cart.AddItem("apple") == 1
    assert await cart.AddItem("pear") == 2
    assert await cart.GetItems() == ["apple", "pear"]
    assert [event["id"] for event in await app.wait_for("activate")] == ["cart-1"]

    # Idle for 2 s: l8 deactivates it on the app (DELETE /actors/CartActor/cart-1); the next call
    # activates it again, and its state comes back from the actor state store.
    await app.wait_for("deactivate", within=20)
    assert await cart.GetItems() == ["apple", "pear"]
    assert len(await app.wait_for("activate", 2)) == 2

    await cart.StartReminder("remember me")
    (reminder, *_) = await app.wait_for("reminder", within=20)
    assert reminder == {"event": "reminder", "id": "cart-1", "name": "ping", "state": "remember me"}

    await cart.StartTimer("tick tock")
    (timer, *_) = await app.wait_for("timer", within=20)
    assert timer == {"event": "timer", "id": "cart-1", "state": {"note": "tick tock"}}
    await cart.StopTimer()
    await cart.StartBareTimer()
    (bare, *_) = await app.wait_for("bare timer", within=20)
    assert bare == {"event": "bare timer", "id": "cart-1", "state": None}

    # Another actor of the type has state of its own.
    other = ActorProxy.create("CartActor", ActorId("cart-2"), CartActorInterface)
    assert await other.GetItems() == []
