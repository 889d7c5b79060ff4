"""The Dapr Python SDK (PyPI ``dapr`` 1.19) against a running l8, through the parts that speak HTTP.

What the SDK does over HTTP, and is exercised here:

* the sidecar readiness probe, ``dapr.clients.health.DaprHealth.wait_for_sidecar()`` (and its asyncio
  twin in ``dapr.aio.clients.health``): polls ``GET {api}/healthz/outbound`` until a 2xx, where
  ``{api}`` is ``DAPR_HTTP_ENDPOINT/v1.0`` or ``http://DAPR_RUNTIME_HOST:DAPR_HTTP_PORT/v1.0``
  (``dapr.clients.http.helpers.get_api_url``; settings are read from the environment on every use),
  sending ``dapr-api-token`` when ``DAPR_API_TOKEN`` is set. Every client constructor calls it,
  ``DaprClient()`` included;
* ``dapr.clients.http.client.DaprHttpClient.send_bytes``: the generic request the SDK's invocation and
  actor clients are built on; its non-2xx answers become ``DaprHttpError``, which reads ``errorCode``
  and ``message`` from the JSON body.

What is gRPC-only and so not reachable against l8 (which serves Dapr's HTTP API only):
``DaprClient.save_state/get_state/get_bulk_state/delete_state/execute_state_transaction/
query_state_alpha1``, ``get_metadata/set_metadata``, publish, bindings, secrets, configuration, locks,
workflows and jobs. Only ``invoke_method`` uses HTTP (by default); l8 serves it, and
``test_invoke_method_reaches_the_app`` calls an app through l8 with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from dapr.aio.clients import DaprClient as AsyncDaprClient
from dapr.aio.clients.health import DaprHealth as AsyncDaprHealth
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprHttpError
from dapr.clients.health import DaprHealth
from dapr.clients.http.client import DaprHttpClient
from dapr.serializers import DefaultJSONSerializer

from tests.e2e.process import L8Launcher, L8Process
from tests.echo_app import echo_app
from tests.servers import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

_SDK_SETTINGS = (
    "DAPR_HTTP_PORT",
    "DAPR_HTTP_ENDPOINT",
    "DAPR_API_TOKEN",
    "DAPR_RUNTIME_HOST",
    "DAPR_GRPC_PORT",
)


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[L8Process]:
    launcher = L8Launcher(tmp_path_factory.mktemp("l8-sdk"))
    try:
        yield launcher(app_id="sdk-app")
    finally:
        launcher.close()


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The SDK's settings come from the environment; start each test from its defaults."""
    for name in _SDK_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DAPR_HEALTH_TIMEOUT", "5")
    return monkeypatch


def _point_sdk_at(env: pytest.MonkeyPatch, sidecar: L8Process) -> None:
    env.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    env.setenv("DAPR_RUNTIME_HOST", LOOPBACK)


def test_readiness_probe_finds_l8_by_port(sidecar: L8Process, sdk_env: pytest.MonkeyPatch) -> None:
    _point_sdk_at(sdk_env, sidecar)
    started = time.monotonic()
    DaprHealth.wait_for_sidecar()
    assert time.monotonic() - started < 1  # the first probe succeeded


def test_readiness_probe_finds_l8_by_endpoint(sidecar: L8Process, sdk_env: pytest.MonkeyPatch) -> None:
    sdk_env.setenv("DAPR_HTTP_PORT", str(free_port()))  # the endpoint wins over the port
    sdk_env.setenv("DAPR_HTTP_ENDPOINT", sidecar.url)
    DaprHealth.wait_for_sidecar()
    asyncio.run(AsyncDaprHealth.wait_for_sidecar())


def test_readiness_probe_fails_without_a_sidecar(sdk_env: pytest.MonkeyPatch) -> None:
    sdk_env.setenv("DAPR_HTTP_PORT", str(free_port()))
    sdk_env.setenv("DAPR_HEALTH_TIMEOUT", "1")
    with pytest.raises(TimeoutError):
        DaprHealth.wait_for_sidecar()


def test_dapr_client_starts_against_l8(sidecar: L8Process, sdk_env: pytest.MonkeyPatch) -> None:
    _point_sdk_at(sdk_env, sidecar)
    sdk_env.setenv("DAPR_GRPC_PORT", str(free_port()))  # the channel is lazy: nothing dials it here
    with DaprClient() as client:
        assert client.invocation_client is not None  # invoke_method would go to l8 over HTTP


