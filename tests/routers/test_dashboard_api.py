"""The dashboard through the app: its JSON answer's shape (components with health, subscriptions
with routes, rate-limit counters, traffic per block, recent errors), the API token (the page and its
files without it, the data with it) and the page's files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from tests.routers.conftest import JSON, Sidecar, StartSidecar, assert_error, component
from tests.servers import RedisServer

DATA, PAGE = "/v1.0-alpha1/l8/dashboard", "/dashboard"


async def dashboard(sidecar: Sidecar, **headers: str) -> dict[str, Any]:
    response = await sidecar.request("GET", DATA, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON
    body: dict[str, Any] = response.json()
    return body


def subscription(name: str, pubsub: str, topic: str, default: str, **rules: str) -> str:
    document = {
        "apiVersion": "dapr.io/v2alpha1",
        "kind": "Subscription",
        "metadata": {"name": name},
        "spec": {
            "pubsubname": pubsub,
            "topic": topic,
            "routes": {
                "rules": [{"match": match, "path": path} for match, path in rules.items()],
                "default": default,
            },
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


async def test_the_answer_shows_the_app_components_and_subscriptions(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    sidecar = await start_sidecar(
        component("statestore", "state.sqlite", connectionString=str(tmp_path / "s.db")),
        component("events", "pubsub.in-memory"),
        subscription("orders", "events", "orders", "/orders", **{'event.type == "big"': "/big"}),
    )
    body = await dashboard(sidecar)
    assert set(body) == {
        "app",
        "components",
        "subscriptions",
        "rateLimits",
        "wasmFunctions",
        "actors",
        "traffic",
        "errors",
    }
    app = body["app"]
    assert app["id"] == sidecar.app_id and app["status"] == "UP"
    assert app["uptimeSeconds"] >= 0 and app["startTime"].endswith("Z") and app["version"]
    by_name = {c["name"]: c for c in body["components"]}
    assert by_name["statestore"] == {
        "name": "statestore",
        "type": "state.sqlite",
        "version": "v1",
        "capabilities": ["ETAG", "QUERY_API", "TRANSACTIONAL", "TTL", "ACTOR"],
        "health": "UP",
    }
    assert by_name["events"]["type"] == "pubsub.in-memory" and by_name["events"]["health"] == "UP"
    assert body["subscriptions"] == [
        {
            "pubsubname": "events",
            "topic": "orders",
            "routes": [{"match": 'event.type == "big"', "path": "/big"}, {"match": "", "path": "/orders"}],
            "deadLetterTopic": "",
            "type": "DECLARATIVE",
        }
    ]
    assert body["rateLimits"] == [] and body["wasmFunctions"] == []
    assert body["actors"]["runtimeStatus"] == "DISABLED"
    assert body["traffic"]["intervalSeconds"] > 0 and isinstance(body["traffic"]["blocks"], dict)


async def test_a_component_that_is_down_says_why(start_sidecar: StartSidecar, own_redis: RedisServer) -> None:
    sidecar = await start_sidecar(component("cache", "state.redis", redisHost=own_redis.address))
    assert {c["name"]: c for c in (await dashboard(sidecar))["components"]}["cache"]["health"] == "UP"
    own_redis.stop()
    await asyncio.sleep(1.1)  # past the actuator's cached answer
    found = {c["name"]: c for c in (await dashboard(sidecar))["components"]}["cache"]
    assert found["health"] == "DOWN" and found["reason"]
    assert (await dashboard(sidecar))["app"]["status"] == "DOWN"


async def test_error_answers_are_listed_newest_first(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("lockstore", "lock.in-memory"))
    assert (await dashboard(sidecar))["errors"] == []
    missing = await sidecar.request("GET", "/v1.0/state/nostore/key")
    assert_error(missing, 500, "ERR_STATE_STORE_NOT_CONFIGURED", details=["ErrorInfo"])
    bad = await sidecar.request("POST", "/v1.0-alpha1/lock/lockstore", content=b"{")
    assert bad.status_code == 400
    errors = (await dashboard(sidecar))["errors"]
    assert [(e["status"], e["code"], e["method"]) for e in errors] == [
        (400, bad.json()["errorCode"], "POST"),
        (500, "ERR_STATE_STORE_NOT_CONFIGURED", "GET"),
    ]
    assert errors[1]["route"] == "/v1.0/state/{storeName}/{key:anykey}"
    assert "nostore" in errors[1]["message"] and errors[0]["time"] >= errors[1]["time"] > 0


async def test_rate_limit_rules_show_allowed_and_refused(start_sidecar: StartSidecar) -> None:
    rules = [{"name": "metadata", "threshold": 2, "interval": "60s", "resource": "/v1.0/metadata"}]
    sidecar = await start_sidecar(rate_limits={"rules": rules})
    statuses = [(await sidecar.request("GET", "/v1.0/metadata")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    [rule] = (await dashboard(sidecar))["rateLimits"]
    assert rule["name"] == "metadata" and rule["allowed"] == 2 and rule["refused"] == 1
    assert (await dashboard(sidecar))["errors"][0]["code"] == "ERR_TOO_MANY_REQUESTS"


async def test_the_page_needs_no_token_and_the_data_does(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("lockstore", "lock.in-memory"), api_token="s3cret")
    for path, kind in (
        (PAGE, "text/html"),
        (f"{PAGE}/dashboard.js", "text/javascript"),
        (f"{PAGE}/dashboard.css", "text/css"),
    ):
        response = await sidecar.request("GET", path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(kind)
        assert "default-src 'self'" in response.headers["content-security-policy"]
    assert b"/dashboard/dashboard.js" in (await sidecar.request("GET", PAGE)).content
    refused = await sidecar.request("GET", DATA)
    assert refused.status_code == 401
    wrong = await sidecar.request("GET", DATA, headers={"dapr-api-token": "wrong"})
    assert wrong.status_code == 401
    assert (await dashboard(sidecar, **{"dapr-api-token": "s3cret"}))["app"]["id"] == sidecar.app_id
    # Only GET on the page's own paths is open; another verb there needs the token too.
    assert (await sidecar.request("POST", PAGE)).status_code == 401
    errors = (await dashboard(sidecar, **{"dapr-api-token": "s3cret"}))["errors"]
    assert [(e["status"], e["route"]) for e in errors[:2]] == [(401, PAGE), (401, DATA)]


async def test_the_dashboard_page_of_an_app_is_invoked(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(api_token="s3cret")
    # Naming an app makes it an invocation, which needs the token like any other.
    response = await sidecar.request("GET", PAGE, headers={"dapr-app-id": "other"})
    assert response.status_code == 401


async def test_with_metrics_off_there_is_no_traffic_to_chart(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("lockstore", "lock.in-memory"), enable_metrics=False)
    body = await dashboard(sidecar)
    assert body["traffic"] is None and body["components"][0]["name"] == "lockstore"


async def test_the_traffic_counts_requests_by_block(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(component("lockstore", "lock.in-memory"))
    traffic = sidecar.app.state.runtime.services.dashboard.traffic
    traffic.sample()
    for _ in range(4):
        assert (await sidecar.request("GET", "/v1.0/metadata")).status_code == 200
        await dashboard(sidecar)  # the dashboard's own polls are not counted
    traffic.sample()
    blocks = (await dashboard(sidecar))["traffic"]["blocks"]
    assert set(blocks) == {"metadata"}
    # The runtime's own sampling may fall in between: all four are in the points since the first.
    assert sum(blocks["metadata"]["rps"]) * traffic.interval == 4
    assert all(p50 > 0 for p50 in blocks["metadata"]["p50"] if p50 is not None)
