"""The actor API (dapr-http-api.md section 12.1) on a started sidecar whose app is a real recording
actor app (tests/actor_app.py): every route, its answers and its errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.actor_app import ActorTestApp
from tests.routers.conftest import Sidecar, StartSidecar, assert_error, component

ACTORS = "/v1.0/actors"


async def until_hosting(sidecar: Sidecar, status: str = "RUNNING") -> dict[str, Any]:
    """The sidecar reads the app's /dapr/config in the background: wait for it."""
    for _ in range(200):
        runtime: dict[str, Any] = (await sidecar.metadata())["actorRuntime"]
        if runtime["runtimeStatus"] == status:
            return runtime
        await asyncio.sleep(0.05)
    raise AssertionError(f"the actor runtime never became {status}: {runtime}")


@pytest.fixture
async def app() -> AsyncIterator[ActorTestApp]:
    async with ActorTestApp(["counter"], actorIdleTimeout="1h") as test_app:
        yield test_app


@pytest.fixture
async def sidecar(app: ActorTestApp, start_sidecar: StartSidecar) -> Sidecar:
    """The embedded defaults (their statestore is the actor state store) and the actor app."""
    started = await start_sidecar(resources_paths=[], app_port=app.port)
    await until_hosting(started)
    return started


# -- invoke ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["GET", "POST", "PUT", "DELETE"])
async def test_every_verb_reaches_the_app_as_put_with_headers_query_and_body(
    sidecar: Sidecar, app: ActorTestApp, verb: str
) -> None:
    body = b"" if verb == "GET" else b"hello"
    response = await sidecar.request(
        verb, f"{ACTORS}/counter/c1/method/echo?x=1&y=2", content=body, headers={"X-Custom": "yes"}
    )
    assert response.status_code == 200, response.text
    assert response.content == body
    assert response.headers["x-echo-method"] == "echo"
    assert response.headers["content-type"] == "application/octet-stream"
    [call] = app.of("echo")
    assert (call.actor_type, call.actor_id, call.query) == ("counter", "c1", "x=1&y=2")
    assert call.headers["X-Custom"] == "yes"
    assert call.body == body


async def test_an_escaped_method_and_id_reach_the_app_escaped(sidecar: Sidecar, app: ActorTestApp) -> None:
    response = await sidecar.request("PUT", f"{ACTORS}/counter/a%20b/method/echo")
    assert response.status_code == 200, response.text
    assert app.calls[-1].actor_id == "a b"


async def test_the_apps_failure_is_500_unless_it_asks_for_pass_through(sidecar: Sidecar) -> None:
    failed = await sidecar.request("PUT", f"{ACTORS}/counter/c1/method/fail")
    assert_error(
        failed,
        500,
        "ERR_ACTOR_INVOKE_METHOD",
        message="error invoke actor method: error from actor service: (500) boom",
    )
    through = await sidecar.request("PUT", f"{ACTORS}/counter/c1/method/fail-through")
    assert (through.status_code, through.text) == (418, "teapot")
    missing = await sidecar.request("PUT", f"{ACTORS}/counter/c1/method/nothing-here")
    assert_error(missing, 500, "ERR_ACTOR_INVOKE_METHOD")


@pytest.mark.parametrize(
    "path",
    [
        "/counter/a%2Fb/method/echo",
        "/coun%2Fter/a/method/echo",
        "/counter/a%23b/method/echo",
        "/counter/a%3Fb/method/echo",
        "/counter/a%5Cb/method/echo",
        "/counter/a%01b/method/echo",
        "/counter/a%2Fb/state/k",
        "/counter/a%2Fb/reminders/r",
        "/counter/a%2Fb/timers/t",
    ],
)
async def test_bad_actor_names_are_400(sidecar: Sidecar, path: str) -> None:
    method = "GET" if "/state/" in path or "/reminders/" in path else "PUT"
    assert_error(await sidecar.request(method, ACTORS + path, json={}), 400, "ERR_BAD_REQUEST")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("PUT", "method/m"),
        ("GET", "state/k"),
        ("POST", "state"),
        ("GET", "reminders/r"),
        ("PUT", "timers/t"),
        ("GET", "timers/t"),
        ("GET", "timers"),
    ],
)
async def test_daprs_internal_types_are_reserved(sidecar: Sidecar, method: str, suffix: str) -> None:
    response = await sidecar.request(method, f"{ACTORS}/dapr.internal.default.wf/a/{suffix}", json=[])
    assert_error(response, 403, "ERR_ACTOR_TYPE_RESERVED")


