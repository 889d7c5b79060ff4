"""The output bindings API through the app: Dapr's body, its json.Marshal re-encoding of ``data``,
204 against 200, ``metadata.*`` answer headers, trace metadata, and every error with its code and
message; over bindings.localstorage (files the test reads back) and bindings.http (a real server)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from structlog.testing import capture_logs

from tests.routers.conftest import Sidecar, StartSidecar, assert_error, component

BINDINGS = "/v1.0/bindings"


@pytest.fixture
async def files(start_sidecar: StartSidecar, tmp_path: Path) -> tuple[Sidecar, Path]:
    root = tmp_path / "files"
    return await start_sidecar(component("files", "bindings.localstorage", rootPath=str(root))), root


async def invoke(
    sidecar: Sidecar, body: Any, name: str = "files", method: str = "POST", **kwargs: Any
) -> Any:
    if isinstance(body, bytes):
        return await sidecar.request(method, f"{BINDINGS}/{name}", content=body, **kwargs)
    return await sidecar.request(method, f"{BINDINGS}/{name}", json=body, **kwargs)


@pytest.mark.parametrize(
    ("data", "stored"),
    [
        ({"b": 1, "a": [1.0, 2.5, "x"]}, b'{"a":[1,2.5,"x"],"b":1}'),  # keys sorted, float64 numbers
        ("<p>&</p>", b"<p>&</p>"),  # a JSON string is unquoted by the binding (HTML escapes undone)
        ("aGVsbG8=", b"hello"),  # Dapr's localstorage decodes valid base64
        ("hello", b"hello"),
    ],
)
async def test_localstorage_create(files: tuple[Sidecar, Path], data: Any, stored: bytes) -> None:
    sidecar, root = files
    response = await invoke(sidecar, {"operation": "create", "data": data, "metadata": {"fileName": "f"}})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"fileName": "f"}
    assert (root / "f").read_bytes() == stored


async def test_absent_data_is_null_and_put_works(files: tuple[Sidecar, Path]) -> None:
    sidecar, root = files
    response = await invoke(sidecar, {"operation": "create", "metadata": {"fileName": "n"}}, method="PUT")
    assert response.status_code == 200
    assert (root / "n").read_bytes() == base64.b64decode("null")


async def test_get_answers_the_bytes_and_delete_answers_204(files: tuple[Sidecar, Path]) -> None:
    sidecar, root = files
    (root / "raw.bin").write_bytes(b"\x00\x01binary")
    response = await invoke(sidecar, {"operation": "get", "metadata": {"fileName": "raw.bin"}})
    assert response.status_code == 200
    assert response.content == b"\x00\x01binary"
    (root / "empty").write_bytes(b"")
    response = await invoke(sidecar, {"operation": "get", "metadata": {"fileName": "empty"}})
    assert response.status_code == 200  # a response, even empty, is 200
    assert response.content == b""
    response = await invoke(sidecar, {"operation": "delete", "metadata": {"fileName": "raw.bin"}})
    assert response.status_code == 204
    assert response.content == b""
    assert not (root / "raw.bin").exists()


async def test_create_without_a_file_name_uses_a_uuid(files: tuple[Sidecar, Path]) -> None:
    sidecar, root = files
    response = await invoke(sidecar, {"operation": "create", "data": "hi there"})
    name = response.json()["fileName"]
    assert len(name) == 36
    assert (root / name).read_bytes() == b"hi there"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", None),
        (b"", "failed deserializing HTTP body: unexpected end of JSON input"),
        (
            b"[]",
            "failed deserializing HTTP body: json: cannot unmarshal array into Go value of type http.OutputBindingRequest",
        ),
        (
            b'"x"',
            "failed deserializing HTTP body: json: cannot unmarshal string into Go value of type http.OutputBindingRequest",
        ),
        (
            b'{"operation": 5}',
            "failed deserializing HTTP body: json: cannot unmarshal number into Go field OutputBindingRequest.operation of type string",
        ),
        (
            b'{"operation": "create", "metadata": []}',
            "failed deserializing HTTP body: json: cannot unmarshal array into Go field OutputBindingRequest.metadata of type map[string]string",
        ),
        (
            b'{"operation": "create", "metadata": {"a": 1}}',
            "failed deserializing HTTP body: json: cannot unmarshal number into Go field OutputBindingRequest.metadata of type string",
        ),
    ],
)
async def test_bad_bodies_are_400_malformed(
    files: tuple[Sidecar, Path], body: bytes, message: str | None
) -> None:
    sidecar, root = files
    response = await invoke(sidecar, body)
    assert_error(response, 400, "ERR_MALFORMED_REQUEST")
    if message is not None:
        assert response.json()["message"] == message
    else:
        assert response.json()["message"].startswith("failed deserializing HTTP body: ")
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        (
            "files",
            {"data": 1},
            "error invoking output binding files: operation field is missing from request",
        ),
        (
            "files",
            {"operation": ""},
            "error invoking output binding files: operation field is missing from request",
        ),
        (
            "nope",
            {"operation": "create"},
            "error invoking output binding nope: couldn't find output binding nope",
        ),
        # The operation is checked first, as daprd does.
        ("nope", {}, "error invoking output binding nope: operation field is missing from request"),
        (
            "files",
            {"operation": "exec"},
            "error invoking output binding files: binding files does not support operation exec. supported operations:create get list delete",
        ),
    ],
)
async def test_invocation_errors_are_500_with_daprs_messages(
    files: tuple[Sidecar, Path], name: str, body: Any, message: str
) -> None:
    sidecar, root = files
    response = await invoke(sidecar, body, name=name)
    assert_error(response, 500, "ERR_INVOKE_OUTPUT_BINDING")
    assert response.json()["message"] == message
    assert list(root.iterdir()) == []


async def test_a_binding_failure_is_500(files: tuple[Sidecar, Path]) -> None:
    sidecar, _root = files
    response = await invoke(sidecar, {"operation": "get", "metadata": {"fileName": "missing"}})
    assert_error(response, 500, "ERR_INVOKE_OUTPUT_BINDING")
    assert response.json()["message"].startswith("error invoking output binding files: file not found: ")


@pytest.mark.parametrize(
    "name", ["../escape", "/etc/escape", "a/../../escape", "../../../../../../tmp/escape"]
)
async def test_no_file_name_escapes_the_root(files: tuple[Sidecar, Path], name: str) -> None:
    sidecar, root = files
    response = await invoke(sidecar, {"operation": "create", "data": "x", "metadata": {"fileName": name}})
    assert response.status_code == 200
    written = root / response.json()["fileName"]
    assert written.resolve().is_relative_to(root.resolve())
    assert written.read_bytes() == b"x"
    assert not (root.parent / "escape").exists()


async def test_a_symlink_cannot_lead_out_of_the_root(files: tuple[Sidecar, Path], tmp_path: Path) -> None:
    sidecar, root = files
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    (root / "link").symlink_to(outside)
    response = await invoke(sidecar, {"operation": "get", "metadata": {"fileName": "link/secret"}})
    assert_error(response, 500, "ERR_INVOKE_OUTPUT_BINDING")  # read as <root>/<outside>/secret: missing
    response = await invoke(
        sidecar, {"operation": "create", "data": "x", "metadata": {"fileName": "link/new"}}
    )
    assert response.status_code == 200
    assert not (outside / "new").exists()
    response = await invoke(sidecar, {"operation": "get", "metadata": {"fileName": "nul\u0000name"}})
    assert_error(response, 500, "ERR_INVOKE_OUTPUT_BINDING")
    assert "NUL" in response.json()["message"]


async def test_list(files: tuple[Sidecar, Path]) -> None:
    sidecar, root = files
    response = await invoke(sidecar, {"operation": "list"})
    assert response.status_code == 200
    assert response.content == b"null"  # Go's nil slice
    for name in ("a", "d/b"):
        await invoke(sidecar, {"operation": "create", "data": "1", "metadata": {"fileName": name}})
    response = await invoke(sidecar, {"operation": "list"})
    assert sorted(response.json()) == sorted([str(root / "a"), str(root / "d" / "b")])
    response = await invoke(sidecar, {"operation": "list", "metadata": {"fileName": "d"}})
    assert response.json() == [str(root / "d" / "b")]


# -- bindings.http: answer metadata as headers, on success and on error -----------------------------


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        status = int(request.query.get("status", "200"))
        return web.Response(status=status, body=b'{"ok":true}', headers={"X-Answer": "yes"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_http_binding_answer_metadata_and_trace(
    start_sidecar: StartSidecar, http_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = http_server
    sidecar = await start_sidecar(component("web", "bindings.http", url=url + "/base"))
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = await invoke(
        sidecar,
        {
            "operation": "post",
            "data": {"x": 1},
            "metadata": {"path": "orders", "X-Custom": "c", "lower": "not a header"},
        },
        name="web",
        headers={"traceparent": parent, "baggage": "k=v"},
    )
    assert response.status_code == 200, response.text
    assert response.content == b'{"ok":true}'
    assert response.headers["metadata.statuscode"] == "200"
    assert response.headers["metadata.status"] == "200 OK"
    assert response.headers["metadata.x-answer"] == "yes"
    request = seen[-1]
    assert (request["method"], request["path"], request["body"]) == ("POST", "/base/orders", b'{"x":1}')
    assert request["headers"]["X-Custom"] == "c"
    assert "lower" not in request["headers"]
    assert request["headers"]["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    assert request["headers"]["baggage"] == "k=v"

    response = await invoke(sidecar, {"operation": "get", "metadata": {"path": "x?status=404"}}, name="web")
    assert_error(response, 500, "ERR_INVOKE_OUTPUT_BINDING")
    assert response.json()["message"] == "error invoking output binding web: received status code 404"
    assert response.headers["metadata.statuscode"] == "404"  # the metadata also beside the error


@pytest.mark.parametrize(
    ("body", "sent"),
    [
        ({"data": {"b": 1, "a": [1.0, 2.5, "x", None]}}, b'{"a":[1,2.5,"x",null],"b":1}'),
        ({"data": "hello"}, b'"hello"'),  # a string arrives with its quotes
        ({"data": "<a&b>\u2028"}, b'"\\u003ca\\u0026b\\u003e\\u2028"'),
        ({}, b"null"),
        ({"data": None}, b"null"),
        ({"data": 12345678901234567890}, b"12345678901234567000"),  # through float64
        ({"data": 1e21}, b"1e+21"),
        ({"data": 1e-7}, b"1e-7"),
        ({"data": 0.000001}, b"0.000001"),
        ({"data": 100.0}, b"100"),
        ({"data": False}, b"false"),
        ({"DATA": [], "Operation": "post"}, b"[]"),  # Go matches field names case-insensitively
    ],
)
async def test_data_reaches_the_binding_as_json_marshal_writes_it(
    start_sidecar: StartSidecar,
    http_server: tuple[str, list[dict[str, Any]]],
    body: dict[str, Any],
    sent: bytes,
) -> None:
    url, seen = http_server
    sidecar = await start_sidecar(component("web", "bindings.http", url=url))
    response = await invoke(sidecar, {"operation": "post", **body}, name="web")
    assert response.status_code == 200, response.text
    assert seen[-1]["body"] == sent


async def test_metadata_lists_bindings_with_their_directions(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    sidecar = await start_sidecar(
        component("files", "bindings.localstorage", rootPath=str(tmp_path / "f")),
        component("tick", "bindings.cron", schedule="@every 1h"),
    )
    components = {c["name"]: c for c in (await sidecar.metadata())["components"]}
    assert components["files"]["capabilities"] == ["OUTPUT_BINDING"]
    assert components["tick"]["capabilities"] == ["INPUT_BINDING"]
    assert components["tick"]["type"] == "bindings.cron"


@pytest.mark.parametrize(
    ("type_", "metadata", "field"),
    [
        ("bindings.cron", {"schedule": "not a schedule"}, "schedule"),
        ("bindings.cron", {"schedule": "61 * * * * *"}, "schedule"),
        ("bindings.cron", {}, "schedule"),
        ("bindings.localstorage", {}, "rootPath"),
        ("bindings.localstorage", {"rootPath": "/proc/x"}, "rootPath"),
        ("bindings.http", {"url": "ftp://x"}, "url"),
    ],
)
async def test_bad_component_metadata_fails_start_up_naming_the_field(
    start_sidecar: StartSidecar, type_: str, metadata: dict[str, str], field: str
) -> None:
    from app.startup import StartupError

    with pytest.raises(StartupError, match=field):
        await start_sidecar(component("b", type_, **metadata))


def test_base64_is_standard_and_strict() -> None:
    from components.bindings.localstorage import _decoded

    assert _decoded(b'"' + base64.b64encode(b"\xff\x00").decode().encode() + b'"') == b"\xff\x00"
    assert _decoded(b'"test1"') == b"test1"  # not base64 (length)
    assert _decoded(json.dumps("a b").encode()) == b"a b"


def _outbound_policy(target: str, policies: dict[str, Any], uses: dict[str, str]) -> str:
    """A Resiliency document giving ``target``'s outbound calls the named ``policies``."""
    document = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Resiliency",
        "metadata": {"name": "bindings"},
        "spec": {"policies": policies, "targets": {"components": {target: {"outbound": uses}}}},
    }
    return yaml.safe_dump(document)


