"""Configuration subscriptions through real ``l8 run`` processes: an app subscribed through its
sidecar gets every change of its keys exactly once, in order, as Dapr delivers them
(``POST /configuration/<store>/<key>`` with ``{id, items}``), whether the change was made through
its own sidecar, through another l8 process, or directly in Redis, etcd or the YAML file."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as redis
import yaml
from aiohttp import web

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.servers import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

STORE = "settings"
SAVE = f"/v1.0-alpha1/configuration/{STORE}"


@contextlib.asynccontextmanager
async def recording_app() -> AsyncIterator[tuple[int, list[tuple[str, Any]]]]:
    """An app that records every configuration update it is sent: (path, body)."""
    updates: list[tuple[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        updates.append((request.path, orjson.loads(await request.read())))
        return web.Response(status=200)

    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(status=404)

    app = web.Application()
    app.router.add_post("/configuration/{store}/{key:.*}", record)
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield port, updates
    finally:
        await runner.cleanup()


DirectWrite = Callable[[str, str], Awaitable[None]]


@contextlib.asynccontextmanager
async def backend(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Path, DirectWrite]]:
    """The component folder for ``kind`` and a way to change a key behind l8's back."""
    folder = tmp_path / "resources"
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        type, metadata = "configuration.redis", {"redisHost": server.address}
        client = redis.Redis.from_url(server.url)

        async def write(key: str, value: str) -> None:
            await client.set(key, f"{value}||77")

        close: Callable[[], Awaitable[Any]] = client.aclose
    elif kind == "etcd":
        import aetcd

        server = request.getfixturevalue("etcd_server")
        prefix = f"/e2e-{uuid.uuid4().hex[:8]}/"
        type, metadata = "configuration.etcd", {"endpoints": server.address, "keyPrefixPath": prefix}
        host, _, port = server.address.rpartition(":")
        etcd = aetcd.Client(host=host, port=int(port))

        async def write(key: str, value: str) -> None:
            await etcd.put(f"{prefix}default/default/{key}".encode(), value.encode())

        close = etcd.close
    else:
        path = tmp_path / "settings.yaml"
        path.write_text("{}\n")
        type, metadata = "configuration.file", {"path": str(path)}

        async def write(key: str, value: str) -> None:
            current = yaml.safe_load(path.read_text()) or {}
            current[key] = value
            path.write_text(yaml.safe_dump(current))

        async def close() -> None:
            return None

    write_component(folder, STORE, type, metadata)
    try:
        yield folder, write
    finally:
        await close()


async def settled(updates: list[tuple[str, Any]], count: int, grace: float = 0.7) -> None:
    """Wait until ``count`` updates arrived, then a little longer so that any extra one shows."""
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        if len(updates) >= count:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(grace)


@pytest.mark.parametrize("kind", ["redis", "etcd", "file"])
async def test_every_change_reaches_the_subscriber_once_in_order(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, l8: L8Launcher
) -> None:
    key = f"limit-{uuid.uuid4().hex[:8]}"
    other = f"other-{uuid.uuid4().hex[:8]}"
    async with recording_app() as (port, updates), backend(kind, request, tmp_path) as (folder, write):
        subscriber: L8Process
        writer: L8Process
        subscriber, writer = await asyncio.gather(
            asyncio.to_thread(l8, app_id="subscriber", resources=[folder], args=["--app-port", str(port)]),
            asyncio.to_thread(l8, app_id="writer", resources=[folder]),
        )
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(
                f"{subscriber.url}/v1.0/configuration/{STORE}/subscribe", params={"key": key}
            )
            assert answer.status_code == 200, answer.text
            subscription = answer.json()["id"]

            async def save(sidecar: L8Process, name: str, value: str) -> None:
                body = {"items": [{"key": name, "content": value}]}
                response = await http.post(sidecar.url + SAVE, json=body)
                assert response.status_code == 204, response.text

            await save(writer, key, "1")  # another l8
            await settled(updates, 1, grace=0.2)
            await write(key, "2")  # directly in the backend
            await settled(updates, 2, grace=0.2)
            await save(subscriber, key, "3")  # the subscriber's own sidecar
            await settled(updates, 3, grace=0.2)
            await save(writer, other, "x")  # not subscribed: never delivered
            deleted = await http.post(f"{writer.url}{SAVE}/delete", json={"keys": [key]})
            assert deleted.status_code == 204, deleted.text
            await settled(updates, 4)

            assert [path for path, _ in updates] == [f"/configuration/{STORE}/{key}"] * 4, updates
            assert all(body["id"] == subscription for _, body in updates)
            assert all(set(body["items"]) == {key} for _, body in updates)
            values = [body["items"][key].get("value", "") for _, body in updates]
            assert values == ["1", "2", "3", ""]
            versions = [body["items"][key].get("version") for _, body in updates[:3]]
            assert len(set(versions)) == 3 and all(versions), versions

            got = await http.get(f"{writer.url}/v1.0/configuration/{STORE}", params={"key": [key, other]})
            assert got.status_code == 200 and set(got.json()) == {other}, got.text

            stopped = await http.get(
                f"{subscriber.url}/v1.0/configuration/{STORE}/{subscription}/unsubscribe"
            )
            assert stopped.status_code == 200 and stopped.json() == {"ok": True}
            await save(writer, key, "after")
            await asyncio.sleep(0.7)
            assert len(updates) == 4  # nothing after unsubscribe
            again = await http.get(f"{subscriber.url}/v1.0/configuration/{STORE}/{subscription}/unsubscribe")
            assert again.status_code == 500
            assert set(again.json()) == {"message"}, again.text