async def test_a_type_nobody_hosts_has_no_address(sidecar: Sidecar) -> None:
    response = await sidecar.request("PUT", f"{ACTORS}/nobody/a/method/echo")
    assert_error(response, 404, "ERR_ACTOR_NO_ADDRESS", message="did not find address for actor")


async def test_metadata_shows_the_runtime_and_the_active_actors(sidecar: Sidecar) -> None:
    for actor_id in ("a", "b"):
        assert (await sidecar.request("PUT", f"{ACTORS}/counter/{actor_id}/method/echo")).status_code == 200
    described = await sidecar.metadata()
    runtime = described["actorRuntime"]
    assert runtime["runtimeStatus"] == "RUNNING"
    assert runtime["hostReady"] is True
    assert runtime["activeActors"] == [{"type": "counter", "count": 2}]
    assert runtime["placement"]
    assert described["actors"] == [{"type": "counter", "count": 2}]
    statestore = next(c for c in described["components"] if c["name"] == "statestore")
    assert "ACTOR" in statestore["capabilities"]


async def test_a_forwarded_call_needs_the_mesh_token(app: ActorTestApp, start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(resources_paths=[], app_port=app.port, mesh_token="s3cret")
    await until_hosting(sidecar)
    refused = await sidecar.request("PUT", f"{ACTORS}/counter/a/method/echo", headers={"l8-actor-hops": "1"})
    assert_error(refused, 403, "ERR_PERMISSION_DENIED")
    taken = await sidecar.request(
        "PUT", f"{ACTORS}/counter/a/method/echo", headers={"l8-actor-hops": "1", "l8-mesh-token": "s3cret"}
    )
    assert taken.status_code == 200, taken.text


async def test_an_app_without_actors_hosts_none(start_sidecar: StartSidecar) -> None:
    async with ActorTestApp() as app:
        app.config_status = 404
        sidecar = await start_sidecar(resources_paths=[], app_port=app.port)
        runtime = await until_hosting(sidecar)
        assert runtime["hostReady"] is False
        assert app.config_reads == 1
        assert_error(
            await sidecar.request("PUT", f"{ACTORS}/counter/a/method/m"), 404, "ERR_ACTOR_NO_ADDRESS"
        )
        response = await sidecar.request("POST", f"{ACTORS}/counter/a/reminders/r", json={"dueTime": "1s"})
        assert_error(response, 403, "ERR_ACTOR_REMINDER_NON_HOSTED")


async def test_the_config_is_read_again_after_the_app_restarts(start_sidecar: StartSidecar) -> None:
    async with ActorTestApp(["counter"]) as first:
        port = first.port
        sidecar = await start_sidecar(resources_paths=[], app_port=port)
        await until_hosting(sidecar)
        assert (await sidecar.request("PUT", f"{ACTORS}/counter/a/method/echo")).status_code == 200
    await asyncio.sleep(1.2)  # the sidecar sees the port closed
    async with ActorTestApp(["other"], port=port) as second:
        for _ in range(100):
            moved = await sidecar.request("PUT", f"{ACTORS}/other/a/method/echo")
            if moved.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert moved.status_code == 200, moved.text
        assert second.config_reads == 1
        assert_error(
            await sidecar.request("PUT", f"{ACTORS}/counter/a/method/echo"), 404, "ERR_ACTOR_NO_ADDRESS"
        )


async def test_without_an_app_the_runtime_is_disabled(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(resources_paths=[])
    assert (await sidecar.metadata())["actorRuntime"]["runtimeStatus"] == "DISABLED"
    assert_error(await sidecar.request("PUT", f"{ACTORS}/counter/a/method/m"), 404, "ERR_ACTOR_NO_ADDRESS")
    for path in ("timers", "timers/t"):  # nothing hosted here: daprd's non-hosted refusal
        assert_error(
            await sidecar.request("GET", f"{ACTORS}/counter/a/{path}"), 403, "ERR_ACTOR_TIMER_NON_HOSTED"
        )


async def test_timer_reads_refuse_bad_actor_names(sidecar: Sidecar) -> None:
    for path in ("counter/a%2Fb/timers", "counter/a%23/timers/t", "counter/a%5Cb/timers"):
        assert_error(await sidecar.request("GET", f"{ACTORS}/{path}"), 400, "ERR_BAD_REQUEST")
    missing = await sidecar.request("GET", f"{ACTORS}/counter/a/timers/no%20such")
    assert_error(missing, 404, "ERR_ACTOR_TIMER_NOT_FOUND", message="actor timer not found: no such")


# -- state -----------------------------------------------------------------------------------------


async def test_state_needs_an_active_actor(sidecar: Sidecar) -> None:
    missing = await sidecar.request("GET", f"{ACTORS}/counter/idle/state/k")
    assert_error(missing, 400, "ERR_ACTOR_INSTANCE_MISSING", message="actor instance is missing")
    saving = await sidecar.request("POST", f"{ACTORS}/counter/idle/state", json=[])
    assert_error(saving, 400, "ERR_ACTOR_INSTANCE_MISSING")


async def test_state_transaction_get_and_daprs_keys(sidecar: Sidecar) -> None:
    assert (await sidecar.request("PUT", f"{ACTORS}/counter/c1/method/echo")).status_code == 200
    operations = [
        {"operation": "upsert", "request": {"key": "total", "value": {"n": 1}}},
        {"operation": "upsert", "request": {"key": "name", "value": "c one"}},
        {"operation": "upsert", "request": {"key": "gone", "value": 1}},
    ]
    for verb in ("POST", "PUT"):
        saved = await sidecar.request(verb, f"{ACTORS}/counter/c1/state", json=operations)
        assert saved.status_code == 204, saved.text
        assert saved.content == b""
    deleted = await sidecar.request(
        "POST", f"{ACTORS}/counter/c1/state", json=[{"operation": "delete", "request": {"key": "gone"}}]
    )
    assert deleted.status_code == 204
    found = await sidecar.request("GET", f"{ACTORS}/counter/c1/state/total")
    assert found.status_code == 200
    assert found.headers["content-type"] == "application/json"
    assert "etag" not in found.headers
    assert found.content == b'{"n":1}'
    assert (await sidecar.request("GET", f"{ACTORS}/counter/c1/state/name")).json() == "c one"
    none = await sidecar.request("GET", f"{ACTORS}/counter/c1/state/gone")
    assert (none.status_code, none.content) == (204, b"")
    from components.state.base import GetRequest

    store = sidecar.store_instance("statestore")
    stored = await store.get(GetRequest(f"{sidecar.app_id}||counter||c1||total"))
    assert stored is not None and stored.value == b'{"n":1}'


async def test_state_etags_and_ttl(sidecar: Sidecar) -> None:
    assert (await sidecar.request("PUT", f"{ACTORS}/counter/c1/method/echo")).status_code == 200
    stale = [{"operation": "upsert", "request": {"key": "k", "value": 1, "etag": "999"}}]
    failed = await sidecar.request("POST", f"{ACTORS}/counter/c1/state", json=stale)
    assert_error(failed, 500, "ERR_ACTOR_STATE_TRANSACTION_SAVE")
    brief = [{"operation": "upsert", "request": {"key": "k", "value": 1, "metadata": {"ttlInSeconds": "1"}}}]
    assert (await sidecar.request("POST", f"{ACTORS}/counter/c1/state", json=brief)).status_code == 204
    assert (await sidecar.request("GET", f"{ACTORS}/counter/c1/state/k")).status_code == 200
    await asyncio.sleep(1.3)
    assert (await sidecar.request("GET", f"{ACTORS}/counter/c1/state/k")).status_code == 204
    bad_ttl = [
        {"operation": "upsert", "request": {"key": "k", "value": 1, "metadata": {"ttlInSeconds": "x"}}}
    ]
    refused = await sidecar.request("POST", f"{ACTORS}/counter/c1/state", json=bad_ttl)
    assert_error(refused, 500, "ERR_ACTOR_STATE_TRANSACTION_SAVE")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "ERR_MALFORMED_REQUEST"),
        (b"", 400, "ERR_MALFORMED_REQUEST"),
        (b'{"operation":"upsert"}', 400, "ERR_MALFORMED_REQUEST"),
        (b"[1]", 400, "ERR_MALFORMED_REQUEST"),
        (b'[{"operation":"upsert","request":{"value":1}}]', 400, "ERR_MALFORMED_REQUEST"),
        (b'[{"operation":"upsert"}]', 400, "ERR_MALFORMED_REQUEST"),
        (b'[{"operation":"merge","request":{"key":"k"}}]', 400, "ERR_NOT_SUPPORTED_STATE_OPERATION"),
        (b'[{"operation":"upsert","request":{"key":"k","metadata":{"a":1}}}]', 400, "ERR_MALFORMED_REQUEST"),
    ],
)
async def test_bad_state_bodies(sidecar: Sidecar, body: bytes, status: int, code: str) -> None:
    assert (await sidecar.request("PUT", f"{ACTORS}/counter/c1/method/echo")).status_code == 200
    response = await sidecar.request("POST", f"{ACTORS}/counter/c1/state", content=body)
    assert_error(response, status, code)


