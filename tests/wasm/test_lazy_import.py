"""A sidecar without wasm functions never loads wasmtime."""

from __future__ import annotations

import subprocess
import sys


def test_the_runtime_and_the_routes_do_not_import_wasmtime() -> None:
    code = (
        "import sys, app.runtime, app.factory, routers.api, services.wasm, wasm.settings, wasm.abi;"
        "print('wasmtime' in sys.modules)"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert answer.stdout.strip() == "False"
