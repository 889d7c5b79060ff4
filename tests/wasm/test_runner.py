"""The engine, the ABI and the runner over real wasmtime instances: memory access, header maps,
host services, the pool, and the limits (deadline, memory cap), with modules built from source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from tests.wasm import modules
from wasm.abi import WasmResult, decode_pairs
from wasm.engine import ModuleError, WasmEngine
from wasm.examples.builder import build
from wasm.runner import Function, FunctionTrap, Limits, PoolExhausted, Request, Spec


class Host:
    """A host with a state store in a dict; invocations go to the functions registered here."""

    def __init__(self) -> None:
        self.state: dict[tuple[str, str], bytes] = {("state_demo", "book1"): b"100"}
        self.functions: dict[str, Function] = {}
        self.delay = 0.0
        self.published: list[tuple[str, str, bytes]] = []

    async def get_state(self, store: str, key: str) -> bytes | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if store == "broken":
            raise RuntimeError("the store is down")
        return self.state.get((store, key))

    async def save_state(self, store: str, key: str, value: bytes) -> None:
        self.state[(store, key)] = value

    async def invoke_service(self, target: str, method: str, param: bytes) -> bytes:
        return (await self.functions[target].handle(Request([], param))).body

    async def publish_event(self, pubsub: str, topic: str, data: bytes) -> None:
        self.published.append((pubsub, topic, data))

    async def get_secret(self, store: str, name: str) -> dict[str, str] | None:
        return {name: "s3cret"}

    async def next_id(self, store: str, key: str) -> int:
        return 42


@pytest.fixture
async def engine() -> AsyncIterator[WasmEngine]:
    engine = WasmEngine(workers=8)
    engine.start()
    yield engine
    engine.close()


@pytest.fixture
def host() -> Host:
    return Host()


Make = Callable[..., "asyncio.Future[Function]"]


@pytest.fixture
def make(engine: WasmEngine, host: Host) -> Callable[..., object]:
    async def make(code: bytes, instances: int = 1, limits: Limits | None = None) -> Function:
        spec = Spec("test", "test.wasm", instances, {}, limits or Limits())
        function = Function(engine, engine.compile(code), spec, host, asyncio.get_running_loop())
        host.functions[await function.start()] = function
        return function

    return make


async def test_the_demo_pair_answers_through_state_and_invocation(make, host: Host) -> None:
    await make(build("wat", "function_2").read_bytes())
    client = await make(build("wat", "function_1").read_bytes())
    assert client.id == "id_1"
    answer = await client.handle(Request([], b"name=book1"))
    assert (answer.status, answer.body) == (200, b"There are 100 inventories for book1.")
    answer = await client.handle(Request([], b"x=1&name=book9"))
    assert answer.body == b"There are  inventories for book9."


async def test_echo_answers_its_body_many_times_without_leaking(make) -> None:
    echo = await make(build("wat", "echo").read_bytes())
    for size in (0, 1, 70_000, 10):
        body = bytes(i % 251 for i in range(size))
        assert (await echo.handle(Request([], body))).body == body


async def test_a_bad_pointer_answers_invalid_memory_access_not_a_crash(make) -> None:
    out_of_bounds = "(call $get_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 0x7ffffff0) (i32.const 4))"
    function = await make(modules.module("probe", modules.answering_status(out_of_bounds)))
    assert (await function.handle(Request([], b"abc"))).body == bytes([WasmResult.INVALID_MEMORY_ACCESS])
    reading = (
        "(call $set_buffer (i32.const 2) (i32.const 0) (i32.const 0) (i32.const 0x7ffffff0) (i32.const 100))"
    )
    function = await make(modules.module("probe2", modules.answering_status(reading)))
    assert (await function.handle(Request([], b"abc"))).body == bytes([WasmResult.INVALID_MEMORY_ACCESS])


async def test_an_unused_proxy_wasm_import_resolves_and_answers_unimplemented(make) -> None:
    imports = (
        modules.IMPORTS
        + '(import "env" "proxy_http_call" (func $http (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))'
    )
    call = "(call $http (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))"
    function = await make(modules.module("http", modules.answering_status(call), imports=imports))
    assert (await function.handle(Request([], b""))).body == bytes([WasmResult.UNIMPLEMENTED])


async def test_a_failing_service_answers_internal_failure(make) -> None:
    imports = (
        modules.IMPORTS
        + '(import "env" "proxy_get_state" (func $get_state (param i32 i32 i32 i32 i32 i32) (result i32)))'
    )
    body = "(i32.store (i32.const 300) (i32.const 0x6b6f7262)) (i32.store (i32.const 304) (i32.const 0x6e65))"  # "broken"
    call = "(call $get_state (i32.const 300) (i32.const 6) (i32.const 300) (i32.const 1) (i32.const 8) (i32.const 12))"
    function = await make(modules.module("failing", body + modules.answering_status(call), imports=imports))
    assert (await function.handle(Request([], b""))).body == bytes([WasmResult.INTERNAL_FAILURE])


async def test_header_maps_and_status_come_back(make) -> None:
    imports = (
        modules.IMPORTS
        + """
      (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_replace_header_map_value" (func $replace (param i32 i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
      (data (i32.const 400) "x-in") (data (i32.const 410) "x-out") (data (i32.const 420) ":status201")"""
    )
    body = """
      (drop (call $get (i32.const 0) (i32.const 400) (i32.const 4) (i32.const 0) (i32.const 4)))
      (drop (call $add (i32.const 2) (i32.const 410) (i32.const 5) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
      (drop (call $replace (i32.const 2) (i32.const 420) (i32.const 7) (i32.const 427) (i32.const 3)))
      (drop (call $pairs (i32.const 0) (i32.const 0) (i32.const 4)))
      (drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
      (i32.const 0)"""
    function = await make(modules.module("headers", body, imports=imports))
    answer = await function.handle(Request([("X-In", "hello")], b"", "GET", "/p?q"))
    assert answer.status == 201
    assert answer.headers == [("x-out", "hello")]
    assert decode_pairs(answer.body) == [(":method", "GET"), (":path", "/p?q"), ("X-In", "hello")]


async def test_an_infinite_loop_is_stopped_at_its_deadline_and_the_instance_replaced(make, engine) -> None:
    spin = await make(modules.LOOP, limits=Limits(timeout=0.3))
    started = time.monotonic()
    with pytest.raises(FunctionTrap, match=r"exceeded its time limit of 0\.3s"):
        await spin.handle(Request([], b""))
    assert time.monotonic() - started < 2
    echo = await make(build("wat", "echo").read_bytes())
    assert (await echo.handle(Request([], b"still here"))).body == b"still here"
    with pytest.raises(FunctionTrap):  # a fresh instance, which loops again
        await spin.handle(Request([], b""))
    assert spin.metrics.traps == 2


async def test_a_slow_host_call_is_bounded_by_the_deadline(make, host: Host) -> None:
    await make(build("wat", "function_2").read_bytes(), limits=Limits(timeout=0.3))
    host.delay = 5
    started = time.monotonic()
    with pytest.raises(FunctionTrap, match="time limit"):
        await host.functions["id_2"].handle(Request([], b"book1"))
    assert time.monotonic() - started < 2


async def test_a_memory_bomb_is_refused_its_pages(make) -> None:
    bomb = await make(modules.BOMB, limits=Limits(memory_pages=32))
    with pytest.raises(FunctionTrap, match=r"trapped: .*unreachable"):
        await bomb.handle(Request([], b""))


async def test_a_module_asking_more_memory_than_its_cap_is_refused(make) -> None:
    big = modules.module(
        "big",
        "(i32.const 0)",
        allocator=modules.ALLOCATOR.replace('(memory (export "memory") 1)', '(memory (export "memory") 100)'),
    )
    with pytest.raises(ModuleError, match="cannot be instantiated"):
        await make(big, limits=Limits(memory_pages=16))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (b"not wasm at all", "not a WebAssembly module"),
        (b"\0asm\x01\0\0\0\x99", "invalid WebAssembly module"),
        (modules.module("x", "(i32.const 0)", get_id=False), "does not export proxy_get_id"),
        (
            modules.module("x", "(i32.const 0)", imports=modules.IMPORTS + '(import "env" "nope" (func))'),
            "imports env.nope, which l8 does not provide",
        ),
        (
            modules.module(
                "x", "(i32.const 0)", imports=modules.IMPORTS + '(import "env" "proxy_log" (func))'
            ),
            "env.proxy_log with the wrong signature",
        ),
        (modules.module("", "(i32.const 0)"), "set no id"),
    ],
)
async def test_bad_modules_are_refused_with_a_clear_error(make, code: bytes, message: str) -> None:
    with pytest.raises(ModuleError, match=message):
        await make(code)


async def test_the_pool_grows_to_its_size_and_callers_wait_with_a_bound(make, host: Host) -> None:
    await make(build("wat", "function_2").read_bytes(), instances=2, limits=Limits(pool_wait=0.2))
    function = host.functions["id_2"]
    host.delay = 0.5
    calls = [function.handle(Request([], b"book1")) for _ in range(3)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(isinstance(r, PoolExhausted) for r in results) == 1
    assert [r.body for r in results if not isinstance(r, BaseException)] == [b"100", b"100"]
    await function.resize(3)
    results = await asyncio.gather(*(function.handle(Request([], b"book1")) for _ in range(3)))
    assert all(r.body == b"100" for r in results)


async def test_the_same_module_is_compiled_once(engine: WasmEngine) -> None:
    code = build("wat", "echo").read_bytes()
    assert engine.compile(code) is engine.compile(code)
    assert engine.cached == 1


async def test_a_function_calling_no_service_runs_inline_until_a_call_outgrows_its_fuel(make) -> None:
    echo = await make(build("wat", "echo").read_bytes())
    assert echo.inline
    busy = modules.module(
        "busy",
        """(local $i i32)
        (loop $count
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $count (i32.lt_u (local.get $i) (i32.const 5000000))))
        (i32.store8 (i32.const 200) (i32.const 33))
        (drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 200) (i32.const 1)))
        (i32.const 0)""",
    )
    function = await make(busy)
    assert function.inline
    assert (await function.handle(Request([], b""))).body == b"!"  # run again on a worker thread
    assert not function.inline
    assert (function.metrics.calls, function.metrics.errors) == (1, 0)
    assert (await function.handle(Request([], b""))).body == b"!"


async def test_a_function_that_only_reads_runs_inline_suspending_and_one_that_writes_never(make) -> None:
    reader = await make(build("wat", "function_2").read_bytes())
    assert (reader.inline, reader.suspends) == (True, True)
    assert not (await make(build("wat", "function_1").read_bytes())).inline  # it invokes a service