async def test_no_actor_state_store(app: ActorTestApp, start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("plain", "state.in-memory"), app_port=app.port)
    await until_hosting(sidecar)
    assert (await sidecar.request("PUT", f"{ACTORS}/counter/c1/method/echo")).status_code == 200
    assert_error(
        await sidecar.request("GET", f"{ACTORS}/counter/c1/state/k"), 500, "ERR_ACTOR_RUNTIME_NOT_FOUND"
    )
    assert_error(
        await sidecar.request("POST", f"{ACTORS}/counter/c1/state", json=[]),
        500,
        "ERR_ACTOR_RUNTIME_NOT_FOUND",
    )


async def test_a_marked_in_memory_store_holds_actor_state(
    app: ActorTestApp, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(
        component("actors", "state.in-memory", actorStateStore="true"), app_port=app.port
    )
    await until_hosting(sidecar)
    assert (await sidecar.request("PUT", f"{ACTORS}/counter/c1/method/echo")).status_code == 200
    operations = [{"operation": "upsert", "request": {"key": "k", "value": [1]}}]
    assert (await sidecar.request("POST", f"{ACTORS}/counter/c1/state", json=operations)).status_code == 204
    assert (await sidecar.request("GET", f"{ACTORS}/counter/c1/state/k")).json() == [1]


# -- timers ----------------------------------------------------------------------------------------


async def test_timers_fire_and_are_deleted(sidecar: Sidecar, app: ActorTestApp) -> None:
    body = {"dueTime": "0s", "period": "100ms", "callback": "cb", "data": "x"}
    created = await sidecar.request("POST", f"{ACTORS}/counter/c1/timers/t1", json=body)
    assert created.status_code == 204, created.text
    [first, *_] = await app.wait_for(2, "timer/t1")
    assert first.json == {"callback": "cb", "data": "x", "dueTime": "0s", "period": "100ms"}
    assert first.headers["Content-Type"] == "application/json"
    assert (await sidecar.request("DELETE", f"{ACTORS}/counter/c1/timers/t1")).status_code == 204
    await asyncio.sleep(0.15)
    count = len(app.of("timer/t1"))
    await asyncio.sleep(0.3)
    assert len(app.of("timer/t1")) == count
    assert (await sidecar.request("DELETE", f"{ACTORS}/counter/c1/timers/never")).status_code == 204


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{", 400, "ERR_MALFORMED_REQUEST"),
        (b'{"dueTime":"later"}', 500, "ERR_ACTOR_TIMER_CREATE"),
        (b'{"period":"R0/PT1S"}', 500, "ERR_ACTOR_TIMER_CREATE"),
        (b'{"period":"1s","ttl":"bad"}', 500, "ERR_ACTOR_TIMER_CREATE"),
        (b'"x"', 400, "ERR_MALFORMED_REQUEST"),
        (b'{"period":5}', 400, "ERR_MALFORMED_REQUEST"),
    ],
)
async def test_bad_timers(sidecar: Sidecar, body: bytes, status: int, code: str) -> None:
    assert_error(await sidecar.request("PUT", f"{ACTORS}/counter/c1/timers/t", content=body), status, code)


