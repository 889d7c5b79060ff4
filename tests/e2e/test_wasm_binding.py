"""bindings.wasm through a real ``l8 run``: Dapr's output binding body in, the WASI command's stdout
out (commands written in WAT and in Rust), ``args`` as its argv, a guest in an infinite loop
stopped at its deadline with Dapr's error while the sidecar keeps answering, and the binding
listed in GET /v1.0/metadata."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import L8Launcher, write_component
from wasm.examples.builder import build

pytestmark = pytest.mark.e2e


async def test_execute_through_l8(l8: L8Launcher, tmp_path: Path) -> None:
    folder = tmp_path / "resources"
    write_component(folder, "shout", "bindings.wasm", {"url": f"file://{build('wat', 'uppercase')}"})
    write_component(folder, "argv", "bindings.wasm", {"url": str(build("wat", "args"))})
    # the same command in Rust (wasm/examples/rust/uppercase.rs), its args after the answer
    write_component(folder, "shout-rust", "bindings.wasm", {"url": f"file://{build('rust', 'uppercase')}"})
    write_component(
        folder, "spin", "bindings.wasm", {"url": f"file://{build('wat', 'loop')}", "timeout": "500ms"}
    )
    sidecar = await asyncio.to_thread(l8, app_id="wasm-binding", resources=[folder])
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
        shouted = await client.post("/v1.0/bindings/shout", json={"operation": "execute", "data": "hi"})
        assert (shouted.status_code, shouted.content) == (200, b'"HI"')
        argv = await client.post(
            "/v1.0/bindings/argv", json={"operation": "execute", "metadata": {"args": "a,b c"}}
        )
        assert (argv.status_code, argv.content) == (200, b"args\na\nb c\n")
        rust = await client.post(
            "/v1.0/bindings/shout-rust",
            json={"operation": "execute", "data": "hi", "metadata": {"args": "x"}},
        )
        assert (rust.status_code, rust.content) == (200, b'"HI"x\n')

        spinning = asyncio.ensure_future(client.post("/v1.0/bindings/spin", json={"operation": "execute"}))
        await asyncio.sleep(0.1)
        meanwhile = await client.get("/v1.0/healthz")
        assert meanwhile.status_code == 204 and not spinning.done()
        stopped = await spinning
        assert stopped.status_code == 500
        assert stopped.json()["errorCode"] == "ERR_INVOKE_OUTPUT_BINDING"
        assert "did not finish within 0.5s" in stopped.json()["message"]

        wrong = await client.post("/v1.0/bindings/shout", json={"operation": "create", "data": "hi"})
        assert wrong.status_code == 500 and "execute" in wrong.json()["message"], wrong.text

        metadata = (await client.get("/v1.0/metadata")).json()
        listed = {c["name"]: c for c in metadata["components"]}
        assert listed["shout"]["type"] == "bindings.wasm"
        assert "OUTPUT_BINDING" in listed["shout"]["capabilities"]
