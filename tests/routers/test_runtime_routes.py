"""The routes around the building blocks: metadata, health, shutdown, the fallback for unknown
routes, path clean-up, the API token and the request id."""

from __future__ import annotations

import httpx
import pytest

from app import DAPR_API_VERSION, __version__
from app.factory import create_app
from app.settings import Settings
from tests.routers.conftest import BY_ID, JSON, Sidecar, StartSidecar, assert_error

NO_APP_ID = {
    "errorCode": "ERR_DIRECT_INVOKE",
    "message": "failed getting app id either from the URL path or the header dapr-app-id",
}
TOKEN = "s3cret-token"


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar, request: pytest.FixtureRequest) -> Sidecar:
    return await start_sidecar(BY_ID["sqlite"].component("statestore", request))


# -- metadata ----------------------------------------------------------------------------------------


async def test_metadata_describes_the_sidecar(sidecar: Sidecar) -> None:
    body = await sidecar.metadata()
    assert body["id"] == sidecar.app_id
    assert body["runtimeVersion"] == DAPR_API_VERSION
    [statestore] = body["components"]
    assert set(statestore) == {"name", "type", "version", "capabilities"}
    assert (statestore["name"], statestore["type"], statestore["version"]) == (
        "statestore",
        "state.sqlite",
        "v1",
    )
    assert sorted(statestore["capabilities"]) == ["ACTOR", "ETAG", "QUERY_API", "TRANSACTIONAL", "TTL"]
    assert body["extended"]["daprRuntimeVersion"] == DAPR_API_VERSION
    assert body["extended"]["l8Version"] == __version__
    # Dapr always reports the app channel; the port only when there is an app.
    assert body["appConnectionProperties"] == {"protocol": "http", "channelAddress": "127.0.0.1"}


async def test_metadata_lists_every_component(
    start_sidecar: StartSidecar, request: pytest.FixtureRequest
) -> None:
    sidecar = await start_sidecar(
        BY_ID["in-memory"].component("cache", request), BY_ID["redis"].component("shared", request)
    )
    components = {c["name"]: c for c in (await sidecar.metadata())["components"]}
    assert {name: c["type"] for name, c in components.items()} == {
        "cache": "state.in-memory",
        "shared": "state.redis",
    }
    assert "QUERY_API" not in components["shared"]["capabilities"]


async def test_metadata_without_components(start_sidecar: StartSidecar) -> None:
    body = await (await start_sidecar()).metadata()
    assert body.get("components", []) == []
    assert body["extended"]["daprRuntimeVersion"] == DAPR_API_VERSION


async def test_put_metadata_shows_up_in_extended(sidecar: Sidecar) -> None:
    response = await sidecar.request(
        "PUT", "/v1.0/metadata/team", content=b"l8-core", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 204
    assert response.content == b""
    response = await sidecar.request("PUT", "/v1.0/metadata/empty", content=b"")
    assert response.status_code == 204
    extended = (await sidecar.metadata())["extended"]
    assert extended["team"] == "l8-core"
    assert extended["empty"] == ""
    assert extended["daprRuntimeVersion"] == DAPR_API_VERSION


async def test_app_connection_properties_only_with_an_app_port(start_sidecar: StartSidecar) -> None:
    body = await (await start_sidecar(app_port=3000)).metadata()
    assert body["appConnectionProperties"] == {
        "port": 3000,
        "protocol": "http",
        "channelAddress": "127.0.0.1",
    }


# -- health and shutdown -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1.0/healthz", "/v1.0/healthz/outbound"])
async def test_health_is_204(sidecar: Sidecar, path: str) -> None:
    response = await sidecar.request("GET", path)
    assert response.status_code == 204
    assert response.content == b""


async def test_healthz_checks_the_app_id(sidecar: Sidecar) -> None:
    response = await sidecar.request("GET", "/v1.0/healthz", params={"appid": "other"})
    assert_error(response, 500, "ERR_HEALTH_APPID_NOT_MATCH", message="dapr app-id does not match")
    response = await sidecar.request("GET", "/v1.0/healthz", params={"appid": sidecar.app_id})
    assert response.status_code == 204


async def test_health_before_start_up_is_not_ready(tmp_path: object) -> None:
    app = create_app(Settings.load({"data_dir": str(tmp_path), "app_id": "myapp"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://l8") as client:
        assert_error(await client.get("/v1.0/healthz"), 500, "ERR_HEALTH_NOT_READY")
        assert_error(await client.get("/v1.0/healthz/outbound"), 500, "ERR_OUTBOUND_HEALTH_NOT_READY")


async def test_shutdown_is_204(sidecar: Sidecar) -> None:
    response = await sidecar.request("POST", "/v1.0/shutdown")
    assert response.status_code == 204
    assert response.content == b""
    assert sidecar.app.sidecar.shutdown.requested


# -- unknown routes and paths ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("POST", "/nope/deeper/still"),
        ("GET", "/v1.0/state/statestore"),
        ("DELETE", "/v1.0/state/statestore"),
        ("PATCH", "/v1.0/state/statestore/k"),
        ("GET", "/v1.0/metadata/team"),
        ("POST", "/v1.0/metadata"),
        ("DELETE", "/v1.0/metadata/team"),
        ("PUT", "/v1.0/shutdown"),
        ("POST", "/v1.0/healthz"),
        ("GET", "/v2.0/state/statestore/k"),
        ("PROPFIND", "/v1.0/metadata"),
    ],
)
async def test_unknown_route_or_verb_is_404_err_direct_invoke(
    sidecar: Sidecar, method: str, path: str
) -> None:
    response = await sidecar.request(method, path)
    assert_error(response, 404, "ERR_DIRECT_INVOKE")
    assert response.json() == NO_APP_ID


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1.0/metadata/", 200),
        ("GET", "//v1.0//metadata", 200),
        ("GET", "/v1.0/metadata//", 200),
        ("GET", "/v1.0/healthz/", 204),
        ("GET", "//v1.0/healthz//outbound/", 204),
        ("GET", "/v1.0/state/statestore/k/", 200),
        ("GET", "/v1.0//state/statestore//k", 200),
        ("DELETE", "/v1.0/state/statestore/gone/", 204),
    ],
)
async def test_slashes_are_cleaned_without_redirect(
    sidecar: Sidecar, method: str, path: str, status: int
) -> None:
    await sidecar.saved("statestore", "k", "v")
    response = await sidecar.request(method, f"http://l8{path}")  # "//x" alone would name a host
    assert response.status_code == status, response.text
    assert "location" not in response.headers


