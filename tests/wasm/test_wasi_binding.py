"""bindings.wasm beyond the conformance suite: stdin to stdout, Dapr's args, failures carrying
stderr's tail, traps, the deadline and the memory cap stopping a guest, and the url rules at init."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from components import registry
from components.bindings.base import BindingError, InvokeRequest
from components.errors import ComponentInitError, MetadataError
from wasm.examples.builder import build
from wasm.wasi_binding import WasmBinding, module_path


async def _binding(example: str, **metadata: str) -> WasmBinding:
    binding = WasmBinding()
    await binding.init({"url": f"file://{build('wat', example)}", **metadata})
    return binding


async def test_stdin_becomes_stdout() -> None:
    binding = await _binding("uppercase")
    answer = await binding.invoke(InvokeRequest(b'"hello, wasm"', {}, "execute"))
    assert answer is not None and answer.data == b'"HELLO, WASM"'
    empty = await binding.invoke(InvokeRequest(b"", {}, "execute"))
    assert empty is not None and empty.data == b""
    await binding.close()


async def test_args_follow_the_module_name_split_on_commas() -> None:
    binding = await _binding("args")
    answer = await binding.invoke(InvokeRequest(b"", {"args": "one,two words,,3"}, "execute"))
    assert answer is not None and answer.data == b"args\none\ntwo words\n\n3\n"
    bare = await binding.invoke(InvokeRequest(b"", {}, "execute"))
    assert bare is not None and bare.data == b"args\n"


async def test_a_plain_path_is_a_url_too() -> None:
    binding = WasmBinding()
    await binding.init({"url": str(build("wat", "args"))})
    answer = await binding.invoke(InvokeRequest(b"", {}, "execute"))
    assert answer is not None and answer.data == b"args\n"


async def test_a_non_zero_exit_is_an_error_with_stderr() -> None:
    binding = await _binding("fail")
    with pytest.raises(BindingError, match=r"exited with status 3; stderr: .*went wrong at the end"):
        await binding.invoke(InvokeRequest(b"x" * 3000 + b" went wrong at the end", {}, "execute"))


async def test_a_trap_is_an_error() -> None:
    binding = await _binding("memory_bomb", maxMemory="1Mi")
    with pytest.raises(BindingError, match=r"trapped: .*unreachable"):
        await binding.invoke(InvokeRequest(b"", {}, "execute"))


async def test_an_infinite_loop_is_stopped_at_the_deadline_without_blocking_the_loop() -> None:
    binding = await _binding("loop", timeout="300ms")
    upper = await _binding("uppercase")
    started = time.monotonic()
    looping = asyncio.ensure_future(binding.invoke(InvokeRequest(b"", {}, "execute")))
    # the event loop stays free while the guest spins: another binding answers meanwhile
    quick = await upper.invoke(InvokeRequest(b"abc", {}, "execute"))
    assert quick is not None and quick.data == b"ABC" and not looping.done()
    with pytest.raises(BindingError, match=r"did not finish within 0\.3s"):
        await looping
    assert 0.25 < time.monotonic() - started < 3
    # the binding is unharmed: the next call runs again (and is stopped again)
    with pytest.raises(BindingError, match="did not finish"):
        await binding.invoke(InvokeRequest(b"", {}, "execute"))


async def test_memory_within_the_cap_is_granted() -> None:
    binding = await _binding("memory_bomb", maxMemory="512Mi")
    answer = await binding.invoke(InvokeRequest(b"", {}, "execute"))
    assert answer is not None and answer.data == b""


async def test_only_execute_is_served() -> None:
    binding = await _binding("uppercase")
    with pytest.raises(BindingError, match="unsupported operation create"):
        await binding.invoke(InvokeRequest(b"", {}, "create"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/x.wasm", "does not fetch wasm modules over the network"),
        ("https://example.com/x.wasm", "does not fetch wasm modules over the network"),
        ("oci://example.com/x", "unsupported scheme 'oci'"),
        ("file:///no/such/module.wasm", "No such file"),
    ],
)
async def test_bad_urls_are_refused_at_init_naming_url(url: str, message: str) -> None:
    with pytest.raises(ComponentInitError, match=message) as failure:
        await WasmBinding().init({"url": url})
    assert failure.value.field == "url"


async def test_a_module_that_is_not_a_command_is_refused(tmp_path: Path) -> None:
    import wasmtime

    library = tmp_path / "library.wasm"
    library.write_bytes(
        wasmtime.wat2wasm('(module (func (export "add") (param i32) (result i32) local.get 0))')
    )
    with pytest.raises(ComponentInitError, match="no _start") as failure:
        await WasmBinding().init({"url": f"file://{library}"})
    assert failure.value.field == "url"
    foreign = tmp_path / "foreign.wasm"
    foreign.write_bytes(wasmtime.wat2wasm('(module (import "env" "f" (func)) (func (export "_start")))'))
    with pytest.raises(ComponentInitError, match="imports from env"):
        await WasmBinding().init({"url": str(foreign)})
    garbage = tmp_path / "garbage.wasm"
    garbage.write_bytes(b"\0asm garbage")
    with pytest.raises(ComponentInitError, match="not a valid WebAssembly module"):
        await WasmBinding().init({"url": str(garbage)})


async def test_metadata_without_url_names_it() -> None:
    with pytest.raises(MetadataError) as failure:
        await WasmBinding().init({})
    assert failure.value.field == "url"


def test_module_paths() -> None:
    assert module_path("file://relative.wasm") == "relative.wasm"
    assert module_path("file:///abs/m.wasm") == "/abs/m.wasm"
    assert module_path("/plain/m.wasm") == "/plain/m.wasm"
    assert module_path("m.wasm") == "m.wasm"


def test_the_registry_names_the_type() -> None:
    assert registry.BINDINGS.load("bindings.wasm") is WasmBinding
