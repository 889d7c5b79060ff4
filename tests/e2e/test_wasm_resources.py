"""WasmFunction resources through a real ``l8 run --resources-path``: Layotto's demo pair declared
as resources (paths relative to the document's folder) serves the chain, appears in the metadata,
and is reloaded when its .wasm changes; a document out of scope is not loaded; a bad document or a
name declared twice fails start-up with one line naming the file and field."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.e2e.process import L8Launcher, run_l8, write_component
from tests.wasm import modules
from wasm.examples.builder import build

pytestmark = pytest.mark.e2e

FUNCTIONS = """\
apiVersion: l8.dev/v1alpha1
kind: WasmFunction
metadata: {name: id_1}
spec: {url: file://modules/function_1.wasm, instanceNum: 2}
---
apiVersion: l8.dev/v1alpha1
kind: WasmFunction
metadata: {name: id_2}
spec: {url: modules/function_2.wasm, timeout: 2s, memoryPages: 64}
---
apiVersion: l8.dev/v1alpha1
kind: WasmFunction
metadata: {name: echo}
spec: {url: modules/echo.wasm}
scopes: [another-app]
"""


def _resources(tmp_path: Path) -> Path:
    folder = tmp_path / "resources"
    (folder / "modules").mkdir(parents=True)
    for name in ("function_1", "function_2", "echo"):
        (folder / "modules" / f"{name}.wasm").write_bytes(build("wat", name).read_bytes())
    write_component(folder, "state_demo", "state.in-memory", {})
    (folder / "functions.yaml").write_text(FUNCTIONS)
    return folder


async def test_functions_declared_as_resources_serve_and_reload(l8: L8Launcher, tmp_path: Path) -> None:
    folder = _resources(tmp_path)
    sidecar = await asyncio.to_thread(l8, app_id=f"fn-{uuid.uuid4().hex[:6]}", resources=[folder])
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
        saved = await client.post("/v1.0/state/state_demo", json=[{"key": "book1", "value": 100}])
        assert saved.status_code == 204
        answer = await client.get("/v1.0-alpha1/wasm/id_1?name=book1")
        assert (answer.status_code, answer.text) == (200, "There are 100 inventories for book1.")

        metadata = (await client.get("/v1.0/metadata")).json()
        listed = {f["id"]: f for f in metadata["wasmFunctions"]}
        assert sorted(listed) == ["id_1", "id_2"]  # echo is scoped to another app
        assert listed["id_1"]["instanceNum"] == 2
        assert listed["id_2"]["path"] == str(folder / "modules" / "function_2.wasm")
        assert (await client.post("/v1.0-alpha1/wasm/echo", content=b"x")).status_code == 404

        # hot reload: function 2 replaced on disk by a module answering "v2"
        answer_v2 = (
            "(drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 300) (i32.const 2)))"
            "(i32.const 0)"
        )
        v2 = modules.module("id_2", answer_v2, imports=modules.IMPORTS + '(data (i32.const 300) "v2")')
        await asyncio.to_thread((folder / "modules" / "function_2.wasm").write_bytes, v2)
        for _ in range(100):
            reloaded = await client.post("/v1.0-alpha1/wasm/id_2", content=b"book1")
            if reloaded.text == "v2":
                break
            await asyncio.sleep(0.05)
        assert (reloaded.status_code, reloaded.text) == (200, "v2")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda text: text.replace("instanceNum: 2", "instanceNum: -1"),
            "function 'id_1': field 'spec.instanceNum': must be at least 1",
        ),
        (
            lambda text: text.replace("modules/function_2.wasm", "modules/missing.wasm"),
            "function 'id_2': field 'spec.url': wasm function id_2: cannot read",
        ),
        (
            lambda text: text.replace("name: echo", "name: id_1").replace("scopes: [another-app]", ""),
            "function 'id_1': field 'metadata.name': duplicate function name",
        ),
    ],
)
def test_a_bad_function_document_fails_start_up_naming_file_and_field(
    tmp_path: Path, change: Callable[[str], str], expected: str
) -> None:
    folder = _resources(tmp_path)
    (folder / "functions.yaml").write_text(change(FUNCTIONS))
    done = run_l8(
        "run", "--app-id", "bad-fn", "--data-dir", str(tmp_path / "data"), "--resources-path", str(folder)
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"{folder / 'functions.yaml'}: {expected}" in output, output


def test_a_name_in_the_settings_file_and_a_resource_is_refused(tmp_path: Path) -> None:
    folder = _resources(tmp_path)
    settings = tmp_path / "settings.yaml"
    path = str(folder / "modules" / "function_1.wasm")
    settings.write_text(yaml.safe_dump({"wasm": {"functions": [{"name": "id_1", "path": path}]}}))
    done = run_l8(
        "run", "--app-id", "dup-fn", "--data-dir", str(tmp_path / "data"),
        "--resources-path", str(folder), "--config", str(settings),
    )  # fmt: skip
    assert done.returncode != 0
    assert "also declared in the settings file (wasm.functions)" in done.stdout + done.stderr
