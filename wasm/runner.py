"""A function: one compiled module, its configuration and limits, and a pool of instances that
run Layotto's call sequence for a request.

An instance is exclusive to one request; the pool grows to ``instances`` and callers wait for a
free one at most ``pool_wait`` seconds. Each call runs under an epoch deadline (wall time) and a
memory cap: on the event loop under a fuel budget when the function calls no service or only
reads (in a greenlet its host calls suspend, wasm/suspend.py), else on a worker thread. An
instance that trapped (a deadline passed, ``unreachable``, a memory fault) is dropped and the next
caller gets a fresh one, so a bad call leaves no state behind.

The call sequence (Layotto's, on MOSN's proxy-wasm host): at start ``_start`` (or
``_initialize``), ``proxy_get_id`` (the id lands in the CallData buffer),
``proxy_on_context_create(root, 0)``, ``proxy_on_vm_start``, ``proxy_on_configure``; per
request ``proxy_on_context_create(ctx, root)``, ``proxy_on_request_headers``,
``proxy_on_request_body`` (the query string when the request has no body),
``proxy_on_request_trailers``, ``proxy_on_done``, ``proxy_on_log``, ``proxy_on_delete``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wasm import abi, suspend
from wasm.abi import BufferType, HostContext, MapType
from wasm.calls import Export
from wasm.engine import UNLIMITED_FUEL, ModuleError, WasmEngine

if TYPE_CHECKING:
    import wasmtime

log = logging.getLogger("l8.wasm")

ROOT_CONTEXT = 1
PAGE = 65536
INLINE_FUEL = 2_000_000
"""Instructions a call may run on the event loop (about a millisecond) before it is moved to a
worker thread."""
READ_IMPORTS = frozenset({"proxy_get_state", "proxy_get_secret"})
"""Host functions that wait for the event loop and change nothing: a call using only these can be
dropped half-way and run again, so it runs on the loop in a greenlet that its host calls suspend
(wasm/suspend.py), and moves to a worker thread when it outgrows its fuel."""
SERVICE_IMPORTS = READ_IMPORTS | {
    "proxy_invoke_service",
    "proxy_save_state",
    "proxy_publish_event",
    "proxy_next_id",
}
"""Host functions that wait for the event loop. A function importing one that changes something
(saves, publishes, invokes, takes an id) runs on worker threads: a call cut short by its fuel
could not be run again."""


class FunctionTrap(Exception):
    """The function trapped or ran out of time; the message says which and where."""


class OutOfFuel(FunctionTrap):
    """An inline call used up its fuel: it is run again on a worker thread."""


class PoolExhausted(Exception):
    """No instance became free within the pool's wait."""


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 5.0
    """Wall time of one request (and of start-up), seconds."""
    memory_pages: int = 256
    """Linear memory cap, 64 KiB pages (256 = 16 MiB)."""
    pool_wait: float = 5.0
    """How long a request waits for a free instance, seconds."""


@dataclass(slots=True)
class Request:
    headers: list[tuple[str, str]]
    body: bytes
    method: str = "POST"
    path: str = "/"


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Metrics:
    calls: int = 0
    errors: int = 0
    traps: int = 0
    seconds: float = 0.0


@dataclass
class Spec:
    """A function as configured: Layotto's plugin entry."""

    name: str
    path: str
    instances: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)


