"""middleware.http.wasm's host (wasm/http_wasm.py) and pipeline (wasm/http_pipeline.py) over a plain
ASGI app: the example guests rewrite a path and answer 401, and small guests written here prove the
rest of the ABI (method, URI, headers, bodies, ctx, buffered responses), failures and start-up
errors."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.errors import SettingsError
from services.errors import ApiError
from wasm.examples.builder import build
from wasm.http_pipeline import WASM_MIDDLEWARE, HttpPipeline, load_guests
from wasm.http_wasm import HttpWasmGuest
from wasm.wasi_command import Limits

LIMITS = Limits(0.5, 16 << 20)


class App:
    """The next handler: records what reached it and answers 200 ``next``."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.seen.append({**scope, "body": message.get("body", b"")})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.body", "body": b"next"})


async def call(
    pipeline: HttpPipeline,
    path: str,
    *,
    method: str = "GET",
    query: bytes = b"",
    headers: Any = (),
    body: bytes = b"",
) -> tuple[int, dict[bytes, bytes], bytes, App]:
    app = App()
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": list(headers),
        "http_version": "1.1",
        "client": ("127.0.0.1", 5555),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await pipeline(scope, receive, send, app)
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), answer, app


def guest(example: str, config: str = "") -> HttpWasmGuest:
    return HttpWasmGuest(example, build("wat", example).read_bytes(), config.encode(), LIMITS)


def inline(wat: str, config: bytes = b"", limits: Limits = LIMITS) -> HttpWasmGuest:
    import wasmtime

    return HttpWasmGuest("inline", wasmtime.wat2wasm(wat), config, limits)


async def test_the_rewrite_example_changes_the_path_the_next_handler_sees() -> None:
    pipeline = HttpPipeline([guest("rewrite", "/shop/stock/=/v1.0/state/statestore/")])
    status, headers, answer, app = await call(pipeline, "/shop/stock/apple", query=b"consistency=strong")
    assert (status, headers[b"x-app"], answer) == (200, b"1", b"next")
    seen = app.seen[0]
    assert (seen["path"], seen["raw_path"], seen["query_string"]) == (
        "/v1.0/state/statestore/apple",
        b"/v1.0/state/statestore/apple",
        b"consistency=strong",
    )
    _, _, _, untouched = await call(pipeline, "/v1.0/state/statestore/pear")
    assert untouched.seen[0]["path"] == "/v1.0/state/statestore/pear"


async def test_the_auth_example_answers_401_itself() -> None:
    pipeline = HttpPipeline([guest("auth", "Bearer s3cret")])
    status, headers, answer, app = await call(pipeline, "/v1.0/state/s/k")
    assert (status, answer, app.seen) == (401, b"unauthorized by wasm\n", [])
    assert headers[b"content-type"] == b"text/plain" and headers[b"www-authenticate"] == b"Bearer"
    assert headers[b"content-length"] == b"21"
    wrong = await call(pipeline, "/v1.0/state/s/k", headers=[(b"authorization", b"Bearer nope")])
    assert wrong[0] == 401
    twice = [(b"authorization", b"Bearer s3cret"), (b"Authorization", b"Bearer s3cret")]
    assert (await call(pipeline, "/v1.0/state/s/k", headers=twice))[0] == 401
    status, _, answer, app = await call(
        pipeline, "/v1.0/state/s/k", headers=[(b"Authorization", b"Bearer s3cret")]
    )
    assert (status, answer, len(app.seen)) == (200, b"next", 1)