async def test_the_outbound_policy_retries_a_failed_call(
    start_sidecar: StartSidecar, http_server: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = http_server
    retry = {"retries": {"thrice": {"policy": "constant", "duration": "10ms", "maxRetries": 3}}}
    policy = _outbound_policy("web", retry, {"retry": "thrice"})
    sidecar = await start_sidecar(component("web", "bindings.http", url=url), policy)
    response = await invoke(
        sidecar, {"operation": "get", "metadata": {"path": "flaky?status=503"}}, name="web"
    )
    assert_error(response, 500, "ERR_INVOKE_OUTPUT_BINDING")
    assert len(seen) == 4  # the call and three retries, each refused
    seen.clear()
    response = await invoke(sidecar, {"operation": "get", "metadata": {"path": "fine"}}, name="web")
    assert response.status_code == 200
    assert len(seen) == 1


async def test_the_outbound_timeout_bounds_a_call(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=b"late")

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        policy = _outbound_policy("slow", {"timeouts": {"short": "200ms"}}, {"timeout": "short"})
        sidecar = await start_sidecar(
            component("slow", "bindings.http", url=f"http://127.0.0.1:{port}"), policy
        )
        started = asyncio.get_running_loop().time()
        response = await invoke(sidecar, {"operation": "get"}, name="slow")
        assert asyncio.get_running_loop().time() - started < 1.5
        assert_error(response, 500, "ERR_INVOKE_OUTPUT_BINDING")
        assert "resiliency timeout" in response.json()["message"]
    finally:
        await runner.cleanup()


async def test_input_bindings_without_an_app_port_are_not_read(start_sidecar: StartSidecar) -> None:
    with capture_logs() as logs:
        sidecar = await start_sidecar(component("tick", "bindings.cron", schedule="@every 1s"))
        await asyncio.sleep(0.1)
    warned = [entry for entry in logs if entry["event"] == "input bindings are not read without --app-port"]
    assert len(warned) == 1 and warned[0]["bindings"] == ["tick"]
    components = {c["name"]: c for c in (await sidecar.metadata())["components"]}
    assert components["tick"]["capabilities"] == ["INPUT_BINDING"]
