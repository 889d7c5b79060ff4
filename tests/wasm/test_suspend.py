"""Functions that only read run on the event loop in a greenlet, suspended by their host calls
(wasm/suspend.py), one at a time per thread: many calls at once (the others take a thread), mixed
with inline calls, traps, memory faults, deadlines and cancellations, over
real wasmtime instances. Why one at a time is checked against wasmtime itself in a subprocess."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.wasm import modules
from tests.wasm.test_runner import Host
from wasm import runner, suspend
from wasm.engine import WasmEngine
from wasm.examples.builder import build
from wasm.runner import Function, FunctionTrap, Limits, Request, Spec

GET_STATE = '(import "env" "proxy_get_state" (func $get_state (param i32 i32 i32 i32 i32 i32) (result i32)))'
# The body is the key: read it at 0/4, read state "s" (at 300) into 8/12, answer the value.
READ = """
  (i32.store8 (i32.const 300) (i32.const 115))
  (drop (call $get_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
  (drop (call $get_state (i32.const 300) (i32.const 1) (i32.load (i32.const 0)) (i32.load (i32.const 4))
                         (i32.const 8) (i32.const 12)))
"""
ANSWER = """
  (drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.load (i32.const 8)) (i32.load (i32.const 12))))
  (i32.const 0)
"""


def reader(id_: str, tail: str = "") -> bytes:
    """A function answering state ``s``'s value under the key its body names, after ``tail``."""
    return modules.module(id_, READ + tail + ANSWER, imports=modules.IMPORTS + GET_STATE)


class SlowHost(Host):
    """State reads that take a random few milliseconds (or a set delay per key): the value is the
    key in capitals."""

    def __init__(self) -> None:
        super().__init__()
        self.delays: dict[str, float] = {}

    async def get_state(self, store: str, key: str) -> bytes | None:
        await asyncio.sleep(self.delays.get(key, random.uniform(0, 0.002)))
        return key.upper().encode()


@pytest.fixture
def host() -> SlowHost:
    return SlowHost()


@pytest.fixture
async def make(host: SlowHost) -> AsyncIterator[Callable[..., Awaitable[Function]]]:
    engine = WasmEngine(workers=8)
    engine.start()

    async def make(code: bytes, instances: int = 1, limits: Limits | None = None) -> Function:
        spec = Spec("test", "test.wasm", instances, {}, limits or Limits())
        function = Function(engine, engine.compile(code), spec, host, asyncio.get_running_loop())
        host.functions[await function.start()] = function
        return function

    yield make
    engine.close()


def slot_is_free() -> bool:
    return not suspend.slot(asyncio.get_running_loop()).busy


async def test_hundreds_of_calls_at_once_among_inline_ones_all_answer(make) -> None:
    read = await make(reader("read"), instances=64)
    echo = await make(build("wat", "echo").read_bytes(), instances=8)
    assert read.inline and read.suspends

    async def one(i: int) -> None:
        if i % 3:
            assert (await read.handle(Request([], f"k{i}".encode()))).body == f"K{i}".encode()
        else:
            assert (await echo.handle(Request([], b"e%d" % i))).body == b"e%d" % i

    await asyncio.gather(*(one(i) for i in range(600)))
    assert slot_is_free()
    assert read.metrics.errors == 0 and read.inline and echo.inline


async def test_a_call_finding_the_slot_taken_takes_a_thread(make, host: SlowHost) -> None:
    read = await make(reader("read"), instances=4)
    host.delays = {"slow": 0.2}
    holder = asyncio.ensure_future(read.handle(Request([], b"slow")))
    await asyncio.sleep(0.01)
    assert suspend.slot(asyncio.get_running_loop()).busy
    assert (await read.handle(Request([], b"other"))).body == b"OTHER"  # on a thread, meanwhile
    assert not holder.done()
    assert (await holder).body == b"SLOW"
    assert slot_is_free()


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        ("unreachable", "unreachable"),
        ("(drop (i32.load (i32.const 0x7ffffff0)))", "memory fault"),
        (
            "(drop (memory.grow (i32.const 4))) (i32.store (i32.const 0x7ffffff0) (i32.const 1))",
            "memory fault",
        ),
    ],
)
async def test_a_trap_after_a_suspension_fails_its_call_only(make, tail: str, message: str) -> None:
    good = await make(reader("good"), instances=16)
    bad = await make(reader("bad", tail), instances=16)
    echo = await make(build("wat", "echo").read_bytes(), instances=4)

    async def fails() -> None:
        with pytest.raises(FunctionTrap, match=message):
            await bad.handle(Request([], b"x"))

    async def works(i: int) -> None:
        if i % 2:
            assert (await good.handle(Request([], b"k%d" % i))).body == b"K%d" % i
        else:
            assert (await echo.handle(Request([], b"e%d" % i))).body == b"e%d" % i

    await asyncio.gather(*(fails() if i % 4 == 0 else works(i) for i in range(200)))
    assert bad.metrics.traps == 50 and good.metrics.errors == 0 and echo.metrics.errors == 0
    assert bad.inline  # a trap is not fuel: it stays on the loop
    assert slot_is_free()