async def test_state_through_the_sdk_http_client(sidecar: L8Process, sdk_env: pytest.MonkeyPatch) -> None:
    _point_sdk_at(sdk_env, sidecar)
    client = DaprHttpClient(DefaultJSONSerializer(), timeout=10)
    api = f"{sidecar.url}/v1.0"
    items = orjson.dumps([{"key": "sdk-key", "value": {"x": 1}}])
    body, response = await client.send_bytes("POST", f"{api}/state/statestore", items, headers={})
    assert (response.status, body) == (204, b"")

    body, response = await client.send_bytes("GET", f"{api}/state/statestore/sdk-key", None, headers={})
    assert (response.status, orjson.loads(body)) == (200, {"x": 1})
    etag = response.headers["ETag"]

    bulk = orjson.dumps({"keys": ["sdk-key", "absent"]})
    body, _ = await client.send_bytes("POST", f"{api}/state/statestore/bulk", bulk, headers={})
    assert orjson.loads(body) == [{"key": "sdk-key", "data": {"x": 1}, "etag": etag}, {"key": "absent"}]

    body, _ = await client.send_bytes("GET", f"{api}/metadata", None, headers={})
    metadata = orjson.loads(body)
    assert metadata["id"] == "sdk-app"
    assert [c["name"] for c in metadata["components"]] == [
        "statestore",
        "pubsub",
        "lockstore",
        "sequencer",
        "configstore",
        "filestore",
    ]

    _, response = await client.send_bytes(
        "DELETE", f"{api}/state/statestore/sdk-key", None, headers={"If-Match": etag}
    )
    assert response.status == 204


async def test_sdk_surfaces_l8_error_codes(sidecar: L8Process, sdk_env: pytest.MonkeyPatch) -> None:
    _point_sdk_at(sdk_env, sidecar)
    client = DaprHttpClient(DefaultJSONSerializer(), timeout=10)
    api = f"{sidecar.url}/v1.0"
    with pytest.raises(DaprHttpError) as missing:
        await client.send_bytes("GET", f"{api}/state/nope/k", None, headers={})
    assert missing.value.status_code == 400
    assert missing.value.error_code == "ERR_STATE_STORE_NOT_FOUND"
    assert missing.value.message == "state store nope is not found"

    stale = orjson.dumps([{"key": "sdk-etag", "value": 1, "etag": "not-the-etag"}])
    await client.send_bytes(
        "POST", f"{api}/state/statestore", orjson.dumps([{"key": "sdk-etag", "value": 0}]), headers={}
    )
    with pytest.raises(DaprHttpError) as conflict:
        await client.send_bytes("POST", f"{api}/state/statestore", stale, headers={})
    assert (conflict.value.status_code, conflict.value.error_code) == (409, "ERR_STATE_SAVE")


async def test_sdk_sends_the_api_token(l8: L8Launcher, sdk_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sidecar = l8(app_id="sdk-guarded", env={"DAPR_API_TOKEN": "t0ken"})
    _point_sdk_at(sdk_env, sidecar)
    client = DaprHttpClient(DefaultJSONSerializer(), timeout=10)
    url = f"{sidecar.url}/v1.0/metadata"
    with pytest.raises(DaprHttpError) as refused:
        await client.send_bytes("GET", url, None, headers={})
    assert refused.value.status_code == 401

    sdk_env.setenv("DAPR_API_TOKEN", "t0ken")
    DaprHealth.wait_for_sidecar()
    body, response = await client.send_bytes("GET", url, None, headers={})
    assert (response.status, orjson.loads(body)["id"]) == (200, "sdk-guarded")


async def test_invoke_method_reaches_the_app(l8: L8Launcher, sdk_env: pytest.MonkeyPatch) -> None:
    """``invoke_method`` over HTTP, as the SDK sends it by default, through l8 to a real app."""
    async with echo_app() as app_port:
        sidecar = l8(app_id="sdk-invoke", args=["--app-port", str(app_port)])
        _point_sdk_at(sdk_env, sidecar)
        sdk_env.setenv("DAPR_GRPC_PORT", str(free_port()))  # the channel is lazy: nothing dials it here
        async with AsyncDaprClient() as client:
            answer = await client.invoke_method(
                "sdk-invoke", "orders/1", data=b'{"n": 1}', content_type="application/json", http_verb="POST"
            )
    assert answer.status_code == 200
    echoed = orjson.loads(answer.data)
    assert (echoed["method"], echoed["path"], echoed["body"]) == ("POST", "/orders/1", '{"n": 1}')
