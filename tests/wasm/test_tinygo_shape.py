"""Modules shaped like Layotto's TinyGo functions run unchanged (tests/wasm/tinygo_shape.wat: the
imports and exports of its demo pair, built by TinyGo with Layotto's proxy-wasm-go-sdk, and the
behaviour of TinyGo's runtime): every import resolves, the callbacks run in Layotto's order (read
back from the module's proxy_log lines), memory goes to the host through proxy_on_memory_allocate,
and the function answers. And every import a proxy-wasm 0.2.x module may declare resolves, the
ones l8 does not implement answering Unimplemented (12)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import wasmtime

from wasm.abi import WasmResult
from wasm.engine import WasmEngine
from wasm.runner import Function, Request, Spec

SHAPE = Path(__file__).resolve().parent / "tinygo_shape.wat"

# What the demo pair imports: the SDK's hostcalls they use (env) and TinyGo's WASI runtime calls.
TINYGO_IMPORTS = {
    ("env", "proxy_log"),
    ("env", "proxy_get_buffer_bytes"),
    ("env", "proxy_set_buffer_bytes"),
    ("env", "proxy_set_effective_context"),
    ("env", "proxy_get_state"),
    ("env", "proxy_invoke_service"),
    ("wasi_snapshot_preview1", "fd_write"),
    ("wasi_snapshot_preview1", "args_get"),
    ("wasi_snapshot_preview1", "args_sizes_get"),
    ("wasi_snapshot_preview1", "proc_exit"),
}
# proxywasm/internal/abi_callback_*.go of the Go SDK, its ABI marker, TinyGo's and Layotto's.
TINYGO_EXPORTS = {
    "memory",
    "_start",
    "malloc",
    "proxy_abi_version_0_2_0",
    "proxy_get_id",
    "proxy_on_memory_allocate",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_log",
    "proxy_on_done",
    "proxy_on_delete",
    "proxy_on_request_headers",
    "proxy_on_request_metadata",
    "proxy_on_request_body",
    "proxy_on_request_trailers",
    "proxy_on_response_headers",
    "proxy_on_response_metadata",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_http_call_response",
    "proxy_on_new_connection",
    "proxy_on_downstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_data",
    "proxy_on_upstream_connection_close",
    "proxy_on_queue_ready",
    "proxy_on_tick",
}

I32, I64 = "i32", "i64"
# Every host function of proxy-wasm 0.2.x (and the 0.1.0 ones SDKs still declare): the spec's list,
# proxy-wasm-go-sdk's abi_hostcalls.go and proxy-wasm-rust-sdk's hostcalls.rs; (params, results).
PROXY_WASM_IMPORTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "proxy_log": ((I32,) * 3, (I32,)),
    "proxy_get_log_level": ((I32,), (I32,)),
    "proxy_get_current_time_nanoseconds": ((I32,), (I32,)),
    "proxy_set_tick_period_milliseconds": ((I32,), (I32,)),
    "proxy_get_configuration": ((I32,) * 2, (I32,)),
    "proxy_get_buffer_bytes": ((I32,) * 5, (I32,)),
    "proxy_get_buffer_status": ((I32,) * 3, (I32,)),
    "proxy_set_buffer_bytes": ((I32,) * 5, (I32,)),
    "proxy_get_header_map_pairs": ((I32,) * 3, (I32,)),
    "proxy_set_header_map_pairs": ((I32,) * 3, (I32,)),
    "proxy_get_header_map_value": ((I32,) * 5, (I32,)),
    "proxy_add_header_map_value": ((I32,) * 5, (I32,)),
    "proxy_replace_header_map_value": ((I32,) * 5, (I32,)),
    "proxy_remove_header_map_value": ((I32,) * 3, (I32,)),
    "proxy_get_header_map_size": ((I32,) * 2, (I32,)),
    "proxy_get_property": ((I32,) * 4, (I32,)),
    "proxy_set_property": ((I32,) * 4, (I32,)),
    "proxy_get_shared_data": ((I32,) * 5, (I32,)),
    "proxy_set_shared_data": ((I32,) * 5, (I32,)),
    "proxy_register_shared_queue": ((I32,) * 3, (I32,)),
    "proxy_resolve_shared_queue": ((I32,) * 5, (I32,)),
    "proxy_dequeue_shared_queue": ((I32,) * 3, (I32,)),
    "proxy_enqueue_shared_queue": ((I32,) * 3, (I32,)),
    "proxy_continue_request": ((), (I32,)),
    "proxy_continue_response": ((), (I32,)),
    "proxy_continue_stream": ((I32,), (I32,)),
    "proxy_close_stream": ((I32,), (I32,)),
    "proxy_clear_route_cache": ((), (I32,)),
    "proxy_send_local_response": ((I32,) * 8, (I32,)),
    "proxy_http_call": ((I32,) * 10, (I32,)),
    "proxy_grpc_call": ((I32,) * 12, (I32,)),
    "proxy_grpc_stream": ((I32,) * 9, (I32,)),
    "proxy_grpc_send": ((I32,) * 4, (I32,)),
    "proxy_grpc_cancel": ((I32,), (I32,)),
    "proxy_grpc_close": ((I32,), (I32,)),
    "proxy_get_status": ((I32,) * 3, (I32,)),
    "proxy_set_effective_context": ((I32,), (I32,)),
    "proxy_done": ((), (I32,)),
    "proxy_call_foreign_function": ((I32,) * 6, (I32,)),
    "proxy_define_metric": ((I32,) * 4, (I32,)),
    "proxy_increment_metric": ((I32, I64), (I32,)),
    "proxy_record_metric": ((I32, I64), (I32,)),
    "proxy_get_metric": ((I32,) * 2, (I32,)),
}
# What a function has no use for in l8 (no shared data or queues across instances, no outgoing
# calls but proxy_invoke_service, no metrics, no timers, no streams to close).
UNIMPLEMENTED = [
    "proxy_set_tick_period_milliseconds",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_close_stream",
    "proxy_clear_route_cache",
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_call_foreign_function",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_get_metric",
]

START_ORDER = [
    "_start argv[0]=tinygo",
    "proxy_get_id",
    "proxy_on_context_create root",
    "proxy_on_vm_start",
    "proxy_on_configure",
]
REQUEST_ORDER = [
    "proxy_on_context_create http",
    "proxy_on_request_headers",
    "proxy_on_request_body",
    "proxy_on_memory_allocate",  # the request body, handed over by proxy_get_buffer_bytes
    "proxy_on_memory_allocate",  # the stored value, by proxy_get_state
    "proxy_on_request_trailers",
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_delete",
]


class Host:
    """A state store in a dict; nothing else is used by these modules."""

    async def get_state(self, store: str, key: str) -> bytes | None:
        return {("state_demo", "book1"): b"100"}.get((store, key))

    async def save_state(self, store: str, key: str, value: bytes) -> None:
        raise AssertionError("not used")

    async def invoke_service(self, target: str, method: str, param: bytes) -> bytes:
        raise AssertionError("not used")

    async def publish_event(self, pubsub: str, topic: str, data: bytes) -> None:
        raise AssertionError("not used")

    async def get_secret(self, store: str, name: str) -> dict[str, str] | None:
        raise AssertionError("not used")

    async def next_id(self, store: str, key: str) -> int:
        raise AssertionError("not used")


@pytest.fixture
async def engine() -> AsyncIterator[WasmEngine]:
    engine = WasmEngine(workers=2)
    engine.start()
    yield engine
    engine.close()


async def _function(engine: WasmEngine, code: bytes, name: str) -> Function:
    spec = Spec(name, f"{name}.wasm", 1, {})
    function = Function(engine, engine.compile(code), spec, Host(), asyncio.get_running_loop())
    assert await function.start() == name
    return function


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [
        record.getMessage().removeprefix("[tinygo] ") for record in caplog.records if record.name == "l8.wasm"
    ]
    caplog.clear()
    return lines


def test_the_module_declares_what_a_tinygo_build_of_the_demo_declares() -> None:
    module = wasmtime.Module(wasmtime.Engine(), wasmtime.wat2wasm(SHAPE.read_text(encoding="utf-8")))
    assert {(imported.module, imported.name) for imported in module.imports} == TINYGO_IMPORTS
    assert {exported.name for exported in module.exports} == TINYGO_EXPORTS


async def test_a_tinygo_shaped_module_runs_in_layottos_order_and_answers(
    engine: WasmEngine, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="l8.wasm")
    function = await _function(engine, wasmtime.wat2wasm(SHAPE.read_text(encoding="utf-8")), "tinygo")
    assert _lines(caplog) == START_ORDER
    assert "tinygo runtime initialised" in capfd.readouterr().out  # TinyGo's println: WASI fd_write

    answer = await function.handle(Request([], b"book1"))
    assert (answer.status, answer.body) == (200, b"There are 100 inventories for book1.")
    assert _lines(caplog) == REQUEST_ORDER
    # a key the store lacks: proxy_get_state answers NotFound and hands over no memory
    answer = await function.handle(Request([], b"book2"))
    assert (answer.status, answer.body) == (200, b"There are 0 inventories for book2.")
    assert _lines(caplog) == [line for index, line in enumerate(REQUEST_ORDER) if index != 4]
    function.close()


async def test_every_proxy_wasm_import_resolves_and_the_unused_ones_answer_unimplemented(
    engine: WasmEngine,
) -> None:
    """One module declaring all of them: it instantiates, and its request calls each host function
    l8 leaves out (zeros for every argument), answering their results one byte each."""
    imports = "\n".join(
        f'(import "env" "{name}" (func ${name} (param {" ".join(params)}) (result {" ".join(results)})))'
        for name, (params, results) in PROXY_WASM_IMPORTS.items()
    )
    zero = {I32: "(i32.const 0)", I64: "(i64.const 0)"}
    calls = "\n".join(
        f"(i32.store8 (i32.const {300 + index}) (call ${name} {' '.join(zero[p] for p in PROXY_WASM_IMPORTS[name][0])}))"
        for index, name in enumerate(UNIMPLEMENTED)
    )
    text = f"""(module {imports}
      (memory (export "memory") 1)
      (data (i32.const 64) "all")
      (func (export "proxy_get_id")
        (drop (call $proxy_set_buffer_bytes (i32.const 8) (i32.const 0) (i32.const 0) (i32.const 64) (i32.const 3))))
      (func (export "malloc") (param i32) (result i32) (i32.const 1024))
      (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
        {calls}
        (drop (call $proxy_set_buffer_bytes (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 300) (i32.const {len(UNIMPLEMENTED)})))
        (i32.const 0)))"""
    function = await _function(engine, wasmtime.wat2wasm(text), "all")
    answer = await function.handle(Request([], b""))
    assert dict(zip(UNIMPLEMENTED, answer.body, strict=True)) == dict.fromkeys(
        UNIMPLEMENTED, WasmResult.UNIMPLEMENTED
    )
    function.close()