class Instance:
    """One instantiated module with its own store, memory cap and host context."""

    _contexts = itertools.count(2)

    def __init__(self, engine: WasmEngine, module: wasmtime.Module, spec: Spec, context: HostContext) -> None:
        import wasmtime

        self.engine = engine
        self.spec = spec
        self.context = context
        self.store = wasmtime.Store(engine.engine)
        self.store.set_limits(memory_size=spec.limits.memory_pages * PAGE)
        wasi = wasmtime.WasiConfig()
        wasi.argv = [spec.name]
        # l8's own stdout and stderr, where its log goes: wasmtime's custom output callbacks run
        # Python on wasmtime's threads, which can abort the process at exit (wasm/wasi_command.py).
        wasi.inherit_stdout()
        wasi.inherit_stderr()
        self.store.set_wasi(wasi)
        linker = wasmtime.Linker(engine.engine)
        linker.allow_shadowing = True
        linker.define_wasi()
        try:
            abi.define(linker, module, context)
        except ValueError as exc:
            raise ModuleError(str(exc)) from None
        self._deadline(spec.limits.timeout)
        self.store.set_fuel(UNLIMITED_FUEL)
        try:
            self.instance = linker.instantiate(self.store, module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise ModuleError(f"the module cannot be instantiated: {_message(exc)}") from None
        exports = self.instance.exports(self.store)
        self.exports: dict[str, Export] = {}
        for export in module.exports:
            found = exports[export.name]
            if isinstance(found, wasmtime.Func):
                self.exports[export.name] = Export(self.store, found)
            elif export.name == "memory" and isinstance(found, wasmtime.Memory):
                context.memory = found
        context.allocate = self.exports.get("proxy_on_memory_allocate") or self.exports.get("malloc")
        self.broken = False

    def _deadline(self, seconds: float) -> None:
        self.context.deadline = time.monotonic() + seconds
        self.store.set_epoch_deadline(self.engine.ticks(seconds))

    def _export(self, name: str) -> Export | None:
        return self.exports.get(name)

    def call(self, name: str, *args: int) -> Any:
        """Calls export ``name`` when the module has it, with as many of ``args`` as it takes."""
        func = self.exports.get(name)
        if func is None:
            return None
        arity = func.arity
        return func(
            self.store, *(args[:arity] if len(args) >= arity else (*args, *(0,) * (arity - len(args))))
        )

    def start(self) -> str:
        """Runs the start sequence; the function's id (what ``proxy_get_id`` wrote)."""
        self.store.set_fuel(UNLIMITED_FUEL)
        self.context.buffers[BufferType.PLUGIN_CONFIGURATION] = _config_bytes(self.spec.config)
        self.context.buffers[BufferType.VM_CONFIGURATION] = b""
        self._deadline(self.spec.limits.timeout)
        self._guard(self._start)
        return self.context.buffers.get(BufferType.CALL_DATA, b"").decode("utf-8", "replace")

    def _start(self) -> None:
        if self._export("_start") is not None:
            self._run_start()
        else:
            self.call("_initialize")
        if self._export("proxy_get_id") is None:
            raise ModuleError("the module does not export proxy_get_id")
        self.call("proxy_get_id")
        self.call("proxy_on_context_create", ROOT_CONTEXT, 0)
        self.call("proxy_on_vm_start", ROOT_CONTEXT, 0)
        self.call(
            "proxy_on_configure", ROOT_CONTEXT, len(self.context.buffers[BufferType.PLUGIN_CONFIGURATION])
        )

    def _run_start(self) -> None:
        import wasmtime

        try:
            self.call("_start")
        except wasmtime.ExitTrap as exc:  # a WASI command's proc_exit(0) ends _start
            if exc.code != 0:
                raise

    def handle(self, request: Request, fuel: int = UNLIMITED_FUEL) -> Response:
        """Runs one request through the module (in a worker thread, or on the loop with a small
        ``fuel`` for a function that calls no service)."""
        context = self.context
        context.reset()
        context.buffers[BufferType.HTTP_REQUEST_BODY] = request.body
        context.maps[MapType.HTTP_REQUEST_HEADERS] = [
            (":method", request.method),
            (":path", request.path),
            *request.headers,
        ]
        self._deadline(self.spec.limits.timeout)
        self.store.set_fuel(fuel)
        response: Response = self._guard(lambda: self._handle(request))
        return response

    def _handle(self, request: Request) -> Response:
        ctx = next(self._contexts)
        context = self.context
        self.call("proxy_on_context_create", ctx, ROOT_CONTEXT)
        self.call("proxy_on_request_headers", ctx, len(context.maps[MapType.HTTP_REQUEST_HEADERS]), 0)
        self.call("proxy_on_request_body", ctx, len(request.body), 1)
        self.call("proxy_on_request_trailers", ctx, 0)
        self.call("proxy_on_done", ctx)
        self.call("proxy_on_log", ctx)
        self.call("proxy_on_delete", ctx)
        headers = context.maps.get(MapType.HTTP_RESPONSE_HEADERS, [])
        status = context.status
        for name, value in headers:
            if name == ":status" and value.isdigit():
                status = int(value)
        return Response(
            status or 200,
            [(n, v) for n, v in headers if not n.startswith(":")],
            context.buffers.get(BufferType.HTTP_RESPONSE_BODY, b""),
        )

    def _guard(self, work: Any) -> Any:
        import wasmtime

        try:
            return work()
        except wasmtime.Trap as exc:
            self.broken = True
            if exc.trap_code == wasmtime.TrapCode.OUT_OF_FUEL:
                raise OutOfFuel(f"function {self.spec.name} ran out of its inline fuel") from None
            if exc.trap_code == wasmtime.TrapCode.INTERRUPT:
                raise FunctionTrap(
                    f"function {self.spec.name} exceeded its time limit of {self.spec.limits.timeout}s"
                ) from None
            raise FunctionTrap(f"function {self.spec.name} trapped: {_message(exc)}") from None
        except abi.DeadlineExceeded as exc:
            self.broken = True
            raise FunctionTrap(str(exc)) from None
        except wasmtime.WasmtimeError as exc:
            self.broken = True
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, abi.DeadlineExceeded):
                raise FunctionTrap(str(cause)) from None
            raise FunctionTrap(f"function {self.spec.name} failed: {_message(exc)}") from None


