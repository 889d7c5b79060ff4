"""middleware.http.wasm through a real ``l8 run --config``: the http-wasm example guests in a
Configuration's httpPipeline (after a rate limit), one answering 401 to requests without the right
Authorization header, one rewriting a path prefix onto the state API, so a request to
``/shop/stock/<key>`` is served by the state store; a guest that fails start-up names its component."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import L8Launcher, write_component
from wasm.examples.builder import build

pytestmark = pytest.mark.e2e

PIPELINE = (
    "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: appconfig}\n"
    "spec:\n  httpPipeline:\n    handlers:\n"
    "      - {name: ratelimit, type: middleware.http.ratelimit}\n"
    "      - {name: auth, type: middleware.http.wasm}\n"
    "      - {name: rewrite, type: middleware.http.wasm}\n"
)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text)
    return path


async def test_a_pipeline_of_wasm_guests_answers_401_and_rewrites_paths(
    l8: L8Launcher, tmp_path: Path
) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "statestore", "state.in-memory", {})
    write_component(resources, "ratelimit", "middleware.http.ratelimit", {"maxRequestsPerSecond": "1000"})
    write_component(
        resources,
        "auth",
        "middleware.http.wasm",
        {"url": f"file://{build('wat', 'auth')}", "guestConfig": "Bearer s3cret"},
    )
    write_component(
        resources,
        "rewrite",
        "middleware.http.wasm",
        {"url": str(build("wat", "rewrite")), "guestConfig": "/shop/stock/=/v1.0/state/statestore/"},
    )
    config = _config(tmp_path, PIPELINE)
    sidecar = await asyncio.to_thread(
        l8, app_id="wasm-mw", resources=[resources], args=["--config", str(config)]
    )
    authorized = {"Authorization": "Bearer s3cret"}
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
        refused = await client.get("/v1.0/state/statestore/apples")
        assert (refused.status_code, refused.text) == (401, "unauthorized by wasm\n")
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = await client.get("/v1.0/state/statestore/apples", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401

        saved = await client.post(
            "/v1.0/state/statestore", json=[{"key": "apples", "value": 12}], headers=authorized
        )
        assert saved.status_code == 204, saved.text
        direct = await client.get("/v1.0/state/statestore/apples", headers=authorized)
        assert (direct.status_code, direct.json()) == (200, 12)
        rewritten = await client.get("/shop/stock/apples", headers=authorized)
        assert (rewritten.status_code, rewritten.json()) == (200, 12), rewritten.text
        missing = await client.get("/shop/stock/pears", headers=authorized)
        assert missing.status_code == 204
        # the rewritten request goes through the state API's own rules: a bad store is Dapr's error
        unknown = await client.get("/shop/stock/../../nostore/x", headers=authorized)
        assert unknown.status_code in (400, 404, 500), unknown.text

        # POST with a body through the rewrite: the body reaches the state API unchanged
        bulk = await client.post("/v1.0/state/statestore/bulk", json={"keys": ["apples"]}, headers=authorized)
        assert bulk.status_code == 200 and bulk.json()[0]["data"] == 12

        metadata = await client.get("/v1.0/metadata", headers=authorized)
        assert {"auth", "rewrite"}.isdisjoint({c["name"] for c in metadata.json()["components"]})


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"url": "https://example.com/auth.wasm"}, "does not fetch wasm modules over the network"),
        ({"url": "file:///no/such/guest.wasm"}, "No such file"),
    ],
)
async def test_a_bad_guest_fails_start_up_naming_its_component(
    l8: L8Launcher, tmp_path: Path, metadata: dict[str, str], message: str
) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "auth", "middleware.http.wasm", metadata)
    config = _config(
        tmp_path,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\n"
        "spec: {httpPipeline: {handlers: [{name: auth, type: middleware.http.wasm}]}}\n",
    )
    process = l8.create(resources=[resources], args=["--config", str(config)]).launch()
    assert await asyncio.to_thread(process.wait_exit) == 1
    assert message in process.stderr and "component 'auth'" in process.stderr
    assert "Traceback" not in process.stderr