MIRROR = """
(module
  (import "http_handler" "get_method" (func $get_method (param i32 i32) (result i32)))
  (import "http_handler" "get_uri" (func $get_uri (param i32 i32) (result i32)))
  (import "http_handler" "get_protocol_version" (func $proto (param i32 i32) (result i32)))
  (import "http_handler" "get_source_addr" (func $source (param i32 i32) (result i32)))
  (import "http_handler" "get_header_names" (func $names (param i32 i32 i32) (result i64)))
  (import "http_handler" "read_body" (func $read_body (param i32 i32 i32) (result i64)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (import "http_handler" "add_header_value" (func $add (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 60000) "x-seen")
  (data (i32.const 60010) " ")
  ;; writes each field to the response body, separated by spaces; then the body, 3 bytes a read
  (func $field (param $len i32)
    (call $write_body (i32.const 1) (i32.const 0) (local.get $len))
    (call $write_body (i32.const 1) (i32.const 60010) (i32.const 1)))
  (func (export "handle_request") (result i64)
    (local $eof_len i64) (local $names i64)
    (call $field (call $get_method (i32.const 0) (i32.const 1000)))
    (call $field (call $get_uri (i32.const 0) (i32.const 1000)))
    (call $field (call $proto (i32.const 0) (i32.const 1000)))
    (call $field (call $source (i32.const 0) (i32.const 1000)))
    ;; too small a buffer: nothing written, the length answered
    (drop (call $get_uri (i32.const 0) (i32.const 1)))
    (local.set $names (call $names (i32.const 0) (i32.const 0) (i32.const 1000)))
    (call $field (i32.wrap_i64 (local.get $names)))
    (call $add (i32.const 1) (i32.const 60000) (i32.const 6) (i32.const 60000) (i32.const 6))
    (block $done
      (loop $more
        (local.set $eof_len (call $read_body (i32.const 0) (i32.const 0) (i32.const 3)))
        (call $write_body (i32.const 1) (i32.const 0) (i32.wrap_i64 (local.get $eof_len)))
        (br_if $done (i64.ne (i64.shr_u (local.get $eof_len) (i64.const 32)) (i64.const 0)))
        (br $more)))
    (i64.const 0))
  (func (export "handle_response") (param i32 i32)))
"""


async def test_method_uri_protocol_source_headers_and_body_reach_the_guest() -> None:
    pipeline = HttpPipeline([inline(MIRROR)])
    status, headers, answer, app = await call(
        pipeline,
        "/a%2Fb/c",
        method="POST",
        query=b"q=1",
        headers=[(b"accept", b"*/*"), (b"X-Two", b"a"), (b"x-two", b"b")],
        body=b"hello body",
    )
    assert (status, app.seen) == (200, [])
    assert answer == b"POST /a%2Fb/c?q=1 HTTP/1.1 127.0.0.1:5555 accept\0x-two\0 hello body"
    assert headers[b"x-seen"] == b"x-seen"


BUFFERED = """
(module
  (import "http_handler" "enable_features" (func $enable (param i32) (result i32)))
  (import "http_handler" "get_status_code" (func $get_status (result i32)))
  (import "http_handler" "set_status_code" (func $set_status (param i32)))
  (import "http_handler" "get_header_values" (func $values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_header_value" (func $set (param i32 i32 i32 i32 i32)))
  (import "http_handler" "remove_header" (func $remove (param i32 i32 i32)))
  (import "http_handler" "set_method" (func $set_method (param i32 i32)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (import "http_handler" "read_body" (func $read_body (param i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x-app")
  (data (i32.const 16) "PUT")
  (data (i32.const 32) "rewritten request")
  (data (i32.const 64) "x-ctx")
  (data (i32.const 80) "seven")
  (data (i32.const 96) "[")
  (data (i32.const 97) "]")
  (func (export "handle_request") (result i64)
    (if (i32.ne (i32.and (call $enable (i32.const 2)) (i32.const 2)) (i32.const 2)) (then unreachable))
    (call $set_method (i32.const 16) (i32.const 3))
    (call $write_body (i32.const 0) (i32.const 32) (i32.const 17))
    (i64.or (i64.shl (i64.const 7) (i64.const 32)) (i64.const 1)))
  (func (export "handle_response") (param $ctx i32) (param $is_error i32)
    (local $eof_len i64)
    (if (i32.ne (local.get $ctx) (i32.const 7)) (then unreachable))
    (call $set_status (i32.add (call $get_status) (i32.const 1)))
    (call $remove (i32.const 1) (i32.const 0) (i32.const 5))
    (call $set (i32.const 1) (i32.const 64) (i32.const 5) (i32.const 80) (i32.const 5))
    ;; the answer becomes "[" + the next handler's body + "]"
    (local.set $eof_len (call $read_body (i32.const 1) (i32.const 200) (i32.const 100)))
    (call $write_body (i32.const 1) (i32.const 96) (i32.const 1))
    (call $write_body (i32.const 1) (i32.const 200) (i32.wrap_i64 (local.get $eof_len)))
    (call $write_body (i32.const 1) (i32.const 97) (i32.const 1))))
"""


