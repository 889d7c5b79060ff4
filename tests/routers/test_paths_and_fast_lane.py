"""Keys that look like paths, hostile query pages and falsy bodies; and the fast lane answering
exactly as the FastAPI routes it shortcuts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.middleware import SidecarMiddleware
from tests.routers.conftest import BY_ID, STATE, Sidecar, StartSidecar, assert_error, component


async def test_encoded_slashes_address_their_own_keys(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest
) -> None:
    sidecar = await start_sidecar(BY_ID["in-memory"].component("s", request))
    for key in ("a", "a/", "a/b", "a//b"):
        await sidecar.saved("s", key, key)
    assert (await sidecar.request("GET", f"{STATE}/s/a%2F")).json() == "a/"
    assert (await sidecar.request("GET", f"{STATE}/s/a%2F%2Fb")).json() == "a//b"
    assert (await sidecar.request("DELETE", f"{STATE}/s/a%2F")).status_code == 204
    assert (await sidecar.request("GET", f"{STATE}/s/a%2F")).status_code == 204
    assert (await sidecar.request("GET", f"{STATE}/s/a")).json() == "a"  # untouched


@pytest.mark.parametrize(
    "page",
    [
        {"limit": 1, "token": "99999999999999999999"},
        {"limit": 1, "token": "²"},
        {"limit": 2**63},
        {"limit": -1},
    ],
)
async def test_hostile_pages_are_failed_queries(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest, page: dict[str, Any]
) -> None:
    sidecar = await start_sidecar(BY_ID["sqlite"].component("s", request))
    await sidecar.saved("s", "k", {"n": 1})
    response = await sidecar.query("s", {"filter": {"EQ": {"n": 1}}, "page": page})
    assert_error(response, 500, "ERR_STATE_QUERY", details=["ErrorInfo", "ResourceInfo"])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("bulk", {"keys": {}}),
        ("bulk", {"keys": ""}),
        ("bulk", {"keys": ["k"], "parallelism": False}),
        ("transaction", {"operations": {}}),
        ("transaction", {"operations": ""}),
        ("transaction", {"operations": 0}),
    ],
)
async def test_falsy_values_of_the_wrong_type_are_malformed(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest, path: str, body: Any
) -> None:
    sidecar = await start_sidecar(BY_ID["in-memory"].component("s", request))
    response = await sidecar.request("POST", f"{STATE}/s/{path}", json=body)
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")


# -- the fast lane ---------------------------------------------------------------------------------

FAST_LANE_CASES: list[tuple[str, str, dict[str, Any]]] = [
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
]


def _comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "etag")}
    return response.status_code, response.content, headers


async def test_fast_lane_answers_like_the_framework_routes(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest
) -> None:
    sidecar = await start_sidecar(BY_ID["in-memory"].component("s", request), max_body_size=4096)
    # The same app without the fast lane: l8's middleware straight over FastAPI's stack.
    stack = SidecarMiddleware(FastAPI.build_middleware_stack(sidecar.app), **sidecar.app.sidecar_middleware)

    async def framework_only(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = sidecar.app  # what Starlette.__call__ sets before its middleware stack
        await stack(scope, receive, send)

    transport = httpx.ASGITransport(framework_only)
    async with httpx.AsyncClient(transport=transport, base_url="http://l8") as slow:
        slow_sidecar = Sidecar(sidecar.app, slow, sidecar.app_id)
        for method, path, kwargs in FAST_LANE_CASES:
            for side in (sidecar, slow_sidecar):
                await side.saved("s", "k", {"n": 1})
                await side.request("DELETE", "/v1.0/state/s/w")
            fast = await sidecar.request(method, path, **kwargs)
            await sidecar.request("DELETE", "/v1.0/state/s/w")
            slow_answer = await slow_sidecar.request(method, path, **kwargs)
            assert _comparable(fast) == _comparable(slow_answer), (method, path)


PUBLISH_FAST_LANE_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1.0/publish/ps/orders", {"json": {"n": 1}}),
    ("PUT", "/v1.0/publish/ps/orders", {"content": b"text"}),
    ("POST", "/v1.0/publish/ps/a/b/c", {"content": b"x"}),
    ("POST", "/v1.0/publish/ps/a%2Fb?metadata.partitionKey=k", {"content": b"x"}),
    ("POST", "/v1.0/publish/ps/orders?metadata.rawPayload=true", {"content": b"raw"}),
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
    ("DELETE", "/v1.0/publish/ps/orders", {}),
    ("PATCH", "/v1.0/publish/ps/orders", {"content": b"x"}),
]


async def test_fast_lane_publishes_like_the_framework_routes(start_sidecar: StartSidecar) -> None:
    pubsub = component("ps", "pubsub.in-memory", protectedTopics="forbidden")
    sidecar = await start_sidecar(pubsub, max_body_size=4096)
    stack = SidecarMiddleware(FastAPI.build_middleware_stack(sidecar.app), **sidecar.app.sidecar_middleware)

    async def framework_only(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = sidecar.app
        await stack(scope, receive, send)

    transport = httpx.ASGITransport(framework_only)
    async with httpx.AsyncClient(transport=transport, base_url="http://l8") as slow:
        slow_sidecar = Sidecar(sidecar.app, slow, sidecar.app_id)
        for method, path, kwargs in PUBLISH_FAST_LANE_CASES:
            fast = await sidecar.request(method, path, **kwargs)
            slow_answer = await slow_sidecar.request(method, path, **kwargs)
            assert _comparable(fast) == _comparable(slow_answer), (method, path)
