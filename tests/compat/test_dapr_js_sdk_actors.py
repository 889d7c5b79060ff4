"""The Dapr JS SDK's actors, unmodified, through a real ``l8 run`` (issue 17's proof).

The app (tests/compat/js/actor_app.mjs) is a ``DaprServer`` over HTTP with
``server.actor.registerActor(CartActor)``, an ``AbstractActor`` that keeps a list in its state
manager, registers a reminder and a timer (``Temporal.Duration``s), and is deactivated after 2 s
idle (``clientOptions.actor.actorIdleTimeout``). It comes up after its sidecar, so l8 reads its
``/dapr/config`` once it answers. The client is the SDK's ``ActorProxyBuilder``
(tests/compat/js/actor_calls.mjs). l8 runs with its embedded defaults (SQLite actor state, local
placement).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.actor_hosting import wait_hosting
from tests.e2e.process import L8Launcher, L8Process, l8_env
from tests.servers import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

JS = Path(__file__).parent / "js"


def node() -> str:
    found = shutil.which("node")
    assert found, "Node.js is needed for the JS SDK tests"
    assert (JS / "node_modules" / "@dapr" / "dapr").is_dir(), "run `make test` (npm ci in tests/compat/js)"
    return found


class JsActorApp:
    def __init__(self, workdir: Path, sidecar_port: int, port: int) -> None:
        self.port = port
        self.events_file = workdir / "js-actor-events.jsonl"
        self.events_file.touch()
        self.log = workdir / "js-actor-app.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [node(), "actor_app.mjs", LOOPBACK, str(sidecar_port), str(port), str(self.events_file)],
                cwd=JS,
                env=l8_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def events(self) -> list[dict[str, Any]]:
        lines = self.events_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    async def wait_for(self, what: str, count: int = 1, within: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while True:
            assert self.process.poll() is None, f"the JS app exited:\n{self.log.read_text()}"
            events = [event for event in self.events() if event["event"] == what]
            if len(events) >= count:
                return events
            assert time.monotonic() < deadline, (
                f"{count} {what} expected: {self.events()}\n{self.log.read_text()}"
            )
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def proxy_calls(sidecar: L8Process, *calls: tuple[str, str, list[Any]]) -> list[dict[str, Any]]:
    """Each call's outcome ``{method, ok, result | error}``, made through ``ActorProxyBuilder``."""
    plan = json.dumps([{"id": actor_id, "method": method, "args": args} for actor_id, method, args in calls])
    done = subprocess.run(
        [node(), "actor_calls.mjs", LOOPBACK, str(sidecar.port), plan],
        cwd=JS,
        env=l8_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcomes: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcomes


@pytest.fixture
def sidecar_and_app(l8: L8Launcher, tmp_path: Path) -> Iterator[tuple[L8Process, JsActorApp]]:
    app_port = free_port()
    sidecar = l8(app_id="js-carts", args=["--app-port", str(app_port)])
    app = JsActorApp(tmp_path, sidecar.port, app_port)
    try:
        yield sidecar, app
    finally:
        app.stop()


async def test_js_sdk_actor_keeps_state_across_deactivation_and_gets_a_reminder_and_a_timer(
    sidecar_and_app: tuple[L8Process, JsActorApp],
) -> None:
    sidecar, app = sidecar_and_app
    await app.wait_for("started")
    await wait_hosting(sidecar, "CartActor")

    def calls(*plan: tuple[str, str, list[Any]]) -> list[Any]:
        outcomes = proxy_calls(sidecar, *plan)
        assert all(outcome["ok"] for outcome in outcomes), outcomes
        return [outcome["result"] for outcome in outcomes]

    assert await asyncio.to_thread(
        calls, ("cart-1", "addItem", ["apple"]), ("cart-1", "addItem", ["pear"]), ("cart-1", "getItems", [])
    ) == [1, 2, ["apple", "pear"]]
    assert [event["id"] for event in await app.wait_for("activate")] == ["cart-1"]

    # Idle for 2 s: deactivated on the app; the next call activates it again with its state.
    await app.wait_for("deactivate", within=20)
    assert await asyncio.to_thread(calls, ("cart-1", "getItems", [])) == [["apple", "pear"]]
    assert len(await app.wait_for("activate", 2)) == 2

    await asyncio.to_thread(calls, ("cart-1", "startReminder", ["remember me"]))
    (reminder, *_) = await app.wait_for("reminder", within=20)
    assert reminder == {"event": "reminder", "id": "cart-1", "data": "remember me"}

    await asyncio.to_thread(calls, ("cart-1", "startTimer", ["tick tock"]))
    (timer, *_) = await app.wait_for("timer", within=20)
    assert timer == {"event": "timer", "id": "cart-1", "state": "tick tock"}
    await asyncio.to_thread(calls, ("cart-1", "stopTimer", []))

    assert await asyncio.to_thread(calls, ("cart-2", "getItems", [])) == [[]]