async def test_a_buffered_response_is_rewritten_in_handle_response_with_the_request_ctx() -> None:
    pipeline = HttpPipeline([inline(BUFFERED)])
    status, headers, answer, app = await call(pipeline, "/x", method="POST", body=b"original")
    assert (status, answer) == (201, b"[next]")
    assert headers[b"x-ctx"] == b"seven" and b"x-app" not in headers
    seen = app.seen[0]
    assert (seen["method"], seen["body"]) == ("PUT", b"rewritten request")
    assert dict(seen["headers"])[b"content-length"] == b"17"


async def test_guests_run_in_order_and_instances_are_reused() -> None:
    rewrite = guest("rewrite", "/old/=/new/")
    auth = guest("auth", "Bearer t")
    pipeline = HttpPipeline([rewrite, auth])
    for _ in range(3):
        status, _, _, app = await call(pipeline, "/old/k", headers=[(b"authorization", b"Bearer t")])
        assert (status, app.seen[0]["path"]) == (200, "/new/k")
    assert len(rewrite._idle) == 1 and len(auth._idle) == 1


async def test_a_trap_and_an_infinite_loop_are_500s_and_the_guest_recovers() -> None:
    trap = inline(
        '(module (memory (export "memory") 1) (func (export "handle_request") (result i64) unreachable)'
        ' (func (export "handle_response") (param i32 i32)))'
    )
    with pytest.raises(ApiError) as failure:
        await call(HttpPipeline([trap]), "/x")
    assert (failure.value.status, failure.value.code) == (500, "ERR_WASM_MIDDLEWARE")
    assert "unreachable" in failure.value.message
    spin = inline(
        '(module (memory (export "memory") 1) (func (export "handle_request") (result i64) (loop $l (br $l))'
        ' (i64.const 1)) (func (export "handle_response") (param i32 i32)))',
        limits=Limits(0.2, 16 << 20),
    )
    with pytest.raises(ApiError, match=r"did not finish within 0\.2s"):
        await call(HttpPipeline([spin]), "/x")
    with pytest.raises(ApiError):  # again: a fresh instance, stopped again
        await call(HttpPipeline([spin]), "/x")


def test_modules_that_are_not_guests_are_refused() -> None:
    import wasmtime

    from wasm.http_wasm import GuestError

    with pytest.raises(GuestError, match="does not export handle_request, handle_response"):
        HttpWasmGuest("g", wasmtime.wat2wasm('(module (memory (export "memory") 1))'), b"", LIMITS)
    with pytest.raises(GuestError, match=r"imports http_handler\.nope"):
        HttpWasmGuest(
            "g",
            wasmtime.wat2wasm(
                '(module (import "http_handler" "nope" (func)) (memory (export "memory") 1)'
                ' (func (export "handle_request") (result i64) i64.const 1)'
                ' (func (export "handle_response") (param i32 i32)))'
            ),
            b"",
            LIMITS,
        )
    with pytest.raises(GuestError, match="not a valid WebAssembly module"):
        HttpWasmGuest("g", b"\0asm?", b"", LIMITS)


