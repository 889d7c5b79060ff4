"""middleware.http.wasm in ``appHttpPipeline`` (wasm/http_pipeline.py's AppHttpPipeline through
mesh/app_pipeline.py): the example guests around a call to the app rewrite its path or answer it
themselves (the app is not called), handlers run in order on the request and in reverse on the
answer, a failing guest answers 500 with Dapr's error body, and the app channel runs it on real
calls to a real HTTP server while a channel without one does no pipeline work."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mesh import app_pipeline
from mesh.app_channel import AppChannel, AppUnreachable
from mesh.app_pipeline import Headers, through
from wasm.examples.builder import build
from wasm.http_pipeline import AppHttpPipeline
from wasm.http_wasm import HttpWasmGuest
from wasm.wasi_command import Limits

LIMITS = Limits(0.5, 16 << 20)

ORDER_GUEST = """
(module
  (import "http_handler" "enable_features" (func $enable (param i32) (result i32)))
  (import "http_handler" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "http_handler" "add_header_value" (func $add (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x-order")
  (func (export "handle_request") (result i64)
    (drop (call $enable (i32.const 2)))
    (call $add (i32.const 0) (i32.const 0) (i32.const 7) (i32.const 64) (call $get_config (i32.const 64) (i32.const 64)))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)
    (call $add (i32.const 1) (i32.const 0) (i32.const 7) (i32.const 64) (call $get_config (i32.const 64) (i32.const 64)))))
"""


def example(tmp_path: Path, name: str, config: str) -> HttpWasmGuest:
    return HttpWasmGuest(name, build("wat", name).read_bytes(), config.encode(), LIMITS)


def inline(wat: str, config: str = "") -> HttpWasmGuest:
    import wasmtime

    return HttpWasmGuest("inline", wasmtime.wat2wasm(wat), config.encode(), LIMITS)


class App:
    """The call to the app: records what reached it, answers 200 ``app``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Headers, bytes]] = []

    async def __call__(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        self.calls.append((method, target, headers, body))
        return 200, [(b"x-app", b"1"), (b"content-length", b"3")], b"app"


async def test_the_rewrite_example_changes_the_path_the_app_sees(tmp_path: Path) -> None:
    pipeline = AppHttpPipeline([example(tmp_path, "rewrite", "/orders/=/v2/orders/")])
    app = App()
    status, headers, body = await through(
        pipeline, "POST", "/orders/7?x=1", [(b"content-type", b"text/plain")], b"hello", app
    )
    assert (status, body) == (200, b"app")
    assert dict(headers)[b"x-app"] == b"1"
    assert dict(headers)[b"content-length"] == b"3"
    [(method, target, sent, payload)] = app.calls
    assert (method, target, payload) == ("POST", "/v2/orders/7?x=1", b"hello")
    assert (b"content-type", b"text/plain") in sent
    assert not any(name == b"content-length" for name, _ in sent)  # framing is the client's


async def test_a_head_answer_keeps_the_length_the_app_announced(tmp_path: Path) -> None:
    pipeline = AppHttpPipeline([example(tmp_path, "rewrite", "/a/=/b/")])

    async def head(method: str, target: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        return 200, [(b"content-length", b"1234")], b""

    status, headers, body = await through(pipeline, "HEAD", "/a/x", [], b"", head)
    assert (status, body, dict(headers)[b"content-length"]) == (200, b"", b"1234")


async def test_the_auth_example_answers_401_and_the_app_is_not_called(tmp_path: Path) -> None:
    pipeline = AppHttpPipeline([example(tmp_path, "auth", "Bearer s3cret")])
    app = App()
    status, headers, body = await through(pipeline, "GET", "/orders", [], b"", app)
    assert (status, body) == (401, b"unauthorized by wasm\n")
    assert dict(headers)[b"www-authenticate"] == b"Bearer"
    assert app.calls == []
    status, _, body = await through(
        pipeline, "GET", "/orders", [(b"authorization", b"Bearer s3cret")], b"", app
    )
    assert (status, body, len(app.calls)) == (200, b"app", 1)


async def test_handlers_see_the_request_in_order_and_the_answer_in_reverse() -> None:
    pipeline = AppHttpPipeline([inline(ORDER_GUEST, "first"), inline(ORDER_GUEST, "second")])
    app = App()
    status, headers, _ = await through(pipeline, "GET", "/x", [], b"", app)
    assert status == 200
    [(_, _, sent, _)] = app.calls
    assert [value for name, value in sent if name == b"x-order"] == [b"first", b"second"]
    assert [value for name, value in headers if name == b"x-order"] == [b"second", b"first"]


async def test_a_failing_guest_answers_500_with_daprs_error_body() -> None:
    trap = inline(
        '(module (memory (export "memory") 1) (func (export "handle_request") (result i64) unreachable)'
        ' (func (export "handle_response") (param i32 i32)))'
    )
    app = App()
    status, headers, body = await through(AppHttpPipeline([trap]), "POST", "/x", [], b"data", app)
    assert status == 500
    assert dict(headers)[b"content-type"] == b"application/json"
    assert json.loads(body)["errorCode"] == "ERR_WASM_MIDDLEWARE"
    assert app.calls == []


async def test_an_unreachable_app_is_still_unreachable_through_the_pipeline(tmp_path: Path) -> None:
    pipeline = AppHttpPipeline([example(tmp_path, "rewrite", "/a/=/b/")])

    async def refused(method: str, target: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        raise AppUnreachable("refused")

    with pytest.raises(AppUnreachable):
        await through(pipeline, "GET", "/a/x", [], b"", refused)


@pytest.fixture
async def app_server() -> AsyncIterator[tuple[int, list[tuple[str, str, dict[str, str], bytes]]]]:
    """A real HTTP/1.1 app on a free port that answers 200 with the path it got."""
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {
                    k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen.append((method, target, headers, body))
                answer = target.encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        server.close()
        await server.wait_closed()


async def test_the_app_channel_runs_its_pipeline_on_real_calls(
    tmp_path: Path, app_server: tuple[int, list[tuple[str, str, dict[str, str], bytes]]]
) -> None:
    port, seen = app_server
    pipeline = AppHttpPipeline(
        [example(tmp_path, "auth", "Bearer s3cret"), example(tmp_path, "rewrite", "/orders/=/v2/orders/")]
    )
    channel = AppChannel("app", port, pipeline=pipeline)
    await channel.start()
    try:
        refused = await channel.request("POST", "/orders/1", body=b"{}")
        assert (refused.status, refused.body) == (401, b"unauthorized by wasm\n")
        assert seen == []
        answer = await channel.request(
            "POST", "orders/1", body=b"{}", headers={"Authorization": "Bearer s3cret"}
        )
        assert (answer.status, answer.body) == (200, b"/v2/orders/1")
        [(method, target, headers, body)] = seen
        assert (method, target, body, headers["content-length"]) == ("POST", "/v2/orders/1", b"{}", "2")
    finally:
        await channel.aclose()


async def test_a_channel_without_a_pipeline_does_no_pipeline_work(
    monkeypatch: pytest.MonkeyPatch, app_server: tuple[int, list[tuple[str, str, dict[str, str], bytes]]]
) -> None:
    port, _ = app_server

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the pipeline ran without being configured")

    monkeypatch.setattr(app_pipeline, "through", forbidden)
    monkeypatch.setattr("mesh.app_channel.through", forbidden)
    channel = AppChannel("app", port)
    await channel.start()
    try:
        assert channel.pipeline is None
        answer = await channel.request("GET", "/plain")
        assert (answer.status, answer.body) == (200, b"/plain")
    finally:
        await channel.aclose()
