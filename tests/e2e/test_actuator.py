"""The actuator and the logs through a real ``l8 run``: readiness goes 503 naming the Redis state
store when its (private) Redis stops and UP again when it returns; a logger set to debug through
``POST /actuator/logger`` makes debug lines appear; with ``--log-as-json`` every line is one JSON
object, and a request's lines carry its trace id and request id."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.servers import RedisServer

pytestmark = pytest.mark.e2e

READINESS = "/actuator/health/readiness"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def json_lines(sidecar: L8Process) -> list[dict[str, Any]]:
    """Every line of stderr, each required to be one JSON object."""
    lines = [line for line in sidecar.stderr.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        value = orjson.loads(line)  # raises on a line that is not JSON
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


def test_readiness_follows_redis_down_and_back(l8: L8Launcher, own_redis: RedisServer, tmp_path: Any) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "cache", "state.redis", {"redisHost": own_redis.address})
    sidecar = l8(resources=[resources], args=["--log-as-json"])
    with httpx.Client(base_url=sidecar.url, timeout=5) as client:
        up = client.get(READINESS)
        assert up.status_code == 200 and up.json()["components"]["cache"]["status"] == "UP"
        own_redis.stop()
        down = eventually(lambda: (r := client.get(READINESS)).status_code == 503 and r)
        assert down, "readiness did not go 503 with Redis stopped"
        body = down.json()
        assert body["status"] == "DOWN"
        assert body["components"]["cache"]["status"] == "DOWN"
        assert body["components"]["cache"]["details"]["type"] == "state.redis"
        assert client.get("/actuator/health/liveness").status_code == 200
        assert client.get("/v1.0/healthz").status_code == 204  # Dapr's healthz is about start-up only
        own_redis.start()
        back = eventually(lambda: (r := client.get(READINESS)).status_code == 200 and r)
        assert back and back.json()["status"] == "UP", "readiness did not come back with Redis"
    lines = json_lines(sidecar)
    failed = [line for line in lines if line["event"] == "component health check failed"]
    assert len(failed) == 1 and failed[0]["type"] == "state.redis" and failed[0]["level"] == "warning"
    assert any(line["event"] == "component healthy again" for line in lines)


def test_a_logger_set_to_debug_writes_debug_lines_with_the_requests_ids(l8: L8Launcher) -> None:
    sidecar = l8(args=["--log-as-json"])
    with httpx.Client(base_url=sidecar.url, timeout=5) as client:
        client.get("/v1.0/state/statestore/before", headers={"traceparent": TRACEPARENT})
        assert not [line for line in json_lines(sidecar) if line["level"] == "debug"]
        changed = client.post("/actuator/logger", json={"component": "l8.api", "level": "debug"})
        assert changed.status_code == 200 and changed.json() == {}
        traced = client.get("/v1.0/state/statestore/after", headers={"traceparent": TRACEPARENT})
        untraced = client.get("/v1.0/state/statestore/other")

    def api_calls() -> list[dict[str, Any]]:
        return [line for line in json_lines(sidecar) if line["event"] == "api call"]

    assert eventually(lambda: len(api_calls()) >= 2), sidecar.stderr
    first, second = api_calls()[:2]
    assert first["level"] == "debug" and first["logger"] == "l8.api"
    assert first["path"] == "/v1.0/state/statestore/after" and first["status"] == 204
    assert first["trace_id"] == TRACE_ID
    assert first["request_id"] == traced.headers["x-request-id"]
    assert second["request_id"] == untraced.headers["x-request-id"]
    assert len(second["trace_id"]) == 32 and second["trace_id"] != TRACE_ID  # a new trace
    changed_line = next(line for line in json_lines(sidecar) if line["event"] == "log level changed")
    assert changed_line["target"] == "l8.api" and changed_line["logger"] == "services.actuator"
    assert changed_line["request_id"] and changed_line["trace_id"]


def test_the_root_level_reaches_component_loggers(l8: L8Launcher) -> None:
    """Root at debug: the runtime's debug lines appear once it is set (components started before
    do not log again, so a component's own debug line is checked through the API's)."""
    sidecar = l8(args=["--log-as-json", "--log-level", "warning"])
    with httpx.Client(base_url=sidecar.url, timeout=5) as client:
        assert (
            client.post("/actuator/logger", json={"component": "root", "level": "debug"}).status_code == 200
        )
        client.get("/v1.0/healthz")
        assert (
            client.post("/actuator/logger", json={"component": "root", "level": "error"}).status_code == 200
        )
        client.get("/v1.0/healthz/outbound")
    lines = json_lines(sidecar)
    assert not [line for line in lines if line["level"] == "info" and line["event"] == "components ready"]
    calls = [line for line in lines if line["event"] == "api call"]
    assert [call["path"] for call in calls] == ["/v1.0/healthz"]
