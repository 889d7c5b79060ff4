"""The configuration API through the app, over the in-memory store: Dapr's get (items by key, 204
when none), the v1.0-alpha1 aliases, Layotto's save and delete with groups, labels and tags, and the
error codes (subscription delivery is proven end to end in tests/e2e/test_configuration_updates.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.routers.conftest import Sidecar, StartSidecar, assert_error, component

V1 = "/v1.0/configuration"
ALPHA = "/v1.0-alpha1/configuration"


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar(component("configstore", "configuration.in-memory"))


async def save(sidecar: Sidecar, items: list[dict[str, Any]], store: str = "configstore") -> None:
    response = await sidecar.request("POST", f"{ALPHA}/{store}", json={"appId": "ignored", "items": items})
    assert response.status_code == 204, response.text


async def get(sidecar: Sidecar, params: Any = None, base: str = V1) -> Any:
    response = await sidecar.request("GET", f"{base}/configstore", params=params)
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    return response.json()


async def test_save_then_get_in_daprs_shape(sidecar: Sidecar) -> None:
    assert await get(sidecar) is None  # 204 when no item
    await save(
        sidecar, [{"key": "a", "content": "1", "metadata": {"owner": "me"}}, {"key": "b", "content": "2"}]
    )
    items = await get(sidecar, {"key": ["a", "b", "missing"]})
    assert set(items) == {"a", "b"}
    assert items["a"]["value"] == "1" and items["a"]["metadata"] == {"owner": "me"}
    assert set(items["b"]) == {"value", "version"}  # empty fields omitted
    assert await get(sidecar) == items  # no key: every item
    assert await get(sidecar, {"key": "a"}, base=ALPHA) == {"a": items["a"]}
    assert await get(sidecar, {"key": "missing"}) is None
    await save(sidecar, [{"key": "a", "content": "1"}])
    assert (await get(sidecar, {"key": "a"}))["a"]["version"] != items["a"]["version"]


async def test_groups_labels_and_delete(sidecar: Sidecar) -> None:
    await save(sidecar, [{"key": "k", "content": "default"}, {"key": "k", "content": "blue", "group": "g",
                                                             "label": "blue", "tags": {"t": "1"}}])  # fmt: skip
    assert (await get(sidecar, {"key": "k"}))["k"]["value"] == "default"
    assert (await get(sidecar, {"key": "k", "group": "g", "label": "blue"}))["k"]["value"] == "blue"
    by_metadata = {"key": "k", "metadata.group": "g", "metadata.label": "blue"}
    assert (await get(sidecar, by_metadata))["k"]["value"] == "blue"
    assert await get(sidecar, {"key": "k", "group": "g"}) is None  # label "default" in group g
    blank = {"keys": ["k"], "group": "  ", "label": ""}  # blank means default
    response = await sidecar.request("POST", f"{ALPHA}/configstore/delete", json=blank)
    assert response.status_code == 204, response.text
    assert await get(sidecar, {"key": "k"}) is None
    assert (await get(sidecar, {"key": "k", "group": "g", "label": "blue"}))["k"]["value"] == "blue"


async def test_errors(sidecar: Sidecar) -> None:
    request = sidecar.request
    assert_error(await request("GET", f"{V1}/nope"), 400, "ERR_CONFIGURATION_STORE_NOT_FOUND",
                 message="configuration store nope not found")  # fmt: skip
    assert_error(await request("POST", f"{ALPHA}/nope", json={"items": [{"key": "a"}]}), 400,
                 "ERR_CONFIGURATION_STORE_NOT_FOUND")  # fmt: skip
    for body in ({"items": []}, {"items": [{"content": "x"}]}, {"items": "x"}, {"items": [{"key": 1}]}):
        assert_error(await request("POST", f"{ALPHA}/configstore", json=body), 400, "ERR_MALFORMED_REQUEST")
    assert_error(await request("POST", f"{ALPHA}/configstore", content=b"{"), 400, "ERR_MALFORMED_REQUEST")
    assert_error(await request("POST", f"{ALPHA}/configstore/delete", json={"keys": []}), 400,
                 "ERR_MALFORMED_REQUEST")  # fmt: skip
    # Subscribing needs the app channel (no --app-port here).
    assert_error(await request("GET", f"{V1}/configstore/subscribe", params={"key": "a"}), 500,
                 "ERR_APP_CHANNEL_NIL")  # fmt: skip
    unknown = await request("GET", f"{V1}/configstore/not-an-id/unsubscribe")
    assert unknown.status_code == 500
    assert unknown.json() == {
        "message": "failed to unsubscribe to configuration request not-an-id: subscription does not exist"
    }
    elsewhere = await request("GET", f"{V1}/nope/some-id/unsubscribe")
    assert elsewhere.status_code == 500
    assert elsewhere.json() == {
        "message": "failed to unsubscribe to configuration request some-id: configuration store nope not found"
    }


async def test_no_configuration_store(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    for method, path in (("GET", f"{V1}/any"), ("GET", f"{V1}/any/subscribe"), ("POST", f"{ALPHA}/any"),
                         ("POST", f"{ALPHA}/any/delete")):  # fmt: skip
        response = await sidecar.request(method, path, json={"items": [{"key": "a"}]})
        assert_error(response, 500, "ERR_CONFIGURATION_STORE_NOT_CONFIGURED",
                     message="configuration stores not configured")  # fmt: skip


async def test_embedded_defaults_serve_every_new_block(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(resources_paths=[])
    lock = {"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 5}
    assert (await sidecar.request("POST", "/v1.0-alpha1/lock/lockstore", json=lock)).json() == {
        "success": True
    }
    answer = await sidecar.request("POST", "/v1.0-alpha1/sequencer/sequencer", json={"key": "k"})
    assert answer.json() == {"nextId": "1"}
    await save(sidecar, [{"key": "a", "content": "1"}])
    assert (await get(sidecar, {"key": "a"}))["a"]["value"] == "1"
    types = {c["name"]: c["type"] for c in (await sidecar.metadata())["components"]}
    assert types["lockstore"] == "lock.in-memory"
    assert types["sequencer"] == "sequencer.sqlite"
    assert types["configstore"] == "configuration.in-memory"


async def test_cached_gets_follow_the_store_without_reading_it(
    start_sidecar: StartSidecar, redis_server: Any
) -> None:
    import asyncio
    import uuid

    import redis.asyncio as redis

    sidecar = await start_sidecar(
        component("cached", "configuration.redis", redisHost=redis_server.address, cacheEnable="true")
    )
    key = f"cached-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_server.url)

    async def cached(name: str) -> Any:
        response = await sidecar.request("GET", f"{V1}/cached", params={"key": name})
        assert response.status_code in (200, 204), response.text
        return response.json()[name]["value"] if response.status_code == 200 else None

    async def eventually(expected: Any) -> None:
        for _ in range(100):
            if await cached(key) == expected:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the cache never showed {expected!r}")

    try:
        assert await cached(key) is None  # the first get makes the copy
        await client.set(key, "v1||1")  # behind l8's back
        await eventually("v1")
        before = await client.info("commandstats")
        for _ in range(20):
            assert await cached(key) == "v1"
        after = await client.info("commandstats")
        reads = ("cmdstat_get", "cmdstat_mget", "cmdstat_scan", "cmdstat_evalsha", "cmdstat_eval")
        assert all(before.get(name, {}).get("calls") == after.get(name, {}).get("calls") for name in reads)
        await client.delete(key)
        await eventually(None)
    finally:
        await client.aclose()


async def test_bad_cache_setting_fails_start_up(start_sidecar: StartSidecar) -> None:
    from app.startup import StartupError

    with pytest.raises(StartupError, match="cacheEnable"):
        await start_sidecar(component("c", "configuration.in-memory", cacheEnable="sometimes"))


async def test_a_name_the_layout_cannot_hold_is_the_callers_error(
    start_sidecar: StartSidecar, redis_server: Any
) -> None:
    sidecar = await start_sidecar(
        component("settings", "configuration.redis", redisHost=redis_server.address)
    )
    body = {"items": [{"key": "k", "content": "v", "group": "a||b"}]}
    assert_error(await sidecar.request("POST", f"{ALPHA}/settings", json=body), 400, "ERR_MALFORMED_REQUEST")
    response = await sidecar.request("GET", f"{V1}/settings", params={"key": "k", "group": "a||b"})
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")
