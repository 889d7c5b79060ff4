"""The jobs API on real ``l8 run`` processes with a recording app (tests/subscriber_app.py): a job
fires on schedule as ``POST /job/{name}`` with its data, ``repeats``, ``ttl``, a one-shot
``dueTime``, a 404 counts as done, a 500 is retried per ``failurePolicy`` (and not with ``drop``);
jobs survive a restart and a kill -9 of a sidecar on SQLite; and sidecars of one app id sharing
Redis or etcd fire every tick once across them, also after one of them is killed."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.process import L8Launcher, L8Process
from tests.subscriber_app import Delivery, SubscriberApp

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


async def started(l8: L8Launcher, app: SubscriberApp, **options: Any) -> L8Process:
    args = ["--app-port", str(app.port), *options.pop("args", [])]
    return await asyncio.to_thread(l8, args=args, **options)


async def schedule(client: httpx.AsyncClient, sidecar: L8Process, name: str, body: dict[str, Any]) -> None:
    answer = await client.post(f"{sidecar.url}/v1.0/jobs/{name}", json=body)
    assert answer.status_code == 204, answer.text


def triggers(apps: list[SubscriberApp], name: str | None = None) -> list[Delivery]:
    found = [d for app in apps for d in app.received() if d.method == "POST" and d.path.startswith("/job/")]
    return [d for d in found if name is None or d.path == f"/job/{name}"]


async def until(check: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_job_fires_on_schedule_with_its_data_and_ends_after_its_repeats(
    l8: L8Launcher, client: httpx.AsyncClient
) -> None:
    async with SubscriberApp() as app:
        sidecar = await started(l8, app, app_id="jobs", env={"APP_API_TOKEN": "app-secret"})
        scheduled = time.monotonic()  # the app stamps arrivals with the monotonic clock
        await schedule(client, sidecar, "tick", {"schedule": "@every 1s", "repeats": 3, "data": {"order": 7}})
        await until(lambda: len(triggers([app])) == 3)
        await asyncio.sleep(1.5)
        fired = triggers([app])
        assert len(fired) == 3
        for delivery in fired:
            assert delivery.path == "/job/tick"
            assert delivery.headers["Content-Type"] == "application/json"
            assert delivery.headers["dapr-api-token"] == "app-secret"
            assert delivery.json == {"order": 7}
        # @every 1s from the scheduling: about 1, 2 and 3 seconds later (a busy machine runs late).
        for index, delivery in enumerate(fired, start=1):
            assert delivery.arrived - scheduled >= index - 0.1
        assert (await client.get(f"{sidecar.url}/v1.0/jobs/tick")).status_code == 500  # over: gone


async def test_due_time_one_shots_ttl_and_404(l8: L8Launcher, client: httpx.AsyncClient) -> None:
    async with SubscriberApp() as app:
        app.respond("/job/gone", 404)
        sidecar = await started(l8, app, app_id="jobs")
        await schedule(client, sidecar, "once", {"dueTime": "1s", "data": "someData"})
        await schedule(client, sidecar, "bare", {"dueTime": "0s"})
        await schedule(client, sidecar, "gone", {"dueTime": "0s"})
        await schedule(client, sidecar, "short", {"schedule": "@every 1s", "ttl": "2.5s"})
        await until(lambda: len(triggers([app], "once")) == 1 and len(triggers([app], "short")) == 2)
        await asyncio.sleep(2.0)
        assert [d.body for d in triggers([app], "once")] == [b'"someData"']
        assert [d.body for d in triggers([app], "bare")] == [b""]
        assert len(triggers([app], "gone")) == 1  # 404: done, never retried
        assert len(triggers([app], "short")) == 2  # the third tick is past the ttl


async def test_failures_are_retried_per_policy(l8: L8Launcher, client: httpx.AsyncClient) -> None:
    async with SubscriberApp() as app:
        for name in ("constant", "dropped", "default"):
            app.respond(f"/job/{name}", 500)
        sidecar = await started(l8, app, app_id="jobs")
        policy = {"constant": {"interval": "0.5s", "maxRetries": 2}}
        await schedule(client, sidecar, "constant", {"dueTime": "0s", "failurePolicy": policy})
        await schedule(client, sidecar, "dropped", {"dueTime": "0s", "failurePolicy": {"drop": {}}})
        await schedule(client, sidecar, "default", {"dueTime": "0s"})
        await until(lambda: len(triggers([app], "constant")) == 3 and len(triggers([app], "default")) == 4)
        await asyncio.sleep(2.0)
        constant = triggers([app], "constant")
        assert len(constant) == 3
        assert all(later.arrived - earlier.arrived >= 0.45 for earlier, later in itertools.pairwise(constant))
        assert len(triggers([app], "dropped")) == 1
        assert len(triggers([app], "default")) == 4  # Dapr's default: constant, 1 s, 3 retries


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
async def test_jobs_survive_a_restart_of_a_sqlite_sidecar(
    l8: L8Launcher, client: httpx.AsyncClient, stop: signal.Signals
) -> None:
    async with SubscriberApp() as app:
        sidecar = await started(l8, app, app_id="jobs")
        await schedule(client, sidecar, "steady", {"schedule": "@every 1s", "data": 1})
        await schedule(client, sidecar, "later", {"dueTime": "4s", "data": 2})
        await until(lambda: len(triggers([app], "steady")) >= 1)
        if stop == signal.SIGKILL:
            sidecar.kill()
        else:
            sidecar.stop_ok()
        before = len(triggers([app], "steady"))
        await asyncio.to_thread(sidecar.start)
        await until(lambda: len(triggers([app], "steady")) >= before + 2)
        await until(lambda: len(triggers([app], "later")) == 1)
        assert (await client.get(f"{sidecar.url}/v1.0/jobs/steady")).json()["data"]["value"] == 1


@pytest.fixture(params=["redis", "etcd"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A settings file pointing name resolution (and so the scheduler) at the session's server."""
    kind = request.param
    server = request.getfixturevalue(f"{kind}_server").address
    where = (
        f"redisHost: {server}"
        if kind == "redis"
        else f"endpoints: [{server}]\n  keyPrefix: jobs-{uuid.uuid4().hex[:6]}/"
    )
    path = tmp_path / f"{kind}.yaml"
    path.write_text(f"name_resolution:\n  type: {kind}\n  {where}\n  ttl: 2s\n")
    return path


