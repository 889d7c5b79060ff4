"""Layotto's actuator through the app: health over real backends (a Redis of the test's own that
it stops and starts, SQLite, in-memory stores), info, the live log level and its bad bodies, and
the API token (not for the probes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.log_levels import PROCESS_LEVELS
from tests.routers.conftest import JSON, Sidecar, StartSidecar, assert_error, component
from tests.servers import RedisServer

LIVENESS, READINESS = "/actuator/health/liveness", "/actuator/health/readiness"
INFO, LOGGER = "/actuator/info", "/actuator/logger"


@pytest.fixture(autouse=True)
def _levels_back() -> Iterator[None]:
    yield
    PROCESS_LEVELS.reset(logging.INFO)


async def health(sidecar: Sidecar, path: str = READINESS, status: int = 200) -> dict[str, Any]:
    response = await sidecar.request("GET", path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON
    body: dict[str, Any] = response.json()
    return body


async def test_readiness_lists_every_component_with_its_type(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    sidecar = await start_sidecar(
        component("statestore", "state.sqlite", connectionString=str(tmp_path / "s.db")),
        component("lockstore", "lock.in-memory"),
        component("events", "pubsub.in-memory"),
    )
    assert await health(sidecar) == {
        "status": "UP",
        "components": {
            "runtime_startup": {"status": "UP"},
            "statestore": {"status": "UP", "details": {"type": "state.sqlite"}},
            "lockstore": {"status": "UP", "details": {"type": "lock.in-memory"}},
            "events": {"status": "UP", "details": {"type": "pubsub.in-memory"}},
        },
    }
    assert await health(sidecar, LIVENESS) == {
        "status": "UP",
        "components": {"runtime_startup": {"status": "UP"}},
    }


async def test_readiness_goes_down_with_redis_and_comes_back(
    start_sidecar: StartSidecar, own_redis: RedisServer
) -> None:
    sidecar = await start_sidecar(
        component("cache", "state.redis", redisHost=own_redis.address),
        component("lockstore", "lock.in-memory"),
    )
    assert (await health(sidecar))["status"] == "UP"
    own_redis.stop()
    await asyncio.sleep(1.1)  # past the cached answer
    down = await health(sidecar, status=503)
    assert down["status"] == "DOWN"
    assert down["components"]["cache"]["status"] == "DOWN"
    assert down["components"]["cache"]["details"]["type"] == "state.redis"
    assert down["components"]["cache"]["details"]["reason"]
    assert down["components"]["lockstore"] == {"status": "UP", "details": {"type": "lock.in-memory"}}
    assert (await health(sidecar, LIVENESS))["status"] == "UP"  # a backend does not fail liveness
    own_redis.start()
    await asyncio.sleep(1.1)
    assert (await health(sidecar))["status"] == "UP"


async def test_probes_answer_down_once_shutdown_began(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("lockstore", "lock.in-memory"))
    sidecar.app.sidecar.readiness.stop()
    for path in (LIVENESS, READINESS):
        body = await health(sidecar, path, status=503)
        assert body["status"] == "DOWN"
        assert body["components"]["runtime_startup"] == {"status": "DOWN", "details": {"reason": "shutdown"}}


async def test_info_says_what_the_sidecar_is(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("lockstore", "lock.in-memory"))
    response = await sidecar.request("GET", INFO)
    assert response.status_code == 200 and response.headers["content-type"] == JSON
    body = response.json()
    assert body["app"]["name"] == "l8" and body["app"]["appId"] == sidecar.app_id
    assert body["app"]["version"] and body["app"]["daprApiVersion"]
    assert body["app"]["startTime"].endswith("Z") and body["app"]["uptimeSeconds"] >= 0
    assert body["components"] == [{"name": "lockstore", "type": "lock.in-memory", "version": "v1"}]
    assert body["loggers"] == {"root": "info"}


async def test_the_logger_level_changes_and_info_shows_it(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    for body in ({"component": "components/state", "level": "debug"}, {"component": "root", "level": "warn"}):
        response = await sidecar.request("POST", LOGGER, json=body)
        assert response.status_code == 200 and response.json() == {}
    assert PROCESS_LEVELS.threshold("components.state.redis") == logging.DEBUG
    assert PROCESS_LEVELS.threshold("services.state") == logging.WARNING
    loggers = (await sidecar.request("GET", INFO)).json()["loggers"]
    assert loggers == {"components.state": "debug", "root": "warning"}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"component": "l8.api"}',
        b'{"component": "l8.api", "level": "loud"}',
        b'{"component": 7, "level": "debug"}',
        b'{"level": "debug"}',
    ],
)
async def test_a_bad_logger_body_is_refused(start_sidecar: StartSidecar, body: bytes) -> None:
    sidecar = await start_sidecar()
    response = await sidecar.request("POST", LOGGER, content=body, headers={"content-type": JSON})
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")
    assert PROCESS_LEVELS.configured() == {"root": "info"}


async def test_the_api_token_guards_all_but_the_probes(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("lockstore", "lock.in-memory"), api_token="s3cret")
    for path in (LIVENESS, READINESS):
        assert (await sidecar.request("GET", path)).status_code == 200
    assert (await sidecar.request("GET", INFO)).status_code == 401
    assert (
        await sidecar.request("POST", LOGGER, json={"component": "root", "level": "debug"})
    ).status_code == 401
    assert (await sidecar.request("POST", READINESS)).status_code == 401  # only GET is exempt
    token = {"dapr-api-token": "s3cret"}
    assert (await sidecar.request("GET", INFO, headers=token)).status_code == 200


async def test_a_request_naming_an_app_invokes_the_apps_own_actuator(start_sidecar: StartSidecar) -> None:
    """Spring Boot apps serve /actuator too: with dapr-app-id the path is the app's (invocation),
    and then neither the probes' token exemption nor the actuator's answer applies."""
    sidecar = await start_sidecar(component("lockstore", "lock.in-memory"), api_token="s3cret")
    app = {"dapr-app-id": "orders"}
    assert (await sidecar.request("GET", READINESS, headers=app)).status_code == 401
    invoked = await sidecar.request("GET", READINESS, headers={**app, "dapr-api-token": "s3cret"})
    body = invoked.json()
    assert "errorCode" in body and body["errorCode"].startswith("ERR_DIRECT_INVOKE"), body
    info = await sidecar.request("GET", INFO, headers={**app, "dapr-api-token": "s3cret"})
    assert info.json()["errorCode"].startswith("ERR_DIRECT_INVOKE")
