"""Actors through real ``l8 run`` processes and a recording actor app (tests/actor_app.py): invoke,
turns, reentrancy, idle deactivation, state across activations, timers, reminders (durable across a
restart), drain on shutdown, and two sidecars sharing Redis or etcd placing each actor on one of
them (reminders included), and a sidecar joining taking over actors only once they are let go."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.actor_app import ActorTestApp
from tests.e2e.process import L8Launcher, L8Process

pytestmark = pytest.mark.e2e

ACTORS = "/v1.0/actors"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as http:
        yield http


async def hosting(client: httpx.AsyncClient, sidecar: L8Process, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        runtime = (await client.get(f"{sidecar.url}/v1.0/metadata")).json()["actorRuntime"]
        if runtime["runtimeStatus"] == "RUNNING" and runtime["hostReady"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{sidecar.url} never hosted actors: {sidecar.stderr}")


async def started(l8: L8Launcher, client: httpx.AsyncClient, app: ActorTestApp, **options: Any) -> L8Process:
    args = ["--app-port", str(app.port), *options.pop("args", [])]
    sidecar = await asyncio.to_thread(l8, args=args, **options)
    await hosting(client, sidecar)
    return sidecar


async def joined(client: httpx.AsyncClient, *sidecars: L8Process, within: float = 30.0) -> None:
    """Wait until each sidecar's placement (l8's ``placement`` in ``GET /v1.0/metadata``) lists
    every one of them as a host of ``counter``: an actor called while the table still fills would
    move to the late member and run on both."""
    deadline = time.monotonic() + within
    seen: list[Any] = []
    while time.monotonic() < deadline:
        answers = [await client.get(f"{sidecar.url}/v1.0/metadata") for sidecar in sidecars]
        seen = [a.json().get("placement", {}).get("members", {}).get("counter", []) for a in answers]
        if all(len(hosts) == len(sidecars) for hosts in seen):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the sidecars did not all see each other in {within:g} s: {seen}")


def actor_app(idle: str = "1s", **config: Any) -> ActorTestApp:
    return ActorTestApp(
        ["counter", "reentrant"],
        actorIdleTimeout=idle,
        drainOngoingCallTimeout="10s",
        entitiesConfig=[{"entities": ["reentrant"], "reentrancy": {"enabled": True, "maxStackDepth": 4}}],
        **config,
    )


async def test_calls_take_turns_per_actor_and_reenter_along_a_chain(
    l8: L8Launcher, client: httpx.AsyncClient
) -> None:
    async with actor_app() as app:
        sidecar = await started(l8, client, app)
        url = f"{sidecar.url}{ACTORS}"
        echo = await client.post(f"{url}/counter/c1/method/echo?q=1", content=b"hi", headers={"X-Id": "7"})
        assert (echo.status_code, echo.content) == (200, b"hi")
        assert app.calls[-1].headers["X-Id"] == "7" and app.calls[-1].query == "q=1"

        sleep = b'{"seconds": 0.2}'
        started_at = time.monotonic()
        answers = await asyncio.gather(
            *(client.put(f"{url}/counter/one/method/sleep", content=sleep) for _ in range(4)),
            *(client.put(f"{url}/counter/other-{n}/method/sleep", content=sleep) for n in range(6)),
        )
        assert all(a.status_code == 200 for a in answers)
        assert app.most_at_once[("counter", "one")] == 1
        assert time.monotonic() - started_at >= 0.8
        assert app.most_all_at_once >= 6

        # A nested call into the same actor, carrying the chain's id, re-enters instead of waiting.
        nested = {"sidecar": sidecar.url, "type": "reentrant", "id": "r1", "method": "echo", "body": "inner"}
        reentered = await client.put(f"{url}/reentrant/r1/method/call", json=nested, timeout=10)
        assert reentered.status_code == 200, reentered.text
        assert reentered.json() == "inner"
        outer, inner = app.of("call")[-1], app.of("echo", "r1")[-1]
        assert outer.headers["Dapr-Reentrancy-Id"] == inner.headers["Dapr-Reentrancy-Id"]


async def test_idle_actors_are_deactivated_and_their_state_outlives_them(
    l8: L8Launcher, client: httpx.AsyncClient
) -> None:
    async with actor_app() as app:
        sidecar = await started(l8, client, app)
        url = f"{sidecar.url}{ACTORS}/counter/c1"
        saved = await client.put(f"{url}/method/state", json={"sidecar": sidecar.url, "set": {"n": 41}})
        assert saved.status_code == 200, saved.text
        [deactivated] = await app.wait_for(1, "DELETE", "c1", timeout=10)
        assert deactivated.at - app.of("state")[-1].at >= 0.9
        assert (await client.get(f"{url}/state/n")).status_code == 400  # not active any more
        read = await client.put(f"{url}/method/state", json={"sidecar": sidecar.url, "get": ["n"]})
        assert read.json() == {"n": 41}


async def test_timers_fire_and_die_with_the_actor(l8: L8Launcher, client: httpx.AsyncClient) -> None:
    async with actor_app() as app:
        sidecar = await started(l8, client, app)
        url = f"{sidecar.url}{ACTORS}/counter/c1"
        timer = {"dueTime": "200ms", "period": "2500ms", "callback": "tick"}
        assert (await client.put(f"{url}/timers/slow", json=timer)).status_code == 204
        app.cancel.add("fast")
        assert (await client.put(f"{url}/timers/fast", json={"period": "100ms"})).status_code == 204
        await app.wait_for(1, "timer/slow")
        await app.wait_for(1, "DELETE", "c1", timeout=10)  # idle one second after the last tick
        await asyncio.sleep(2.5)
        assert len(app.of("timer/slow")) == 1  # its second tick was due after the deactivation
        assert len(app.of("timer/fast")) == 1  # cancelled by the app's answer


async def test_reminders_fire_stop_on_cancel_and_survive_a_restart(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with actor_app() as app:
        sidecar = await started(l8, client, app)
        url = f"{sidecar.url}{ACTORS}/counter/c1"
        app.cancel.add("once")
        body = {"dueTime": "0s", "period": "300ms", "data": {"to": "c1"}}
        assert (await client.post(f"{url}/reminders/once", json=body)).status_code == 204
        [tick] = await app.wait_for(1, "remind/once")
        assert tick.json == {"data": {"to": "c1"}, "dueTime": "0s", "period": "300ms"}
        await asyncio.sleep(0.8)
        assert len(app.of("remind/once")) == 1
        assert (await client.post(f"{url}/reminders/later", json={"dueTime": "3s"})).status_code == 204
        await asyncio.to_thread(sidecar.stop_ok)
        await asyncio.to_thread(sidecar.start)
        await hosting(client, sidecar)
        [later] = await app.wait_for(1, "remind/later", timeout=10)
        assert later.json == {"dueTime": "3s", "period": ""}


async def test_shutdown_drains_the_turns_in_progress(l8: L8Launcher, client: httpx.AsyncClient) -> None:
    async with actor_app() as app:
        sidecar = await started(l8, client, app)
        call = asyncio.create_task(
            client.put(f"{sidecar.url}{ACTORS}/counter/c1/method/sleep", json={"seconds": 1})
        )
        await app.wait_for(1, "sleep")
        sidecar.send_signal(signal.SIGTERM)
        answer = await call
        assert answer.status_code == 200, answer.text
        assert await asyncio.to_thread(sidecar.wait_exit) == 0
        [deactivated] = app.of("DELETE")
        assert deactivated.at >= app.of("sleep")[0].at + 0.95


def fleet_config(tmp_path: Path, kind: str, server: str) -> Path:
    """Name resolution (and so placement and the scheduler) on one Redis or etcd."""
    config = tmp_path / f"fleet-{uuid.uuid4().hex[:8]}.yaml"
    where = (
        f"redisHost: {server}"
        if kind == "redis"
        else f"endpoints: [{server}]\n  keyPrefix: f{uuid.uuid4().hex[:8]}/"
    )
    config.write_text(f"name_resolution:\n  type: {kind}\n  {where}\n  ttl: 2s\n  cacheSeconds: 0.1\n")
    return config


@pytest.mark.parametrize("kind", ["redis", "etcd"])
async def test_two_sidecars_sharing_a_store_run_each_actor_once(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    config = fleet_config(tmp_path, kind, request.getfixturevalue(f"{kind}_server").address)
    app_id = f"actors-{uuid.uuid4().hex[:8]}"
    async with actor_app() as first_app, actor_app() as second_app:
        first, second = await asyncio.gather(
            started(l8, client, first_app, app_id=app_id, args=["--config", str(config)]),
            started(l8, client, second_app, app_id=app_id, args=["--config", str(config)]),
        )
        await joined(client, first, second)
        sleep = b'{"seconds": 0.05}'
        ids = [f"a{n}" for n in range(20)]
        answers = await asyncio.gather(
            *(
                client.put(f"{sidecar.url}{ACTORS}/counter/{actor_id}/method/sleep", content=sleep)
                for actor_id in ids
                for sidecar in (first, second, first, second)
            )
        )
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        for actor_id in ids:
            on_first = len(first_app.of("sleep", actor_id))
            on_second = len(second_app.of("sleep", actor_id))
            assert sorted((on_first, on_second)) == [0, 4], actor_id  # one activation took every call
            assert (
                max(
                    first_app.most_at_once.get(("counter", actor_id), 0),
                    second_app.most_at_once.get(("counter", actor_id), 0),
                )
                == 1
            )
        assert first_app.of("sleep") and second_app.of("sleep")  # the ring spread the actors

        # A reminder fires once, on the app whose sidecar owns the actor, whichever sidecar's
        # scheduler claimed the tick (a tick claimed by the other one is forwarded).
        for actor_id in ids:
            created = await client.post(
                f"{first.url}{ACTORS}/counter/{actor_id}/reminders/ping", json={"dueTime": "0s"}
            )
            assert created.status_code == 204, created.text
        give_up = time.monotonic() + 15
        while len(first_app.of("remind/ping")) + len(second_app.of("remind/ping")) < len(ids):
            assert time.monotonic() < give_up, "not every reminder fired"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        for actor_id in ids:
            owner_app = first_app if first_app.of("sleep", actor_id) else second_app
            other_app = second_app if owner_app is first_app else first_app
            assert len(owner_app.of("remind/ping", actor_id)) == 1, actor_id
            assert not other_app.of("remind/ping", actor_id), actor_id


async def test_a_sidecar_joining_takes_over_actors_only_after_the_old_owner_let_them_go(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path, redis_server: Any
) -> None:
    config = fleet_config(tmp_path, "redis", redis_server.address)
    app_id = f"actors-{uuid.uuid4().hex[:8]}"
    ids = [f"a{n}" for n in range(30)]
    async with actor_app("1h") as first_app, actor_app("1h") as second_app:
        first = await started(l8, client, first_app, app_id=app_id, args=["--config", str(config)])
        for actor_id in ids:
            answer = await client.put(f"{first.url}{ACTORS}/counter/{actor_id}/method/echo")
            assert answer.status_code == 200, answer.text
        assert {c.actor_id for c in first_app.of("echo")} == set(ids)
        second = await started(l8, client, second_app, app_id=app_id, args=["--config", str(config)])
        answers = await asyncio.gather(
            *(client.put(f"{second.url}{ACTORS}/counter/{actor_id}/method/echo") for actor_id in ids)
        )
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        moved = {c.actor_id for c in second_app.of("echo")}
        assert moved and moved != set(ids)  # the ring gave the newcomer some of the actors
        for actor_id in moved:
            [let_go] = first_app.of("DELETE", actor_id)
            assert let_go.at < second_app.of("echo", actor_id)[0].at, actor_id
        for actor_id in set(ids) - moved:
            assert not first_app.of("DELETE", actor_id)
            assert len(first_app.of("echo", actor_id)) == 2
