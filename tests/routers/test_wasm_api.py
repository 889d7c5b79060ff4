"""The wasm routes over a started app: the Layotto demo chain through the real state service,
the admin routes with Layotto's bodies, and the errors (unknown id, trap, bad module, API token)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.echo_app import echo_app
from tests.routers.conftest import Sidecar, StartSidecar, assert_error, component
from tests.wasm import modules
from wasm.examples.builder import build

WASM = "/v1.0-alpha1/wasm"


def write(tmp_path: Path, name: str, code: bytes) -> str:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(code)
    return str(path)


@pytest.fixture
async def demo(start_sidecar: StartSidecar, tmp_path: Path) -> Sidecar:
    functions: list[dict[str, Any]] = [
        {"name": "id_1", "path": write(tmp_path, "function_1", build("wat", "function_1").read_bytes())},
        {
            "name": "id_2",
            "path": write(tmp_path, "function_2", build("wat", "function_2").read_bytes()),
            "instanceNum": 2,
        },
    ]
    sidecar = await start_sidecar(component("state_demo", "state.in-memory"), wasm={"functions": functions})
    assert (await sidecar.save("state_demo", [{"key": "book1", "value": 100}])).status_code == 204
    return sidecar


async def test_the_demo_chain_answers_with_the_stock(demo: Sidecar) -> None:
    response = await demo.request("GET", f"{WASM}/id_1?name=book1")
    assert response.status_code == 200, response.text
    assert response.text == "There are 100 inventories for book1."
    response = await demo.request("POST", f"{WASM}/id_1/any/path", content=b"name=book1")
    assert response.text == "There are 100 inventories for book1."
    response = await demo.request("POST", f"{WASM}/id_2", content=b"book1")
    assert response.text == "100"
    functions = {f["id"]: f for f in (await demo.metadata())["wasmFunctions"]}
    assert (functions["id_1"]["calls"], functions["id_1"]["instanceNum"]) == (2, 1)
    assert (functions["id_2"]["calls"], functions["id_2"]["errors"], functions["id_2"]["instanceNum"]) == (
        3,
        0,
        2,
    )


async def test_an_unknown_function_is_404(demo: Sidecar) -> None:
    assert_error(await demo.request("GET", f"{WASM}/nope"), 404, "ERR_WASM_FUNCTION_NOT_FOUND")
    by_header = await demo.request("GET", WASM, headers={"id": "nope"})
    assert_error(by_header, 404, "ERR_WASM_FUNCTION_NOT_FOUND")
    assert_error(await demo.request("GET", WASM), 400, "ERR_MALFORMED_REQUEST")


async def test_layottos_form_names_the_function_in_an_id_header(demo: Sidecar) -> None:
    # curl -H 'id: id_1' 'localhost:3500/v1.0-alpha1/wasm?name=book1'
    response = await demo.request("GET", f"{WASM}?name=book1", headers={"id": "id_1"})
    assert (response.status_code, response.text) == (200, "There are 100 inventories for book1.")


async def test_install_update_uninstall_with_layottos_bodies(demo: Sidecar, tmp_path: Path) -> None:
    path = write(tmp_path, "echo", build("wat", "echo").read_bytes())
    body = {"name": "echo", "instance_num": 1, "vm_config": {"engine": "wasmtime", "path": path}}
    assert (await demo.request("POST", f"{WASM}/install", json=body)).status_code == 200
    assert (await demo.request("POST", f"{WASM}/echo", content=b"hi")).content == b"hi"
    assert_error(await demo.request("POST", f"{WASM}/install", json=body), 409, "ERR_WASM_FUNCTION_EXISTS")
    update = {"name": "echo", "instance_num": 3}
    assert (await demo.request("POST", f"{WASM}/update", json=update)).status_code == 200
    assert demo.app.state.runtime.services.wasm.functions["echo"].instances == 3
    bad_update = {"name": "echo", "instance_num": 0}
    assert_error(await demo.request("POST", f"{WASM}/update", json=bad_update), 400, "ERR_MALFORMED_REQUEST")
    assert (await demo.request("POST", f"{WASM}/uninstall", json={"name": "echo"})).status_code == 200
    assert_error(await demo.request("POST", f"{WASM}/echo"), 404, "ERR_WASM_FUNCTION_NOT_FOUND")
    gone = await demo.request("POST", f"{WASM}/uninstall", json={"name": "echo"})
    assert_error(gone, 404, "ERR_WASM_FUNCTION_NOT_FOUND")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (b"garbage", "not a WebAssembly module"),
        (modules.module("bad", "(i32.const 0)", get_id=False), "does not export proxy_get_id"),
        (
            modules.module("bad", "(i32.const 0)", imports=modules.IMPORTS + '(import "env" "nope" (func))'),
            "imports env.nope",
        ),
        (modules.module("other", "(i32.const 0)"), "names it 'other', not 'bad'"),
    ],
)
async def test_bad_modules_are_refused_at_install(
    demo: Sidecar, tmp_path: Path, code: bytes, message: str
) -> None:
    body = {"name": "bad", "vm_config": {"path": write(tmp_path, "bad", code)}}
    response = await demo.request("POST", f"{WASM}/install", json=body)
    assert_error(response, 400, "ERR_WASM_MODULE_INVALID")
    assert message in response.json()["message"]
    assert (await demo.request("GET", f"{WASM}/id_1?name=book1")).status_code == 200  # nothing else affected


async def test_bad_install_bodies(demo: Sidecar) -> None:
    for body in (
        [],
        {"vm_config": {"path": "x"}},
        {"name": "x", "vm_config": {"engine": "wasmer", "path": "x"}},
    ):
        assert_error(await demo.request("POST", f"{WASM}/install", json=body), 400, "ERR_MALFORMED_REQUEST")
    missing = {"name": "x", "vm_config": {"path": "/no/such.wasm"}}
    assert_error(await demo.request("POST", f"{WASM}/install", json=missing), 400, "ERR_WASM_MODULE_INVALID")


async def test_a_looping_function_answers_500_and_the_sidecar_goes_on(demo: Sidecar, tmp_path: Path) -> None:
    body = {"name": "spin", "path": write(tmp_path, "spin", modules.LOOP), "timeout": "300ms"}
    assert (await demo.request("POST", f"{WASM}/install", json=body)).status_code == 200
    response = await demo.request("POST", f"{WASM}/spin")
    assert_error(response, 500, "ERR_WASM_FUNCTION_TRAP")
    assert "exceeded its time limit" in response.json()["message"]
    spin = next(f for f in (await demo.metadata())["wasmFunctions"] if f["id"] == "spin")
    assert (spin["calls"], spin["errors"], spin["traps"]) == (1, 1, 1)
    assert (await demo.request("GET", f"{WASM}/id_1?name=book1")).status_code == 200


async def test_the_api_token_guards_the_wasm_routes(start_sidecar: StartSidecar, tmp_path: Path) -> None:
    functions = [{"name": "echo", "path": write(tmp_path, "echo", build("wat", "echo").read_bytes())}]
    sidecar = await start_sidecar(api_token="t0ken", wasm={"functions": functions})
    assert (await sidecar.request("POST", f"{WASM}/echo", content=b"x")).status_code == 401
    answer = await sidecar.request("POST", f"{WASM}/echo", content=b"x", headers={"dapr-api-token": "t0ken"})
    assert answer.content == b"x"
    assert (await sidecar.request("POST", f"{WASM}/uninstall", json={"name": "echo"})).status_code == 401


async def test_a_bad_function_in_the_settings_fails_start_up(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    from app.startup import StartupError

    functions = [{"name": "echo", "path": write(tmp_path, "echo", b"not wasm")}]
    with pytest.raises(StartupError, match=r"wasm\.functions: wasm function echo: not a WebAssembly module"):
        await start_sidecar(wasm={"functions": functions})


async def test_a_changed_file_is_reloaded_under_load_without_a_failed_request(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    path = write(tmp_path, "echo", build("wat", "echo").read_bytes())
    sidecar = await start_sidecar(wasm={"functions": [{"name": "echo", "path": path, "instanceNum": 2}]})
    answer_v2 = (
        "(drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 300) (i32.const 2)))"
        "(i32.const 0)"
    )
    v2 = modules.module("echo", answer_v2, imports=modules.IMPORTS + '(data (i32.const 300) "v2")')
    seen: list[tuple[int, bytes]] = []
    stop = asyncio.Event()

    async def load() -> None:
        while not stop.is_set():
            response = await sidecar.request("POST", f"{WASM}/echo", content=b"v1")
            seen.append((response.status_code, response.content))

    workers = [asyncio.create_task(load()) for _ in range(4)]
    await asyncio.sleep(0.3)
    await asyncio.to_thread(Path(path).write_bytes, v2)
    for _ in range(100):
        if seen and seen[-1][1] == b"v2":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*workers)
    assert {status for status, _ in seen} == {200}
    assert {body for _, body in seen} == {b"v1", b"v2"}
    assert seen[-1][1] == b"v2"
    # a broken write keeps the old module
    await asyncio.to_thread(Path(path).write_bytes, b"garbage")
    await asyncio.sleep(0.5)
    assert (await sidecar.request("POST", f"{WASM}/echo", content=b"x")).content == b"v2"


async def test_l8s_extensions_save_state_and_draw_ids_through_the_real_services(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    imports = (
        modules.IMPORTS
        + """
      (import "env" "proxy_save_state" (func $save (param i32 i32 i32 i32 i32 i32) (result i32)))
      (import "env" "proxy_next_id" (func $next_id (param i32 i32 i32 i32 i32) (result i32)))
      (data (i32.const 300) "state_demo") (data (i32.const 320) "saved") (data (i32.const 330) "{\\"n\\":7}")
      (data (i32.const 340) "ids") (data (i32.const 350) "orders")"""
    )
    body = """
      (drop (call $save (i32.const 300) (i32.const 10) (i32.const 320) (i32.const 5) (i32.const 330) (i32.const 7)))
      (drop (call $next_id (i32.const 340) (i32.const 3) (i32.const 350) (i32.const 6) (i32.const 400)))
      (drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 400) (i32.const 8)))
      (i32.const 0)"""
    path = write(tmp_path, "ext", modules.module("ext", body, imports=imports))
    sidecar = await start_sidecar(
        component("state_demo", "state.in-memory"),
        component("ids", "sequencer.sqlite", connectionString=str(tmp_path / "ids.db")),
        wasm={"functions": [{"name": "ext", "path": path}]},
    )
    first = await sidecar.request("POST", f"{WASM}/ext")
    second = await sidecar.request("POST", f"{WASM}/ext")
    assert int.from_bytes(first.content, "little") == 1
    assert int.from_bytes(second.content, "little") == 2
    assert await sidecar.value("state_demo", "saved") == {"n": 7}


async def test_invoke_service_reaches_an_app_through_service_invocation(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    async with echo_app() as port:
        target = f"http://127.0.0.1:{port}"
        imports = (
            modules.IMPORTS
            + f"""
          (import "env" "proxy_invoke_service" (func $invoke (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
          (data (i32.const 300) "{target}") (data (i32.const 400) "orders/7") (data (i32.const 420) "hello")"""
        )
        body = f"""
          (drop (call $invoke (i32.const 300) (i32.const {len(target)}) (i32.const 400) (i32.const 8)
                              (i32.const 420) (i32.const 5) (i32.const 0) (i32.const 4)))
          (drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
          (i32.const 0)"""
        path = write(tmp_path, "caller", modules.module("caller", body, imports=imports))
        sidecar = await start_sidecar(wasm={"functions": [{"name": "caller", "path": path}]})
        answer = await sidecar.request("POST", f"{WASM}/caller")
        assert answer.status_code == 200, answer.text
        received = orjson.loads(answer.content)
        assert (received["method"], received["path"], received["body"]) == ("POST", "/orders/7", "hello")