async def test_a_loop_after_a_suspension_runs_out_of_fuel_and_again_on_a_thread(make) -> None:
    spin = await make(reader("spin", "(loop $forever (br $forever))"), limits=Limits(timeout=0.3))
    with pytest.raises(FunctionTrap, match=r"exceeded its time limit of 0\.3s"):
        await spin.handle(Request([], b"k"))
    assert not spin.inline  # moved to worker threads, where its deadline stopped it
    assert slot_is_free()


async def test_the_epoch_deadline_stops_a_call_in_a_greenlet(make, monkeypatch) -> None:
    monkeypatch.setattr(runner, "INLINE_FUEL", runner.UNLIMITED_FUEL)  # only the deadline stops it
    spin = await make(reader("spin", "(loop $forever (br $forever))"), limits=Limits(timeout=0.2))
    read = await make(reader("read"), instances=8)
    results = await asyncio.gather(
        spin.handle(Request([], b"k")),
        *(read.handle(Request([], b"r")) for _ in range(8)),
        return_exceptions=True,
    )
    assert isinstance(results[0], FunctionTrap) and "time limit" in str(results[0])
    assert [r.body for r in results[1:]] == [b"R"] * 8  # type: ignore[union-attr]
    assert spin.inline
    assert slot_is_free()


async def test_a_host_call_past_the_deadline_traps_and_frees_the_slot(make, host: SlowHost) -> None:
    read = await make(reader("read"), instances=8, limits=Limits(timeout=0.3))
    host.delays = {"slow": 5.0}
    with pytest.raises(FunctionTrap, match="time limit"):
        await read.handle(Request([], b"slow"))
    assert slot_is_free()
    assert (await read.handle(Request([], b"again"))).body == b"AGAIN"


async def test_a_cancelled_request_ends_its_call_and_frees_the_slot(make, host: SlowHost) -> None:
    read = await make(reader("read"), instances=16)
    host.delays = {"long": 0.2}
    waiting = [asyncio.ensure_future(read.handle(Request([], b"long"))) for _ in range(3)]
    others = [asyncio.ensure_future(read.handle(Request([], b"k%d" % i))) for i in range(10)]
    await asyncio.sleep(0.01)
    for task in waiting:
        task.cancel()
    for task in waiting:
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [(await t).body for t in others] == [b"K%d" % i for i in range(10)]
    assert slot_is_free()
    assert (await read.handle(Request([], b"after"))).body == b"AFTER"


def test_wasmtime_aborts_when_two_suspended_calls_resume_out_of_order() -> None:
    """Why wasm/suspend.py lets one call at a time hold the slot: if this starts passing, wasmtime
    no longer keeps its activations in the stack greenlet switches."""
    script = textwrap.dedent(
        """
        import greenlet, wasmtime
        engine = wasmtime.Engine()
        module = wasmtime.Module(engine, wasmtime.wat2wasm(
            '(module (import "env" "h" (func $h (result i32))) (func (export "f") (result i32) (call $h)))'))
        main = greenlet.getcurrent()
        def call():
            store = wasmtime.Store(engine)
            linker = wasmtime.Linker(engine)
            kind = wasmtime.FuncType([], [wasmtime.ValType.i32()])
            linker.define_func("env", "h", kind, lambda: main.switch())
            f = linker.instantiate(store, module).exports(store)["f"]
            return greenlet.greenlet(lambda: f(store))
        first, second = call(), call()
        first.switch(); second.switch()
        first.switch(1); second.switch(2)
        print("survived")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "survived" not in done.stdout
    assert "core::ptr::eq(head, self)" in done.stderr


async def test_the_switch_interval_is_lowered_only_once_a_call_runs_on_a_thread(host: SlowHost) -> None:
    default = sys.getswitchinterval()
    engine = WasmEngine(workers=2)
    engine.start()
    loop = asyncio.get_running_loop()
    try:
        reads = Function(engine, engine.compile(reader("id_2")), Spec("id_2", "r"), host, loop)
        await reads.start()
        assert (await reads.handle(Request([], b"k"))).body == b"K"
        assert sys.getswitchinterval() == default  # on the loop: no thread waits for the GIL
        invoker = Function(
            engine, engine.compile(build("wat", "function_1").read_bytes()), Spec("c", "c"), host, loop
        )
        host.functions["id_2"] = reads
        await invoker.start()
        await invoker.handle(Request([], b"name=book1"))
        assert sys.getswitchinterval() < default
    finally:
        engine.close()
    assert sys.getswitchinterval() == default
