"""The examples in every language, built from source by wasm/examples/builder.py: Layotto's demo pair
answers the same bytes in WAT, Rust and AssemblyScript through the runner, the Rust WASI command
serves bindings.wasm, and the builder caches by content, reports a compiler's errors and names the
package to install when a compiler is missing."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from components.bindings.base import InvokeRequest
from wasm.engine import WasmEngine
from wasm.examples import builder
from wasm.examples.builder import BuildFailed, ToolchainMissing, build
from wasm.runner import Function, Limits, Request, Spec
from wasm.wasi_binding import WasmBinding

LANGUAGES = ("wat", "rust", "assemblyscript")

# What a module built by Layotto's TinyGo SDK exports that fits a hand-written module too.
LAYOTTO_EXPORTS = {
    "memory",
    "proxy_get_id",
    "malloc",
    "proxy_on_memory_allocate",
    "proxy_on_context_create",
    "proxy_on_request_body",
}
FULL_SEQUENCE = {
    "proxy_abi_version_0_2_0",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_request_headers",
    "proxy_on_done",
    "proxy_on_delete",
}


class Host:
    """The state store in a dict; invocations go to the functions registered here."""

    def __init__(self) -> None:
        self.state = {("state_demo", "book1"): b"100", ("state_demo", "a=b"): b"7"}
        self.functions: dict[str, Function] = {}

    async def get_state(self, store: str, key: str) -> bytes | None:
        return self.state.get((store, key))

    async def invoke_service(self, target: str, method: str, param: bytes) -> bytes:
        if target not in self.functions:
            raise LookupError(f"no function {target}")
        return (await self.functions[target].handle(Request([], param))).body


@pytest.fixture
async def engine() -> AsyncIterator[WasmEngine]:
    engine = WasmEngine(workers=4)
    engine.start()
    yield engine
    engine.close()


async def _function(engine: WasmEngine, host: Host, language: str, name: str) -> Function:
    spec = Spec(name, f"{name}.wasm", 1, {}, Limits())
    code = await asyncio.to_thread(lambda: build(language, name).read_bytes())
    function = Function(engine, engine.compile(code), spec, host, asyncio.get_running_loop())
    host.functions[await function.start()] = function
    return function


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_demo_pair_answers_alike_in_every_language(engine: WasmEngine, language: str) -> None:
    host = Host()
    server = await _function(engine, host, language, "function_2")
    client = await _function(engine, host, language, "function_1")
    assert (client.id, server.id) == ("id_1", "id_2")
    cases = {
        b"name=book1": b"There are 100 inventories for book1.",
        b"x=1&name=book1&y=2": b"There are 100 inventories for book1.",
        b"a&&name=book1": b"There are 100 inventories for book1.",
        b"name=book9": b"There are  inventories for book9.",  # no stock recorded
        b"noname=book1": b"There are  inventories for .",  # "name=" only starts a field
        b"": b"There are  inventories for .",
        b"name=a=b&name=book1": b"There are 7 inventories for a=b.",  # the first field wins
    }
    for body, answer in cases.items():
        response = await client.handle(Request([], body))
        assert (response.status, response.body) == (200, answer), body
    assert (await server.handle(Request([], b"book1"))).body == b"100"
    # a failed invocation answers an empty stock, not an earlier request's
    del host.functions["id_2"]
    assert (await client.handle(Request([], b"name=book1"))).body == b"There are  inventories for book1."


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_demo_pair_serves_many_requests_in_steady_memory(engine: WasmEngine, language: str) -> None:
    host = Host()
    await _function(engine, host, language, "function_2")
    client = await _function(engine, host, language, "function_1")
    body = b"name=book1&padding=" + b"x" * 4000

    async def memory() -> int:
        (instance,) = client._idle
        return int(instance.context.memory.data_len(instance.store))

    for _ in range(50):
        await client.handle(Request([], body))
    settled = await memory()
    for _ in range(300):
        assert (await client.handle(Request([], body))).body == b"There are 100 inventories for book1."
    assert await memory() == settled


@pytest.mark.parametrize("language", ["rust", "assemblyscript"])
def test_the_modules_export_layotto_s_call_sequence(language: str) -> None:
    import wasmtime

    for name, imports in (
        ("function_1", {"proxy_get_buffer_bytes", "proxy_set_buffer_bytes", "proxy_invoke_service"}),
        ("function_2", {"proxy_get_buffer_bytes", "proxy_set_buffer_bytes", "proxy_get_state", "proxy_log"}),
    ):
        module = wasmtime.Module(wasmtime.Engine(), build(language, name).read_bytes())
        assert {e.name for e in module.exports} >= LAYOTTO_EXPORTS | FULL_SEQUENCE
        assert {(i.module, i.name) for i in module.imports} == {("env", n) for n in imports}


async def test_the_rust_wasi_command_serves_bindings_wasm() -> None:
    binding = WasmBinding()
    await binding.init({"url": f"file://{build('rust', 'uppercase')}"})
    answer = await binding.invoke(InvokeRequest(b'"hello, rust"', {"args": "one,two"}, "execute"))
    assert answer is not None and answer.data == b'"HELLO, RUST"one\ntwo\n'
    empty = await binding.invoke(InvokeRequest(b"", {}, "execute"))
    assert empty is not None and empty.data == b""
    await binding.close()


# -- the builder -------------------------------------------------------------------------------------


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the examples' sources and an empty build folder, so every build compiles."""
    copy = tmp_path / "examples"
    for language in ("wat", "rust"):
        shutil.copytree(builder.HERE / language, copy / language)
    monkeypatch.setattr(builder, "HERE", copy)
    monkeypatch.setattr(builder, "CACHE", tmp_path / "build")
    return copy