async def test_save_through_a_trailing_slash(sidecar: Sidecar) -> None:
    response = await sidecar.request("POST", "/v1.0/state/statestore/", json=[{"key": "k", "value": 1}])
    assert response.status_code == 204, response.text
    assert await sidecar.value("statestore", "k") == 1


# -- API token ---------------------------------------------------------------------------------------


@pytest.fixture
async def guarded(start_sidecar: StartSidecar, request: pytest.FixtureRequest) -> Sidecar:
    return await start_sidecar(BY_ID["in-memory"].component("statestore", request), api_token=TOKEN)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/plain")
    assert response.content == b"invalid api token\n"


@pytest.mark.parametrize("token", [None, "wrong", "", TOKEN.upper()])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1.0/metadata"),
        ("PUT", "/v1.0/metadata/k"),
        ("GET", "/v1.0/state/statestore/k"),
        ("POST", "/v1.0/state/statestore"),
        ("POST", "/v1.0/shutdown"),
        ("GET", "/nope"),
        ("POST", "/v1.0/healthz"),
    ],
)
async def test_a_missing_or_wrong_token_is_401(
    guarded: Sidecar, token: str | None, method: str, path: str
) -> None:
    headers = {} if token is None else {"dapr-api-token": token}
    response = await guarded.request(method, path, headers=headers, json=[{"key": "k", "value": 1}])
    assert_unauthorized(response)
    assert not guarded.app.sidecar.shutdown.requested
    response = await guarded.request("GET", "/v1.0/state/statestore/k", headers={"dapr-api-token": TOKEN})
    assert response.status_code == 204


async def test_the_right_token_is_answered_normally(guarded: Sidecar) -> None:
    guarded.headers["dapr-api-token"] = TOKEN
    assert (await guarded.metadata())["id"] == guarded.app_id
    await guarded.saved("statestore", "k", {"a": 1})
    assert await guarded.value("statestore", "k") == {"a": 1}
    response = await guarded.request("GET", "/nope")
    assert response.status_code == 404 and response.json() == NO_APP_ID


@pytest.mark.parametrize("tokens", [("wrong", TOKEN), (TOKEN, "wrong"), (TOKEN, TOKEN)])
async def test_a_token_sent_twice_is_401(guarded: Sidecar, tokens: tuple[str, str]) -> None:
    # The last one used to win, so (wrong, right) passed.
    headers = [("dapr-api-token", token) for token in tokens]
    for method, path in (("GET", "/v1.0/metadata"), ("GET", "/v1.0/state/statestore/k")):
        assert_unauthorized(await guarded.client.request(method, path, headers=headers))


@pytest.mark.parametrize("path", ["/v1.0/healthz", "/v1.0/healthz/outbound", "/v1.0/healthz/"])
async def test_health_needs_no_token(guarded: Sidecar, path: str) -> None:
    response = await guarded.request("GET", path)
    assert response.status_code == 204
    response = await guarded.request("GET", path, headers={"dapr-api-token": "wrong"})
    assert response.status_code == 204


# -- request id --------------------------------------------------------------------------------------


async def test_a_given_request_id_is_echoed(sidecar: Sidecar) -> None:
    for method, path in (
        ("GET", "/v1.0/metadata"),
        ("GET", "/v1.0/state/statestore/missing"),
        ("GET", "/nope"),
    ):
        response = await sidecar.request(method, path, headers={"x-request-id": "req-42"})
        assert response.headers["x-request-id"] == "req-42"


async def test_a_request_id_is_generated_when_absent(sidecar: Sidecar) -> None:
    first = (await sidecar.request("GET", "/v1.0/healthz")).headers["x-request-id"]
    second = (await sidecar.request("GET", "/v1.0/healthz")).headers["x-request-id"]
    assert first and second and first != second
    assert (await sidecar.request("GET", "/v1.0/state/statestore/a||b")).headers["x-request-id"]


async def test_json_content_type_on_errors_from_the_fallback(sidecar: Sidecar) -> None:
    response = await sidecar.request("GET", "/nope")
    assert response.headers["content-type"] == JSON