async def test_a_timer_for_a_type_nobody_hosts(sidecar: Sidecar) -> None:
    response = await sidecar.request("PUT", f"{ACTORS}/nobody/c1/timers/t", json={"period": "1s"})
    assert_error(response, 404, "ERR_ACTOR_NO_ADDRESS")


# -- reminders -------------------------------------------------------------------------------------


async def test_reminders_create_get_overwrite_and_delete(sidecar: Sidecar) -> None:
    path = f"{ACTORS}/counter/c1/reminders/r1"
    body = {"dueTime": "1h", "period": "R5/PT10S", "ttl": "2h", "data": {"k": [1, 2]}}
    created = await sidecar.request("POST", path, json=body)
    assert (created.status_code, created.content) == (204, b"")
    found = await sidecar.request("GET", path)
    assert found.status_code == 200, found.text
    reminder = found.json()
    assert reminder.pop("ttl").endswith("Z")
    assert reminder == {
        "actorID": "c1",
        "actorType": "counter",
        "data": {"k": [1, 2]},
        "dueTime": "1h",
        "period": "R5/PT10S",
    }
    refused = await sidecar.request("PUT", path, json={"dueTime": "2h", "overwrite": False})
    assert_error(
        refused, 409, "ERR_ACTOR_REMINDER_ALREADY_EXISTS", message="actor reminder already exists: r1"
    )
    assert (await sidecar.request("PUT", path, json={"dueTime": "2h"})).status_code == 204
    assert (await sidecar.request("GET", path)).json()["dueTime"] == "2h"
    assert (await sidecar.request("DELETE", path)).status_code == 204
    assert_error(
        await sidecar.request("GET", path),
        404,
        "ERR_ACTOR_REMINDER_NOT_FOUND",
        message="actor reminder not found: r1",
    )
    assert (await sidecar.request("DELETE", path)).status_code == 204


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"[", 400, "ERR_MALFORMED_REQUEST"),
        (b"[]", 400, "ERR_MALFORMED_REQUEST"),
        (b'{"dueTime":"1s","overwrite":"yes"}', 400, "ERR_MALFORMED_REQUEST"),
        (b'{"dueTime":"tomorrow"}', 500, "ERR_ACTOR_REMINDER_CREATE"),
        (b'{"period":"R0/PT1S"}', 500, "ERR_ACTOR_REMINDER_CREATE"),
        (b'{"period":5}', 400, "ERR_MALFORMED_REQUEST"),
    ],
)
async def test_bad_reminders(sidecar: Sidecar, body: bytes, status: int, code: str) -> None:
    response = await sidecar.request("POST", f"{ACTORS}/counter/c1/reminders/r", content=body)
    assert_error(response, status, code)


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
async def test_reminders_of_a_type_not_hosted_here(sidecar: Sidecar, method: str) -> None:
    response = await sidecar.request(method, f"{ACTORS}/other/c1/reminders/r", json={"dueTime": "1s"})
    assert_error(
        response,
        403,
        "ERR_ACTOR_REMINDER_NON_HOSTED",
        message="operations on actor reminders are only possible on hosted actor types",
    )


