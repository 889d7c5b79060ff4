"""WebAssembly functions (Layotto's model): the registry of installed functions by id, the HTTP
trigger's call into one, and the host side of the ABI over l8's own services, so what a function
does through ``proxy_get_state`` or ``proxy_invoke_service`` goes through the same scoping,
resiliency and rate limits as the HTTP API.

The wasm engine (and wasmtime) is loaded with the first function: a sidecar with none never
imports it. Install, uninstall and update take Layotto's admin bodies; install accepts l8's
settings form too (``{name, path, instanceNum, config, timeout, memoryPages, poolWait}``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from mesh.settings import describe
from services import errors
from services.errors import ApiError
from services.invocation import InvocationService
from services.pubsub.publisher import PubSubService
from services.secrets import SecretsService
from services.sequencer import SequencerService
from services.state import StateService
from services.trace_context import TraceContext
from services.wasm_watch import FileWatch
from wasm.abi import HostError, WasmResult
from wasm.settings import FunctionSettings

if TYPE_CHECKING:
    from wasm.engine import WasmEngine
    from wasm.runner import Function, Request, Response, Spec

log = logging.getLogger("l8.wasm")

_LAYOTTO_KEYS = {"name", "instance_num", "vm_config", "from_wasm_plugin", "root_context_id"}


def function_settings(body: Any) -> FunctionSettings:
    """A function from an install body: Layotto's plugin entry (``{name, instance_num,
    vm_config: {engine, path}, <string keys>: plugin configuration}``) or l8's settings form."""
    if not isinstance(body, Mapping):
        raise errors.malformed("the install body must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise errors.malformed("the install body has no name")
    raw: Mapping[str, Any] = body
    vm = body.get("vm_config")
    if isinstance(vm, Mapping):
        engine = vm.get("engine", "wasmtime")
        if engine != "wasmtime":
            raise errors.malformed(f"vm_config.engine {engine!r} is not supported (l8 runs wasmtime)")
        raw = {
            "name": name,
            "path": vm.get("path"),
            "instanceNum": body.get("instance_num", 1),
            "config": {k: v for k, v in body.items() if k not in _LAYOTTO_KEYS and isinstance(v, str)},
        }
    try:
        return FunctionSettings.model_validate(raw)
    except ValidationError as exc:
        raise errors.malformed(describe(exc, "install")) from None


class WasmService:
    """The installed functions, and the sidecar seen from inside them (the ABI's ``Host``)."""

    def __init__(
        self,
        state: StateService,
        pubsub: PubSubService,
        invocation: InvocationService,
        secrets: SecretsService,
        sequencer: SequencerService,
    ) -> None:
        self._state = state
        self._pubsub = pubsub
        self._invocation = invocation
        self._secrets = secrets
        self._sequencer = sequencer
        self._engine: WasmEngine | None = None
        self._functions: dict[str, Function] = {}
        self._digests: dict[str, str] = {}
        self._changes = asyncio.Lock()
        self._watch: FileWatch | None = None

    @property
    def functions(self) -> Mapping[str, Function]:
        return self._functions

    def _engine_started(self) -> WasmEngine:
        if self._engine is None:
            from wasm.engine import WasmEngine

            self._engine = WasmEngine()
            self._engine.start()
        return self._engine

    async def start(self, functions: Iterable[FunctionSettings]) -> None:
        """Installs the functions of the settings file; the first refused one raises ApiError."""
        for function in functions:
            await self.install(function)

    def _follow_files(self) -> None:
        if self._watch is None:
            if not self._functions:
                return
            self._watch = FileWatch(self._reload)
        self._watch.watch({Path(f.spec.path) for f in self._functions.values()})

    async def aclose(self) -> None:
        if self._watch is not None:
            await self._watch.aclose()
            self._watch = None
        for function in self._functions.values():
            function.close()
        self._functions.clear()
        if self._engine is not None:
            await asyncio.to_thread(self._engine.close)
            self._engine = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def install(self, settings: FunctionSettings) -> str:
        from wasm.runner import Limits, Spec

        async with self._changes:
            if settings.name in self._functions:
                raise errors.wasm_function_exists(settings.name)
            limits = Limits(settings.timeout, settings.memory_pages, settings.pool_wait)
            spec = Spec(
                settings.name, _absolute(settings.path), settings.instance_num, settings.config, limits
            )
            function, digest = await self._load(spec)
            self._functions[function.id] = function
            self._digests[function.id] = digest
            self._follow_files()
            return function.id

    async def _load(self, spec: Spec) -> tuple[Function, str]:
        """The started function of ``spec``'s file, and the file's hash."""
        from wasm.engine import ModuleError
        from wasm.runner import Function

        engine = self._engine_started()
        try:
            code = await asyncio.to_thread(Path(spec.path).read_bytes)
        except OSError as exc:
            raise errors.wasm_module_invalid(spec.name, f"cannot read {spec.path}: {exc.strerror}") from None
        loop = asyncio.get_running_loop()
        try:
            module = await loop.run_in_executor(engine.executor, engine.compile, code)
            function = Function(engine, module, spec, self, loop)
            function_id = await function.start()
        except ModuleError as exc:
            raise errors.wasm_module_invalid(spec.name, str(exc)) from None
        if function_id != spec.name:
            function.close()
            raise errors.wasm_module_invalid(
                spec.name, f"the module's proxy_get_id names it {function_id!r}, not {spec.name!r}"
            )
        return function, hashlib.sha256(code).hexdigest()

    async def _reload(self, path: Path) -> None:
        """Hot reload: the functions loaded from ``path`` get the new module. Calls in flight finish
        on the old one, new calls get the new one; a module that fails to load is logged and the
        old one kept."""
        async with self._changes:
            for function_id, function in list(self._functions.items()):
                if Path(function.spec.path) != path:
                    continue
                try:
                    fresh, digest = await self._load(function.spec)
                except ApiError as exc:
                    log.warning("wasm: %s not reloaded, the old module stays: %s", function_id, exc.message)
                    continue
                if digest == self._digests.get(function_id):
                    fresh.close()
                    continue
                await fresh.resize(function.instances)
                fresh.metrics = function.metrics
                self._functions[function_id] = fresh
                self._digests[function_id] = digest
                function.close()
                log.info("wasm: %s reloaded from %s", function_id, path)

    async def uninstall(self, name: str) -> None:
        async with self._changes:
            function = self._functions.pop(name, None)
            if function is None:
                raise errors.wasm_function_not_found(name)
            self._digests.pop(name, None)
            function.close()
            self._follow_files()

    async def update(self, name: str, instances: int) -> None:
        if instances <= 0:
            raise errors.malformed("instance_num must be above 0")
        function = self._functions.get(name)
        if function is None:
            raise errors.wasm_function_not_found(name)
        await function.resize(instances)

    def describe(self) -> list[dict[str, Any]]:
        """Each function with its pool and counters (for GET /v1.0/metadata)."""
        return [
            {
                "id": function_id,
                "path": function.spec.path,
                "instanceNum": function.instances,
                "calls": function.metrics.calls,
                "errors": function.metrics.errors,
                "traps": function.metrics.traps,
                "seconds": round(function.metrics.seconds, 6),
            }
            for function_id, function in sorted(self._functions.items())
        ]

    # -- calls -------------------------------------------------------------------------------------

    async def call(self, function_id: str, request: Request) -> Response:
        """Runs function ``function_id``: 404 when there is none, 500 with the trap's message when it
        traps or runs out of time, 503 when no instance frees up in time."""
        from wasm.engine import ModuleError
        from wasm.runner import FunctionTrap, PoolExhausted

        function = self._functions.get(function_id)
        if function is None:
            raise errors.wasm_function_not_found(function_id)
        try:
            return await function.handle(request)
        except (FunctionTrap, ModuleError) as exc:  # ModuleError: a fresh instance failed to start
            raise errors.wasm_function_trap(str(exc)) from None
        except PoolExhausted as exc:
            raise errors.wasm_function_busy(str(exc)) from None

    # -- the host side of the ABI ------------------------------------------------------------------

    async def get_state(self, store: str, key: str) -> bytes | None:
        handle = _found(lambda: self._state.resolve(store))
        item = await self._state.get(handle, key, None, {})
        return None if item is None else item.value

    async def save_state(self, store: str, key: str, value: bytes) -> None:
        """Bytes that are JSON are saved as that JSON document (as the HTTP API saves a value),
        others as a JSON string."""
        handle = _found(lambda: self._state.resolve(store))
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError:
            document = value.decode("utf-8", "replace")
        await self._state.save(handle, [{"key": key, "value": document}], {})

    async def invoke_service(self, target: str, method: str, param: bytes) -> bytes:
        """Function ``target`` when one is installed under that id (Layotto's demo: function 1
        calls function 2), else ``method`` of app ``target`` through service invocation."""
        from wasm.runner import Request

        if target in self._functions:
            return (await self.call(target, Request([], param))).body
        scope = {
            "type": "http",
            "method": "POST",
            "headers": [(b"content-length", str(len(param)).encode())],
            "query_string": b"",
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": param, "more_body": False}

        upstream = await self._invocation.invoke(target, method, scope, receive)
        try:
            body = b"".join([chunk async for chunk in upstream.chunks()])
        finally:
            upstream.release()
        if upstream.status >= 400:
            raise HostError(WasmResult.INTERNAL_FAILURE, f"{target} answered {upstream.status}")
        return body

    async def publish_event(self, pubsub: str, topic: str, data: bytes) -> None:
        handle = _found(lambda: self._pubsub.resolve(pubsub, {}, topic))
        await self._pubsub.publish(handle, topic, data, None, {}, TraceContext.start())

    async def get_secret(self, store: str, name: str) -> dict[str, str] | None:
        return await self._secrets.get(store, name, {})

    async def next_id(self, store: str, key: str) -> int:
        return await self._sequencer.next_id(store, {"key": key})


def _absolute(path: Path) -> str:
    """Absolute without touching the disk (the watch compares paths so)."""
    return os.path.abspath(path)


def _found(resolve: Any) -> Any:
    """A store by name; an unknown one is NotFound to the module."""
    try:
        return resolve()
    except ApiError as exc:
        raise HostError(WasmResult.NOT_FOUND, exc.message) from None