class Function:
    """A module running as a function: its id, its instances, its counters."""

    def __init__(
        self,
        engine: WasmEngine,
        module: wasmtime.Module,
        spec: Spec,
        host: abi.Host | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.engine = engine
        self.module = module
        self.spec = spec
        self.host = host
        self.loop = loop
        self.id = ""
        self.metrics = Metrics()
        self._idle: list[Instance] = []
        self._size = 0
        self._limit = max(1, spec.instances)
        self._free = asyncio.Condition()
        self._waiting = 0
        services = {i.name for i in module.imports if i.module == "env" and i.name in SERVICE_IMPORTS}
        self.inline = services <= READ_IMPORTS
        """Calls run on the event loop with INLINE_FUEL first: set for a function that calls no
        service or only reads (READ_IMPORTS), until one of its calls runs out of that fuel."""
        self.suspends = bool(services)
        """Its calls on the loop run in a greenlet that its host calls suspend (wasm/suspend.py)."""

    def _new_instance(self) -> Instance:
        context = HostContext(host=self.host, loop=self.loop, function=self.spec.name)
        instance = Instance(self.engine, self.module, self.spec, context)
        function_id = instance.start()
        if not function_id:
            raise ModuleError("the module's proxy_get_id set no id (CallData is empty)")
        if self.id and function_id != self.id:
            raise ModuleError(f"the module's instances disagree on their id ({self.id}, {function_id})")
        context.function = function_id
        return instance

    async def start(self) -> str:
        """Instantiates the first instance (checking the module); the function's id."""
        try:
            instance = await self._in_thread(self._new_instance)
        except FunctionTrap as exc:
            raise ModuleError(str(exc)) from None
        self.id = instance.context.function
        self._idle.append(instance)
        self._size = 1
        return self.id

    async def _in_thread(self, work: Any, *args: Any) -> Any:
        return await self.loop.run_in_executor(self.engine.executor, work, *args)

    @property
    def instances(self) -> int:
        return self._limit

    async def resize(self, instances: int) -> None:
        self._limit = max(1, instances)
        while self._size > self._limit and self._idle:
            self._idle.pop()
            self._size -= 1
        async with self._free:
            self._free.notify_all()

    async def _acquire(self) -> Instance:
        # The loop is single-threaded: between two awaits the pool's fields are ours alone.
        if self._idle:
            return self._idle.pop()
        if self._size >= self._limit:
            await self._wait_for_room()
            if self._idle:
                return self._idle.pop()
        self._size += 1
        try:
            instance: Instance = await self._in_thread(self._new_instance)
            return instance
        except BaseException:
            self._size -= 1
            await self._wake()
            raise

    async def _wait_for_room(self) -> None:
        deadline = self.loop.time() + self.spec.limits.pool_wait
        self._waiting += 1
        try:
            async with self._free:
                while not self._idle and self._size >= self._limit:
                    remaining = deadline - self.loop.time()
                    if remaining <= 0:
                        raise PoolExhausted(
                            f"function {self.id} has no free instance (instanceNum {self._limit}) "
                            f"after {self.spec.limits.pool_wait}s"
                        )
                    try:
                        await asyncio.wait_for(self._free.wait(), remaining)
                    except TimeoutError:
                        continue
        finally:
            self._waiting -= 1

    async def _wake(self) -> None:
        if self._waiting:
            async with self._free:
                self._free.notify()

    async def _release(self, instance: Instance) -> None:
        if instance.broken or self._size > self._limit:
            self._size -= 1
        else:
            self._idle.append(instance)
        await self._wake()

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        self.metrics.calls += 1
        try:
            response = await self._run(request)
        except FunctionTrap:
            self.metrics.traps += 1
            self.metrics.errors += 1
            raise
        except BaseException:
            self.metrics.errors += 1
            raise
        finally:
            self.metrics.seconds += time.perf_counter() - started
        return response

    async def _run(self, request: Request) -> Response:
        if self.inline:
            await asyncio.sleep(0)  # a turn for others: a caller looping on inline calls never waits
            instance = await self._acquire()
            try:
                place = suspend.slot(self.loop)
                if self.suspends:
                    if place.take():
                        try:
                            return await suspend.run(instance.context, instance.handle, request, INLINE_FUEL)  # type: ignore[no-any-return]
                        finally:
                            place.give_back()
                elif not place.busy:
                    return instance.handle(request, INLINE_FUEL)
                # A call holds the loop's wasm slot (wasm/suspend.py): this one takes a thread.
                self.engine.calls_on_threads()
                slotless: Response = await self._in_thread(instance.handle, request)
                return slotless
            except OutOfFuel:
                # Its own instance's state is all such a call touched (besides logs): it is
                # dropped, and the call runs again where it may take its time.
                self.inline = False
                log.info(
                    "wasm: %s runs on worker threads from now on (a call outgrew %d of fuel)",
                    self.id,
                    INLINE_FUEL,
                )
            finally:
                await self._release(instance)
        instance = await self._acquire()
        try:
            self.engine.calls_on_threads()
            response: Response = await self._in_thread(instance.handle, request)
            return response
        finally:
            await self._release(instance)

    def close(self) -> None:
        self._idle.clear()


def _config_bytes(config: Mapping[str, str]) -> bytes:
    import json

    return json.dumps(dict(config), separators=(",", ":")).encode() if config else b""


def _message(exc: BaseException) -> str:
    """The cause of a trap in one line: wasmtime's text after "Caused by:", else its first line."""
    text = str(getattr(exc, "message", None) or exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Caused by:" in lines and lines.index("Caused by:") + 1 < len(lines):
        cause = lines[lines.index("Caused by:") + 1]
        return cause.split(":", 1)[1].strip() if cause[:1].isdigit() else cause
    return lines[0] if lines else type(exc).__name__
