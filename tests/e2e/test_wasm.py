"""WebAssembly functions in a real ``l8 run`` with Redis state: Layotto's demo chain as curl would
drive it (function 1 invokes function 2 by id, which reads the stock from the state store), built
from source in each example language; the admin routes, and a function in an infinite loop stopped
at its deadline while the sidecar keeps serving."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.wasm import modules
from wasm.examples.builder import build

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


async def _demo_sidecar(
    l8: L8Launcher, client: httpx.AsyncClient, folder: Path, redis_address: str, language: str
) -> L8Process:
    """A sidecar serving the demo pair built from ``language``'s sources, with book1's stock (100)
    in the Redis state store ``state_demo``."""
    functions = folder / "functions"
    functions.mkdir()
    for name in ("function_1", "function_2"):
        built = await asyncio.to_thread(build, language, name)
        shutil.copyfile(built, functions / f"{name}.wasm")
    settings = {
        "wasm": {
            "functions": [
                {"name": "id_1", "path": str(functions / "function_1.wasm"), "instanceNum": 2},
                {"name": "id_2", "path": str(functions / "function_2.wasm"), "instanceNum": 2},
            ]
        }
    }
    config = folder / "settings.yaml"
    config.write_text(yaml.safe_dump(settings))
    resources = folder / "resources"
    write_component(resources, "state_demo", "state.redis", {"redisHost": redis_address})
    sidecar = await asyncio.to_thread(
        l8, app_id=f"faas-{uuid.uuid4().hex[:6]}", resources=[resources], args=["--config", str(config)]
    )
    saved = await client.post(f"{sidecar.url}/v1.0/state/state_demo", json=[{"key": "book1", "value": 100}])
    assert saved.status_code == 204
    return sidecar


@pytest.mark.parametrize("language", ["wat", "rust", "assemblyscript"])
async def test_the_layotto_demo_chain_through_a_real_sidecar_with_redis(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path, redis_server, language: str
) -> None:
    base = (await _demo_sidecar(l8, client, tmp_path, redis_server.address, language)).url
    # curl 'localhost:3500/v1.0-alpha1/wasm/id_1?name=book1'
    answers = await asyncio.gather(
        *(client.get(f"{base}/v1.0-alpha1/wasm/id_1?name=book1") for _ in range(20))
    )
    assert {(a.status_code, a.text) for a in answers} == {(200, "There are 100 inventories for book1.")}
    # curl -d 'name=book1' ...: a body rather than a query
    posted = await client.post(f"{base}/v1.0-alpha1/wasm/id_1", content=b"name=book1")
    assert (posted.status_code, posted.text) == (200, "There are 100 inventories for book1.")
    unknown = await client.get(f"{base}/v1.0-alpha1/wasm/id_1?name=book9")
    assert (unknown.status_code, unknown.text) == (200, "There are  inventories for book9.")
    stock = await client.post(f"{base}/v1.0-alpha1/wasm/id_2", content=b"book1")
    assert (stock.status_code, stock.text) == (200, "100")


async def test_admin_routes_and_a_function_in_an_infinite_loop(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path, redis_server
) -> None:
    base = (await _demo_sidecar(l8, client, tmp_path, redis_server.address, "wat")).url
    folder = tmp_path / "functions"
    shutil.copyfile(build("wat", "echo"), folder / "echo.wasm")
    (folder / "spin.wasm").write_bytes(modules.LOOP)

    # install, call, update, uninstall through the admin routes
    echo = {
        "name": "echo",
        "instance_num": 1,
        "vm_config": {"engine": "wasmtime", "path": str(folder / "echo.wasm")},
    }
    assert (await client.post(f"{base}/v1.0-alpha1/wasm/install", json=echo)).status_code == 200
    assert (await client.post(f"{base}/v1.0-alpha1/wasm/echo", content=b"ping")).content == b"ping"
    update = {"name": "echo", "instance_num": 4}
    assert (await client.post(f"{base}/v1.0-alpha1/wasm/update", json=update)).status_code == 200
    assert (await client.post(f"{base}/v1.0-alpha1/wasm/uninstall", json={"name": "echo"})).status_code == 200
    gone = await client.post(f"{base}/v1.0-alpha1/wasm/echo", content=b"ping")
    assert gone.status_code == 404
    assert gone.json()["errorCode"] == "ERR_WASM_FUNCTION_NOT_FOUND"

    # a function in an infinite loop: stopped at its deadline, the sidecar serving meanwhile
    spin = {"name": "spin", "path": str(folder / "spin.wasm"), "timeout": "1s"}
    assert (await client.post(f"{base}/v1.0-alpha1/wasm/install", json=spin)).status_code == 200
    looping = asyncio.ensure_future(client.post(f"{base}/v1.0-alpha1/wasm/spin"))
    await asyncio.sleep(0.2)
    health = await client.get(f"{base}/v1.0/healthz")
    assert health.status_code == 204
    assert not looping.done()
    trapped = await looping
    assert trapped.status_code == 500
    assert trapped.json()["errorCode"] == "ERR_WASM_FUNCTION_TRAP"
    assert "exceeded its time limit of 1.0s" in trapped.json()["message"]
    again = await client.get(f"{base}/v1.0-alpha1/wasm/id_1?name=book1")
    assert again.text == "There are 100 inventories for book1."