def _pipeline(name: str, pipeline: str = "httpPipeline") -> list[tuple[dict[str, Any], str]]:
    return [({pipeline: {"handlers": [{"name": name, "type": WASM_MIDDLEWARE}]}}, "config.yaml")]


def test_load_guests_reads_the_pipeline_and_names_bad_components() -> None:
    path = build("wat", "auth")
    middleware = {
        "auth": (WASM_MIDDLEWARE, {"url": f"file://{path}", "guestConfig": "Bearer t"}, "auth.yaml")
    }
    (loaded,) = load_guests(_pipeline("auth"), middleware)
    assert (loaded.name, loaded.config) == ("auth", b"Bearer t")
    assert load_guests(_pipeline("auth", "appHttpPipeline"), middleware) == []
    (app_side,) = load_guests(_pipeline("auth", "appHttpPipeline"), middleware, "appHttpPipeline")
    assert app_side.name == "auth"
    assert load_guests(_pipeline("auth"), middleware, "appHttpPipeline") == []
    for metadata, message in [
        ({"url": "https://example.com/auth.wasm"}, "does not fetch wasm modules over the network"),
        ({"url": "file:///no/such.wasm"}, "No such file"),
        ({}, "'url'"),
        ({"url": str(path), "timeout": "never"}, "'timeout'"),
        ({"url": str(build("wat", "uppercase"))}, "not an http-wasm guest"),
    ]:
        with pytest.raises(SettingsError, match=message) as failure:
            load_guests(_pipeline("auth"), {"auth": (WASM_MIDDLEWARE, metadata, "auth.yaml")})
        assert "auth.yaml: component 'auth'" in str(failure.value)


WASI_GUEST = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "http_handler" "enable_features" (func $enable (param i32) (result i32)))
  (import "http_handler" "log_enabled" (func $log_enabled (param i32) (result i32)))
  (import "http_handler" "log" (func $log (param i32 i32 i32)))
  (import "http_handler" "set_header_value" (func $set (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "x-start")
  (data (i32.const 16) "ran")
  (data (i32.const 32) "hello from the guest")
  (global $started (mut i32) (i32.const 0))
  ;; like TinyGo's: _start runs once per instance, here asking for buffered responses for every request
  (func (export "_start")
    (i32.store (i32.const 100) (i32.const 32))
    (i32.store (i32.const 104) (i32.const 20))
    (drop (call $fd_write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))
    (drop (call $enable (i32.const 2)))
    (global.set $started (i32.const 1)))
  (func (export "handle_request") (result i64)
    (if (i32.eqz (global.get $started)) (then unreachable))
    (if (call $log_enabled (i32.const -1)) (then unreachable))  ;; debug is off
    (if (call $log_enabled (i32.const 0))
      (then (call $log (i32.const 0) (i32.const 32) (i32.const 20))))
    (i64.const 1))
  (func (export "handle_response") (param i32 i32)
    (call $set (i32.const 1) (i32.const 0) (i32.const 7) (i32.const 16) (i32.const 3))))
"""


async def test_a_wasi_guest_starts_once_and_its_start_time_features_apply_to_every_request() -> None:
    pipeline = HttpPipeline([inline(WASI_GUEST)])
    for _ in range(2):
        status, headers, answer, _ = await call(pipeline, "/x")
        # buffer_response asked for in _start: handle_response's header reaches the caller
        assert (status, headers[b"x-start"], answer) == (200, b"ran", b"next")


async def test_a_guest_answering_itself_defaults_to_an_empty_200() -> None:
    silent = inline(
        '(module (memory (export "memory") 1) (func (export "handle_request") (result i64) i64.const 0)'
        ' (func (export "handle_response") (param i32 i32) unreachable))'
    )
    status, headers, answer, app = await call(HttpPipeline([silent]), "/x")
    assert (status, answer, headers[b"content-length"], app.seen) == (200, b"", b"0", [])