def test_a_build_is_kept_until_its_sources_change(sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build("rust", "function_2")
    assert first.name == "function_2.wasm" and first.is_relative_to(builder.CACHE)
    code = first.read_bytes()
    # unchanged sources: taken from the build folder, the compiler not run
    run = builder._run
    monkeypatch.setattr(builder, "_run", lambda *args, **kwargs: pytest.fail("compiled again"))
    assert build("rust", "function_2") == first
    monkeypatch.setattr(builder, "_run", run)
    # the shared ABI module is a source of every Rust example
    shared = sources / "rust" / "proxy_wasm.rs"
    shared.write_text(shared.read_text() + "\n// changed\n")
    second = build("rust", "function_2")
    assert second != first and second.read_bytes() == code
    assert not first.exists()  # the stale build is removed


def test_a_compiler_s_errors_are_reported(sources: Path) -> None:
    (sources / "rust" / "broken.rs").write_text('#[no_mangle]\npub extern "C" fn f() -> u32 { "no" }\n')
    with pytest.raises(BuildFailed, match=r"(?s)broken\.rs did not compile .*mismatched types"):
        build("rust", "broken")
    (sources / "wat" / "broken.wat").write_text('(module (func (export "f") (i32.nonsense)))')
    with pytest.raises(BuildFailed, match=r"(?s)broken\.wat: unknown operator.*nonsense"):
        build("wat", "broken")
    with pytest.raises(FileNotFoundError, match=r"no wat example 'nothing'.*echo"):
        build("wat", "nothing")
    with pytest.raises(ValueError, match="unknown example language 'go'"):
        build("go", "function_1")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "RUSTC",
            "missing/rustc",
            r"need Debian's rustc .*install Debian's packages rustc libstd-rust-dev-wasm32 lld",
        ),
        (
            "RUSTC",
            "sysroot/bin/rustc",
            r"no standard library for wasm32-unknown-unknown: install Debian's package libstd-rust-dev-wasm32",
        ),
        (
            "RUST_LINKER",
            "missing/rust-lld",
            r"rust-lld, which is missing or dangling: install Debian's package lld",
        ),
    ],
)
def test_a_missing_rust_toolchain_names_the_package(
    sources: Path, monkeypatch: pytest.MonkeyPatch, setting: str, value: str, message: str
) -> None:
    fake = sources / "sysroot" / "bin" / "rustc"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\nexit 1\n")
    monkeypatch.setattr(builder, setting, sources / value)
    with pytest.raises(ToolchainMissing, match=message):
        build("rust", "function_1")


def test_a_missing_assemblyscript_compiler_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builder, "CACHE", tmp_path / "build")
    monkeypatch.setattr(builder, "ASC", tmp_path / "node_modules" / "assemblyscript" / "bin" / "asc.js")
    with pytest.raises(ToolchainMissing, match=r"npm's package assemblyscript .*`npm ci`"):
        build("assemblyscript", "function_1")
    monkeypatch.setattr(builder, "NODE", "no-such-node")
    with pytest.raises(ToolchainMissing, match=r"Node\.js: install Debian's package nodejs"):
        build("assemblyscript", "function_1")


def test_the_command_line_builds_and_copies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert builder.main(["wat", "echo", "function_1", "--into", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "echo.wasm"), str(tmp_path / "function_1.wasm")]
    assert (tmp_path / "echo.wasm").read_bytes() == build("wat", "echo").read_bytes()
    assert builder.main(["rust", "nothing"]) == 1
    assert "no rust example 'nothing'" in capsys.readouterr().err
