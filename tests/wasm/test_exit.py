"""A process that used every kind of wasm (a function calling a service, bindings.wasm's command,
an http-wasm middleware guest) and exits without closing anything prints nothing at exit: no
"Exception ignored in ... _delete" from wasmtime objects finalised after its bindings are gone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import asyncio

    from wasm import http_wasm, wasi_command
    from wasm.engine import WasmEngine
    from wasm.examples.builder import build
    from wasm.runner import Function, Limits, Request, Spec

    class Host:
        async def get_state(self, store, key):
            return b"7"

    class Keep:  # a reference cycle reaching every wasmtime object, left for the collector
        pass

    keep = Keep()
    keep.itself = keep

    async def main():
        engine = WasmEngine()
        engine.start()
        loop = asyncio.get_running_loop()
        reader = Function(engine, engine.compile(build("wat", "function_2").read_bytes()),
                          Spec("id_2", "f", 2, {}, Limits()), Host(), loop)
        await reader.start()
        echo = Function(engine, engine.compile(build("wat", "echo").read_bytes()),
                        Spec("echo", "e", 2, {}, Limits()), None, loop)
        await echo.start()
        assert (await reader.handle(Request([], b"book1"))).body == b"7"
        assert (await echo.handle(Request([], b"hi"))).body == b"hi"
        limits = wasi_command.Limits(5, 1 << 24)
        command = wasi_command.compile_command(build("wat", "uppercase").read_bytes())
        ran = await asyncio.to_thread(wasi_command.run_command, command, b"abc", ["x"], limits)
        assert ran.stdout == b"ABC"
        assert wasi_command.run_command(command, b"main", ["x"], limits).stdout == b"MAIN"
        guest = http_wasm.HttpWasmGuest("rewrite", build("wat", "rewrite").read_bytes(), b"", limits)
        guest.warm_up()
        instance = guest.acquire()
        exchange = http_wasm.Exchange("GET", "/v1.0/state/x", "HTTP/1.1", "127.0.0.1", [], b"")
        instance.handle_request(exchange)
        keep.all = [engine, reader, echo, command, guest, instance, exchange]
        print("ran", flush=True)

    asyncio.run(main())
    """
)


def test_a_process_that_ran_wasm_exits_without_a_word_on_stderr() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ran\n", "")
