"""The route table is served exactly as documented: every declared route is matched by the
dispatcher on its verbs with its parameters unescaped as Dapr's router unescapes them, and answers
as the same table served through FastAPI's full cycle does."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import httpx
import pytest

from app.dispatcher import Dispatcher
from routers import api
from routers.api import FALLBACK, ROUTES
from routers.table import METHODS, Route
from tests.routers.conftest import BY_ID, Sidecar, StartSidecar, component

# Values that tell a parameter's boundaries apart: escaped slashes, spaces, unicode and Dapr's
# key separator, each as sent (escaped) and as the handler must see it.
SEGMENT = ("my%2Fstore%20%C3%A9", "my/store é")
REST = ("a/b%2Fc%20d||%E2%82%AC", "a/b/c d||€")


def _sample(template: str) -> tuple[str, dict[str, str]]:
    """A concrete escaped path for ``template`` and the parameters it must yield."""
    parts, params = [], {}
    for part in template.split("/"):
        if part.startswith("{"):
            name, _, convertor = part[1:-1].partition(":")
            sent, seen = REST if convertor else SEGMENT
            parts.append(sent)
            params[name] = seen
        else:
            parts.append(part)
    return "/".join(parts), params


def _dispatcher() -> Dispatcher:
    async def framework(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("no table route goes to the framework")

    return Dispatcher(ROUTES, FALLBACK, framework)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{'|'.join(r.methods)} {r.path}")
def test_every_declared_route_is_matched_with_its_parameters(route: Route) -> None:
    dispatcher = _dispatcher()
    path, params = _sample(route.path)
    for method in route.methods:
        found = dispatcher.match(method, path)
        assert found is not None, (method, path)
        assert (found.route.path, found.route.handler) == (route.path, route.handler), (method, path)
        assert found.params == params
    for method in set(METHODS) - set(route.methods):
        found = dispatcher.match(method, path)
        assert found is None or (found.route is not route and method in found.route.methods), (method, path)


@pytest.mark.parametrize(
    ("method", "path", "template", "params"),
    [
        ("GET", "/v1.0/state/s/k", "/v1.0/state/{storeName}/{key:anykey}", {"storeName": "s", "key": "k"}),
        (
            "GET",
            "/v1.0/state/s/a%2Fb/c",
            "/v1.0/state/{storeName}/{key:anykey}",
            {"storeName": "s", "key": "a/b/c"},
        ),
        (
            "GET",
            "/v1.0/state/a%2Fb/k",
            "/v1.0/state/{storeName}/{key:anykey}",
            {"storeName": "a/b", "key": "k"},
        ),
        (
            "GET",
            "/v1.0/state/s/a%0Ab",
            "/v1.0/state/{storeName}/{key:anykey}",
            {"storeName": "s", "key": "a\nb"},
        ),
        ("POST", "/v1.0/state/s", "/v1.0/state/{storeName}", {"storeName": "s"}),
        ("POST", "/v1.0/state/s/bulk", "/v1.0/state/{storeName}/bulk", {"storeName": "s"}),
        ("POST", "/v1.0/state/s/transaction", "/v1.0/state/{storeName}/transaction", {"storeName": "s"}),
        (
            "POST",
            "/v1.0/publish/bulk/p/t",
            "/v1.0/publish/bulk/{pubsubname}/{topic:anykey}",
            {"pubsubname": "p", "topic": "t"},
        ),
        (
            "POST",
            "/v1.0/publish/bulk/t",
            "/v1.0/publish/{pubsubname}/{topic:anykey}",
            {"pubsubname": "bulk", "topic": "t"},
        ),
        (
            "POST",
            "/v1.0/publish/p/a/b",
            "/v1.0/publish/{pubsubname}/{topic:anykey}",
            {"pubsubname": "p", "topic": "a/b"},
        ),
        (
            "GET",
            "/v1.0/configuration/c/subscribe",
            "/v1.0/configuration/{storeName}/subscribe",
            {"storeName": "c"},
        ),
        (
            "GET",
            "/v1.0/configuration/c/i/unsubscribe",
            "/v1.0/configuration/{storeName}/{subscriptionId}/unsubscribe",
            {"storeName": "c", "subscriptionId": "i"},
        ),
        ("POST", "/v1.0-alpha1/lock/l/renew", "/v1.0-alpha1/lock/{storeName}/renew", {"storeName": "l"}),
        ("PATCH", "/v1.0/invoke/a/method/m", "/v1.0/invoke/{target:anykey}", {"target": "a/method/m"}),
    ],
)
def test_static_segments_and_escapes(method: str, path: str, template: str, params: dict[str, str]) -> None:
    found = _dispatcher().match(method, path)
    assert found is not None and found.route.path == template
    assert found.params == params


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1.0/state/s"),  # a save route's path, not its verb
        ("HEAD", "/v1.0/state/s/k"),  # GET routes do not take HEAD (as Dapr's)
        ("PATCH", "/v1.0/state/s"),
        ("POST", "/v1.0-alpha1/lock/a/b"),
        ("GET", "/v1.0/nothing/here"),
        ("GET", "/neworder"),
        ("GET", "/"),
    ],
)
def test_what_no_route_takes_is_the_fallbacks(method: str, path: str) -> None:
    assert _dispatcher().match(method, path) is None


# -- the dispatcher answers as FastAPI's cycle over the same table -----------------------------------

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1.0/state/s/k", {}),
    ("GET", "/v1.0/state/s/missing", {}),
    ("GET", "/v1.0/state/s/k?consistency=strong&metadata.x=y", {}),
    ("GET", "/v1.0/state/s/a%2Fb", {}),
    ("GET", "/v1.0/state/s/a||b", {}),
    ("GET", "/v1.0/state/nope/k", {}),
    ("GET", "/v1.0/state/s/", {}),
    ("GET", "/v1.0/state//k", {}),
    ("HEAD", "/v1.0/state/s/k", {}),
    ("POST", "/v1.0/state/s", {"json": [{"key": "w", "value": {"x": 1}}]}),
    ("PUT", "/v1.0/state/s", {"json": [{"key": "w", "value": "v", "etag": "stale"}]}),
    ("POST", "/v1.0/state/s", {"content": b"{bad"}),
    ("POST", "/v1.0/state/s", {"content": b""}),
    ("POST", "/v1.0/state/s", {"json": [{"key": 1}]}),
    ("POST", "/v1.0/state/s", {"json": [{"key": "w", "metadata": {"ttlInSeconds": "x"}}]}),
    ("POST", "/v1.0/state/s", {"content": b"[" + b" " * 5000 + b"]"}),
    ("POST", "/v1.0/state/nope", {"json": []}),
    ("PATCH", "/v1.0/state/s", {"json": []}),
    ("DELETE", "/v1.0/state/s/k?concurrency=first-write", {"headers": {"if-match": "nope"}}),
    ("POST", "/v1.0/state/s/bulk", {"json": {"keys": ["k", "x"]}}),
    (
        "POST",
        "/v1.0/state/s/transaction",
        {"json": {"operations": [{"operation": "delete", "request": {"key": "k"}}]}},
    ),
    ("POST", "/v1.0/publish/ps/orders", {"json": {"n": 1}}),
    ("PUT", "/v1.0/publish/ps/orders", {"content": b"text"}),
    ("POST", "/v1.0/publish/ps/a/b/c", {"content": b"x"}),
    ("POST", "/v1.0/publish/ps/a%2Fb?metadata.partitionKey=k", {"content": b"x"}),
    ("POST", "/v1.0/publish/ps/orders?metadata.rawPayload=maybe", {"content": b"x"}),
    (
        "POST",
        "/v1.0/publish/ps/orders",
        {"content": b"[1]", "headers": {"content-type": "application/cloudevents+json"}},
    ),
    ("POST", "/v1.0/publish/ps/orders", {"content": b"x" * 5000}),
    ("POST", "/v1.0/publish/ps/forbidden", {"content": b"x"}),
    ("POST", "/v1.0/publish/nope/orders", {"content": b"x"}),
    ("POST", "/v1.0/publish/ps/", {"content": b"x"}),
    ("POST", "/v1.0/publish/ps", {"content": b"x"}),
    ("POST", "/v1.0/publish//orders", {"content": b"x"}),
    (
        "POST",
        "/v1.0/publish/bulk/ps/orders",
        {"json": [{"entryId": "1", "event": "x", "contentType": "text/plain"}]},
    ),
    ("POST", "/v1.0/publish/bulk/orders", {"content": b"x"}),
    ("GET", "/v1.0/publish/ps/orders", {}),
    (
        "POST",
        "/v1.0-alpha1/lock/locks",
        {"json": {"resourceId": "r", "lockOwner": "o", "expiryInSeconds": 9}},
    ),
    ("POST", "/v1.0-alpha1/unlock/locks", {"json": {"resourceId": "r", "lockOwner": "x"}}),
    ("POST", "/v1.0-alpha1/lock/locks", {"content": b"{"}),
    ("POST", "/v1.0-alpha1/sequencer/nope", {"json": {"key": "k"}}),
    ("GET", "/v1.0/configuration/nope?key=a", {}),
    ("GET", "/v1.0/healthz?appid=other", {}),
    ("GET", "/v1.0/healthz/outbound", {}),
    ("PUT", "/v1.0/metadata/k", {"content": b"v"}),
    ("GET", "/v1.0/invoke/nowhere/method/m", {}),
    ("GET", "/neworder", {}),
    ("TRACE", "/neworder", {}),
]


def _comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "etag")}
    return response.status_code, re.sub(rb'"etag":"[^"]*"', b"", response.content), headers


async def test_the_dispatcher_answers_as_the_framework_does(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = (
        BY_ID["in-memory"].component("s", request),
        component("ps", "pubsub.in-memory", protectedTopics="forbidden"),
        component("locks", "lock.in-memory"),
    )
    direct = await start_sidecar(*stores, max_body_size=4096, app_id="same")
    # The same table, every route declared framework=True: served by FastAPI's routing and cycle.
    monkeypatch.setattr(api, "ROUTES", tuple(dataclasses.replace(r, framework=True) for r in ROUTES))
    monkeypatch.setattr(api, "FALLBACK", dataclasses.replace(FALLBACK, framework=True))
    import app.factory

    monkeypatch.setattr(app.factory, "ROUTES", api.ROUTES)
    monkeypatch.setattr(app.factory, "FALLBACK", api.FALLBACK)
    framework = await start_sidecar(*stores, max_body_size=4096, app_id="same")
    for method, path, kwargs in CASES:
        answers = []
        for side in (direct, framework):
            await _reset(side)
            answers.append(_comparable(await side.request(method, path, **kwargs)))
        assert answers[0] == answers[1], (method, path)


async def _reset(sidecar: Sidecar) -> None:
    await sidecar.saved("s", "k", {"n": 1})
    await sidecar.request("DELETE", "/v1.0/state/s/w")


# -- what the review of the redesign found --------------------------------------------------------


async def test_the_first_value_of_a_repeated_query_parameter_counts(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(app_id="me")
    assert (await sidecar.request("GET", "/v1.0/healthz?appid=me&appid=other")).status_code == 204
    answer = await sidecar.request("GET", "/v1.0/healthz?appid=other&appid=me")
    assert answer.status_code == 500 and answer.json()["errorCode"] == "ERR_HEALTH_APPID_NOT_MATCH"
    assert (await sidecar.request("GET", "/v1.0/healthz?appid=")).status_code == 204  # no check


@pytest.mark.parametrize("key", ["%FF%28", "%C3%28", "a%ZZ", "a%2"])
async def test_a_path_escape_that_is_not_utf8_is_refused_not_folded(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest, key: str
) -> None:
    sidecar = await start_sidecar(BY_ID["in-memory"].component("s", request))
    answer = await sidecar.request("GET", f"/v1.0/state/s/{key}")
    assert answer.status_code == 400 and answer.json()["errorCode"] == "ERR_MALFORMED_REQUEST"
    assert (await sidecar.request("DELETE", f"/v1.0/state/s/{key}")).status_code == 400


async def test_the_documentation_pages_are_fastapis_only_for_reading(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar()
    assert (await sidecar.request("GET", "/openapi.json")).status_code == 200
    for method, headers in (("POST", {}), ("DELETE", {}), ("GET", {"dapr-app-id": ""})):
        answer = await sidecar.request(method, "/openapi.json", headers=headers)
        assert answer.status_code == 404 and answer.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    # With an app id, the path is the app's method, as on any path l8 does not serve.
    called = await sidecar.request("GET", "/docs", headers={"dapr-app-id": "nobody"})
    assert called.status_code == 500 and called.json()["errorCode"] == "ERR_DIRECT_INVOKE"


async def test_after_shutdown_began_a_request_is_not_ready_not_a_closed_store(tmp_path: Any) -> None:
    from app.factory import create_app
    from app.settings import Settings

    app = create_app(Settings.load({"data_dir": str(tmp_path)}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://l8") as client:
        async with app.lifespan():
            assert (await client.get("/v1.0/state/statestore/k")).status_code == 204
        answer = await client.get("/v1.0/state/statestore/k")
        assert answer.status_code == 500 and answer.json()["errorCode"] == "ERR_HEALTH_NOT_READY"
        assert app.sidecar.services is None and not hasattr(app.state, "runtime")