async def test_sidecars_sharing_a_store_fire_each_tick_once(
    l8: L8Launcher, client: httpx.AsyncClient, shared_store: Path
) -> None:
    app_id = f"jobs-{uuid.uuid4().hex[:8]}"
    async with SubscriberApp() as a, SubscriberApp() as b, SubscriberApp() as c:
        apps = [a, b, c]
        sidecars = [
            await started(l8, app, app_id=app_id, args=["--config", str(shared_store)]) for app in apps
        ]
        for index in range(6):
            body = {"schedule": "@every 1s", "repeats": 4, "data": index}
            await schedule(client, sidecars[index % 3], f"job-{index}", body)
        await until(lambda: len(triggers(apps)) >= 24)
        await asyncio.sleep(2.0)
        counts = Counter(d.path for d in triggers(apps))
        assert counts == {f"/job/job-{index}": 4 for index in range(6)}
        assert sum(1 for app in apps if triggers([app])) >= 2  # shared out, not one sidecar doing all

        # kill -9 one: the others keep firing every job, including those it scheduled.
        for index in range(6):
            await schedule(
                client, sidecars[index % 3], f"after-{index}", {"schedule": "@every 1s", "repeats": 6}
            )
        await until(lambda: len([d for d in triggers(apps) if d.path.startswith("/job/after-")]) >= 6)
        sidecars[0].kill()
        await until(
            lambda: len([d for d in triggers(apps) if d.path.startswith("/job/after-")]) >= 36, within=60
        )
        await asyncio.sleep(2.0)
        counts = Counter(d.path for d in triggers(apps) if d.path.startswith("/job/after-"))
        # Once per tick; a tick the killed sidecar was delivering at that instant may come once more.
        assert all(6 <= counts[f"/job/after-{index}"] <= 7 for index in range(6)), counts
        assert sum(counts.values()) <= 37
        late = [d for d in triggers([b, c]) if d.path.startswith("/job/after-")]
        assert late  # the survivors fired the ticks after the kill
