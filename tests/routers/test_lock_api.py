"""The distributed lock API through the app (Dapr's routes, bodies, statuses and error codes, and l8's
renewal), over the in-memory lock store and Redis (whose keys prove Dapr's ``lock||<app>||<id>``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as redis

from tests.routers.conftest import Sidecar, StartSidecar, assert_error, component

LOCK = "/v1.0-alpha1/lock"
UNLOCK = "/v1.0-alpha1/unlock"


async def lock(sidecar: Sidecar, body: Any, store: str = "lockstore") -> Any:
    response = await sidecar.request("POST", f"{LOCK}/{store}", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def unlock(sidecar: Sidecar, body: Any, store: str = "lockstore", path: str = UNLOCK) -> Any:
    response = await sidecar.request("POST", f"{path}/{store}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def renew(sidecar: Sidecar, body: Any, store: str = "lockstore") -> Any:
    response = await sidecar.request("POST", f"{LOCK}/{store}/renew", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar(component("lockstore", "lock.in-memory"))


async def test_lock_unlock_and_their_statuses(sidecar: Sidecar) -> None:
    mine = {"resourceId": "order-1", "lockOwner": "a", "expiryInSeconds": 60}
    assert await lock(sidecar, mine) == {"success": True}
    assert await lock(sidecar, {**mine, "lockOwner": "b"}) == {"success": False}
    assert await lock(sidecar, mine) == {"success": False}  # not reentrant
    assert await unlock(sidecar, {"resourceId": "order-1", "lockOwner": "b"}) == {"status": 2}
    assert await unlock(sidecar, {"resourceId": "order-1", "lockOwner": "a"}) == {"status": 0}
    assert await unlock(sidecar, {"resourceId": "order-1", "lockOwner": "a"}) == {"status": 1}
    assert await lock(sidecar, {**mine, "lockOwner": "b"}) == {"success": True}


async def test_protojson_bodies(sidecar: Sidecar) -> None:
    # snake_case names, an int32 as a string, unknown fields ignored.
    body = {"resource_id": "r", "lock_owner": "a", "expiry_in_seconds": "30", "extra": [1]}
    assert await lock(sidecar, body) == {"success": True}
    assert await unlock(sidecar, {"resource_id": "r", "lock_owner": "a"}) == {"status": 0}


async def test_expiry_frees_the_lock(sidecar: Sidecar) -> None:
    assert await lock(sidecar, {"resourceId": "r", "lockOwner": "a", "expiryInSeconds": 1}) == {
        "success": True
    }
    await asyncio.sleep(1.2)
    assert await lock(sidecar, {"resourceId": "r", "lockOwner": "b", "expiryInSeconds": 5}) == {
        "success": True
    }
    assert await unlock(sidecar, {"resourceId": "r", "lockOwner": "a"}) == {"status": 2}


async def test_renewal_extends_only_the_owners_lock(sidecar: Sidecar) -> None:
    assert await lock(sidecar, {"resourceId": "r", "lockOwner": "a", "expiryInSeconds": 1}) == {
        "success": True
    }
    assert await renew(sidecar, {"resourceId": "r", "lockOwner": "b", "expiryInSeconds": 5}) == {"status": 2}
    assert await renew(sidecar, {"resourceId": "r", "lockOwner": "a", "expiryInSeconds": 5}) == {"status": 0}
    await asyncio.sleep(1.3)  # past the first expiry: still held
    assert await lock(sidecar, {"resourceId": "r", "lockOwner": "b", "expiryInSeconds": 5}) == {
        "success": False
    }
    assert await renew(sidecar, {"resourceId": "gone", "lockOwner": "a", "expiryInSeconds": 5}) == {
        "status": 1
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"resourceId": "r", "lockOwner": "a", "expiryInSeconds": 0}, "ExpiryInSeconds is not positive in lock store lockstore"),
        ({"resourceId": "r", "lockOwner": "a"}, "ExpiryInSeconds is not positive in lock store lockstore"),
        ({"lockOwner": "a", "expiryInSeconds": 5}, "ResourceId is empty in lock store lockstore"),
        ({"resourceId": "r", "expiryInSeconds": 5}, "LockOwner is empty in lock store lockstore"),
        (None, "ExpiryInSeconds is not positive in lock store lockstore"),
    ],
)  # fmt: skip
async def test_validation_in_daprs_order(sidecar: Sidecar, body: Any, message: str) -> None:
    for path in (LOCK + "/lockstore", LOCK + "/lockstore/renew"):
        response = await sidecar.request("POST", path, json=body)
        assert_error(response, 400, "ERR_MALFORMED_REQUEST", message=message)


async def test_bad_bodies_and_stores(sidecar: Sidecar) -> None:
    response = await sidecar.request("POST", f"{LOCK}/lockstore", content=b"{nope")
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")
    bad_type = {"resourceId": 5, "lockOwner": "a", "expiryInSeconds": 5}
    assert_error(
        await sidecar.request("POST", f"{LOCK}/lockstore", json=bad_type), 400, "ERR_MALFORMED_REQUEST"
    )
    too_big = {"resourceId": "r", "lockOwner": "a", "expiryInSeconds": 2**31}
    assert_error(
        await sidecar.request("POST", f"{LOCK}/lockstore", json=too_big), 400, "ERR_MALFORMED_REQUEST"
    )
    body = {"resourceId": "r", "lockOwner": "a", "expiryInSeconds": 5}
    assert_error(
        await sidecar.request("POST", f"{LOCK}/nope", json=body),
        400,
        "ERR_LOCK_STORE_NOT_FOUND",
        message="lock store nope not found",
    )
    assert_error(await sidecar.request("POST", f"{UNLOCK}/nope", json=body), 400, "ERR_LOCK_STORE_NOT_FOUND")
    # Unlock skips the expiry check but not the others.
    response = await sidecar.request("POST", f"{UNLOCK}/lockstore", json={"lockOwner": "a"})
    assert_error(
        response, 400, "ERR_MALFORMED_REQUEST", message="ResourceId is empty in lock store lockstore"
    )
    separator = {"resourceId": "a||b", "lockOwner": "a", "expiryInSeconds": 5}
    assert_error(await sidecar.request("POST", f"{LOCK}/lockstore", json=separator), 500, "ERR_TRY_LOCK")
    assert_error(await sidecar.request("POST", f"{UNLOCK}/lockstore", json=separator), 500, "ERR_UNLOCK")
    assert (await sidecar.request("GET", f"{LOCK}/lockstore")).status_code in (404, 405)


async def test_no_lock_store_configured(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    body = {"resourceId": "r", "lockOwner": "a", "expiryInSeconds": 5}
    message = "lock store is not configured"
    for path in (f"{LOCK}/any", f"{UNLOCK}/any", f"{LOCK}/any/renew"):
        response = await sidecar.request("POST", path, json=body)
        assert_error(response, 500, "ERR_LOCK_STORE_NOT_CONFIGURED", message=message)


async def test_redis_keys_are_daprs(start_sidecar: StartSidecar, redis_server: Any) -> None:
    sidecar = await start_sidecar(component("redislock", "lock.redis", redisHost=redis_server.address))
    body = {"resourceId": "order-9", "lockOwner": "owner-x", "expiryInSeconds": 30}
    assert await lock(sidecar, body, "redislock") == {"success": True}
    client = redis.Redis.from_url(redis_server.url)
    try:
        key = f"lock||{sidecar.app_id}||order-9"
        assert await client.get(key) == b"owner-x"
        assert 0 < await client.pttl(key) <= 30_000
        assert await unlock(sidecar, body, "redislock") == {"status": 0}
        assert await client.exists(key) == 0
    finally:
        await client.aclose()


async def test_key_prefix_none_and_name(start_sidecar: StartSidecar, redis_server: Any) -> None:
    sidecar = await start_sidecar(
        component("plain", "lock.redis", redisHost=redis_server.address, keyPrefix="none"),
        component("named", "lock.redis", redisHost=redis_server.address, keyPrefix="name"),
    )
    resource = f"res-{sidecar.app_id}"
    body = {"resourceId": resource, "lockOwner": "o", "expiryInSeconds": 30}
    assert await lock(sidecar, body, "plain") == {"success": True}
    assert await lock(sidecar, body, "named") == {"success": True}
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert await client.get(resource) == b"o"
        assert await client.get(f"lock||named||{resource}") == b"o"
    finally:
        await client.aclose()