async def test_a_reminder_name_with_the_separator_is_refused(sidecar: Sidecar) -> None:
    response = await sidecar.request(
        "POST", f"{ACTORS}/counter/c1/reminders/a%7C%7Cb", json={"dueTime": "1s"}
    )
    assert_error(response, 400, "ERR_BAD_REQUEST")


async def test_a_reminder_fires_on_the_actor_and_stops_when_the_app_says_so(
    sidecar: Sidecar, app: ActorTestApp
) -> None:
    app.cancel.add("stop")
    body = {"dueTime": "0s", "period": "200ms", "data": {"hello": "world"}}
    assert (await sidecar.request("POST", f"{ACTORS}/counter/c1/reminders/go", json=body)).status_code == 204
    assert (
        await sidecar.request("POST", f"{ACTORS}/counter/c1/reminders/stop", json=body)
    ).status_code == 204
    [first, _] = await app.wait_for(2, "remind/go")
    assert first.json == {"data": {"hello": "world"}, "dueTime": "0s", "period": "200ms"}
    assert first.headers["Content-Type"] == "application/json"
    await app.wait_for(1, "remind/stop")
    await asyncio.sleep(0.6)
    assert len(app.of("remind/stop")) == 1
    assert_error(
        await sidecar.request("GET", f"{ACTORS}/counter/c1/reminders/stop"),
        404,
        "ERR_ACTOR_REMINDER_NOT_FOUND",
    )
    assert (await sidecar.request("DELETE", f"{ACTORS}/counter/c1/reminders/go")).status_code == 204


async def test_no_patch_and_no_deactivation_route(sidecar: Sidecar) -> None:
    """Dapr's router has neither: both reach the invocation fallback, which finds no app id."""
    assert_error(await sidecar.request("PATCH", f"{ACTORS}/counter/c1/method/echo"), 404, "ERR_DIRECT_INVOKE")
    assert_error(await sidecar.request("DELETE", f"{ACTORS}/counter/c1"), 404, "ERR_DIRECT_INVOKE")
