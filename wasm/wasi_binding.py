"""bindings.wasm: an output binding that runs a WASI command module per call, as Dapr's does.

Metadata: ``url`` (required) names the module: ``file://path`` (relative to the working directory
unless it starts with ``/``, as in Dapr) or a plain path. ``http://`` and ``https://`` urls are
refused at start-up: Dapr fetches them, but this sidecar fetches no code over the network (the
machines it runs on often have none, and a module pulled at start-up is code nobody reviewed);
copy the module to disk and use ``file://``. ``strictSandbox`` is accepted when false; true is
refused, because wasmtime's Python API cannot give the guest Dapr's fake clocks and seeded random
source, and a sandbox quietly weaker than asked for is worse than none. l8 adds two limits:
``timeout`` (a Go duration, default ``30s``: a run past it is stopped) and ``maxMemory`` (a
quantity, default ``256Mi``: the guest's linear memory cap).

Operation ``execute``: the request's data is the command's stdin (as the HTTP API hands it over:
a JSON string arrives quoted, as in Dapr), request metadata ``args`` split on ``,`` follows the
module's name (its file name without ``.wasm``) in argv, and stdout is the answer. stderr goes to
the log; a non-zero exit, a trap or the deadline is an error carrying stderr's tail. The guest gets
no environment, no preopened folders and no network.

The binding lives in ``wasm/`` (the engine's floor) and is registered by name like a plug-in:
``components/`` sits below ``wasm/`` and cannot import it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import structlog

from components.bindings.base import BindingError, Feature, InvokeRequest, InvokeResponse
from components.errors import BackendError, ComponentInitError, MetadataError
from components.metadata import GoBool, decode
from wasm.module_metadata import WasmModuleMetadata
from wasm.wasi_command import CommandError, CommandFailed, Limits, compile_command, module_file, run_command

if TYPE_CHECKING:
    import wasmtime

log = structlog.get_logger(__name__)

EXECUTE = "execute"
ARGS = "args"
_FEATURES = frozenset({Feature.OUTPUT_BINDING})


class WasmMetadata(WasmModuleMetadata):
    strictSandbox: GoBool = False


def module_path(url: str) -> str:
    """The file a ``url`` names; ComponentInitError (field ``url``) for a remote or unknown scheme."""
    try:
        return module_file(url)
    except ValueError as exc:
        raise ComponentInitError(str(exc), field="url") from None


class WasmBinding:
    def __init__(self) -> None:
        self._module: wasmtime.Module | None = None
        self._name = ""
        self._limits = Limits(30.0, 256 << 20)

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(WasmMetadata, metadata)
        if settings.strictSandbox:
            raise MetadataError(
                "strictSandbox", "true is not supported: wasmtime's Python API cannot fake the guest's clocks"
            )
        path = module_path(settings.url)
        try:
            binary = await asyncio.to_thread(_read, path)
            self._module = await asyncio.to_thread(compile_command, binary)
        except OSError as exc:
            raise ComponentInitError(f"url {settings.url!r}: {exc.strerror or exc}", field="url") from None
        except CommandError as exc:
            raise ComponentInitError(f"url {settings.url!r}: {exc}", field="url") from None
        self._name = os.path.basename(path).removesuffix(".wasm")
        self._limits = settings.limits

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    def operations(self) -> Sequence[str]:
        return (EXECUTE,)

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        module = self._module
        if module is None:
            raise BackendError("wasm binding is not initialised or already closed")
        if request.operation != EXECUTE:
            raise BindingError(f"unsupported operation {request.operation}")
        argv = [self._name]
        if args := request.metadata.get(ARGS, ""):
            argv.extend(args.split(","))
        try:
            outcome = await asyncio.to_thread(run_command, module, request.data, argv, self._limits)
        except CommandFailed as exc:
            _log_stderr(self._name, exc.stderr)
            raise BindingError(str(exc)) from None
        _log_stderr(self._name, outcome.stderr)
        return InvokeResponse(outcome.stdout)

    async def close(self) -> None:
        self._module = None


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _log_stderr(name: str, stderr: bytes) -> None:
    if stderr:
        log.info("wasm command stderr", module=name, stderr=stderr.decode("utf-8", "replace"))
