"""The Dapr JS SDK (npm ``@dapr/dapr``, pinned in tests/compat/js/package.json) in HTTP mode against
a running l8: ``client.secret.get``/``getBulk`` and ``client.binding.send`` exactly as a Node.js
app calls them (the SDK's own request building, headers and answer parsing).

``make test`` installs the package (``npm ci`` in tests/compat/js); Node.js comes with the machine.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.servers import LOOPBACK

pytestmark = pytest.mark.e2e

JS = Path(__file__).parent / "js"


def sdk_calls(process: L8Process, *calls: tuple[str, list[Any]]) -> list[dict[str, Any]]:
    """Each call's outcome ``{api, ok, result | error}``, made by the SDK in a Node.js process."""
    node = shutil.which("node")
    assert node, "Node.js is needed for the JS SDK tests"
    assert (JS / "node_modules" / "@dapr" / "dapr").is_dir(), "run `make test` (npm ci in tests/compat/js)"
    plan = json.dumps([{"api": api, "args": args} for api, args in calls])
    done = subprocess.run(
        [node, "calls.mjs", LOOPBACK, str(process.port), plan],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcomes: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcomes


async def test_the_sdk_reads_secrets(l8: L8Launcher, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_bytes(orjson.dumps({"db": {"user": "u", "password": "p"}, "token": "t"}))
    folder = tmp_path / "resources"
    write_component(
        folder, "vault", "secretstores.local.file", {"secretsFile": str(secrets), "multiValued": "true"}
    )
    process = await asyncio.to_thread(l8, resources=[folder])
    single, bulk, missing, unknown = await asyncio.to_thread(
        sdk_calls,
        process,
        ("secret.get", ["vault", "db"]),
        ("secret.getBulk", ["vault"]),
        ("secret.get", ["vault", "absent"]),
        ("secret.get", ["nope", "db"]),
    )
    assert single == {"api": "secret.get", "ok": True, "result": {"user": "u", "password": "p"}}
    assert bulk["ok"] and bulk["result"] == {"db": {"user": "u", "password": "p"}, "token": {"token": "t"}}
    assert not missing["ok"] and "ERR_SECRET_GET" in missing["error"]
    assert not unknown["ok"] and "ERR_SECRET_STORE_NOT_FOUND" in unknown["error"]


async def test_the_sdk_invokes_an_output_binding(l8: L8Launcher, tmp_path: Path) -> None:
    root = tmp_path / "files"
    folder = tmp_path / "resources"
    write_component(folder, "files", "bindings.localstorage", {"rootPath": str(root)})
    process = await asyncio.to_thread(l8, resources=[folder])
    created, read, deleted, unsupported, unknown = await asyncio.to_thread(
        sdk_calls,
        process,
        ("binding.send", ["files", "create", {"orderId": 7}, {"fileName": "orders/7.json"}]),
        ("binding.send", ["files", "get", None, {"fileName": "orders/7.json"}]),
        ("binding.send", ["files", "delete", None, {"fileName": "orders/7.json"}]),
        ("binding.send", ["files", "exec", None, {}]),
        ("binding.send", ["nope", "create", "x", {}]),
    )
    assert created == {"api": "binding.send", "ok": True, "result": {"fileName": "orders/7.json"}}
    assert read == {"api": "binding.send", "ok": True, "result": {"orderId": 7}}
    assert deleted["ok"]
    assert not (root / "orders" / "7.json").exists()
    assert not unsupported["ok"] and "ERR_INVOKE_OUTPUT_BINDING" in unsupported["error"]
    assert not unknown["ok"] and "couldn't find output binding nope" in unknown["error"]
