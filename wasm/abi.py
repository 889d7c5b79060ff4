"""The proxy-wasm 0.2.x host functions, Layotto's two additions and l8's extensions, bound to one
instance's :class:`HostContext`.

Every import a proxy-wasm 0.1/0.2 module may declare in module ``env`` resolves: the ones l8 does
not implement answer ``WasmResult.Unimplemented`` (typed as the module declares them), so a module
never fails to instantiate for a host function it does not call. WASI (``wasi_snapshot_preview1``)
is wasmtime's own, with stdout and stderr going to l8's own.

Calling l8's services from a host function: the services are coroutines on the sidecar's event
loop, and a host function is synchronous. A function that only reads (``proxy_get_state``,
``proxy_get_secret``) runs on the loop thread in a greenlet, and its host call suspends it until
the coroutine is done (wasm/suspend.py: no thread hop). Any other service-calling function runs in
a worker thread (wasmtime releases the GIL while wasm runs, so the loop keeps serving), and a host
function hands its coroutine to the loop and waits for it at most until the call's deadline
(:meth:`HostContext.wait`). A call on the loop is bounded by its fuel (wasm/runner.py), so a
function that computes for long cannot stall every request.

l8's extensions (module ``env``, all return a ``WasmResult``):

- ``proxy_save_state(store_ptr, store_len, key_ptr, key_len, value_ptr, value_len)``
- ``proxy_publish_event(pubsub_ptr, pubsub_len, topic_ptr, topic_len, data_ptr, data_len)``
- ``proxy_get_secret(store_ptr, store_len, name_ptr, name_len, out_ptr_ptr, out_len_ptr)``: the
  secret's key/value map as a JSON object
- ``proxy_next_id(store_ptr, store_len, key_ptr, key_len, out_u64_ptr)``: the sequencer's next id
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import queue
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import wasmtime

log = logging.getLogger("l8.wasm")


class WasmResult(enum.IntEnum):
    OK = 0
    NOT_FOUND = 1
    BAD_ARGUMENT = 2
    SERIALIZATION_FAILURE = 3
    PARSE_FAILURE = 4
    BAD_EXPRESSION = 5
    INVALID_MEMORY_ACCESS = 6
    EMPTY = 7
    CAS_MISMATCH = 8
    RESULT_MISMATCH = 9
    INTERNAL_FAILURE = 10
    BROKEN_CONNECTION = 11
    UNIMPLEMENTED = 12


class BufferType(enum.IntEnum):
    HTTP_REQUEST_BODY = 0
    HTTP_RESPONSE_BODY = 1
    DOWNSTREAM_DATA = 2
    UPSTREAM_DATA = 3
    HTTP_CALL_RESPONSE_BODY = 4
    GRPC_RECEIVE_BUFFER = 5
    VM_CONFIGURATION = 6
    PLUGIN_CONFIGURATION = 7
    CALL_DATA = 8
    """Layotto's: where ``proxy_get_id`` writes the function's id."""


class MapType(enum.IntEnum):
    HTTP_REQUEST_HEADERS = 0
    HTTP_REQUEST_TRAILERS = 1
    HTTP_RESPONSE_HEADERS = 2
    HTTP_RESPONSE_TRAILERS = 3


class HostError(Exception):
    """A host service's failure, answered to the module as ``result``."""

    def __init__(self, result: WasmResult, message: str = "") -> None:
        super().__init__(message or result.name)
        self.result = result


class DeadlineExceeded(Exception):
    """The call ran past its wall-time limit while waiting for a host service."""


class Host(Protocol):
    """What functions reach of the sidecar (services/wasm.py implements it over l8's services).
    A missing value is ``None``; failures raise :class:`HostError` or any exception (answered as
    InternalFailure)."""

    async def get_state(self, store: str, key: str) -> bytes | None: ...

    async def save_state(self, store: str, key: str, value: bytes) -> None: ...

    async def invoke_service(self, target: str, method: str, param: bytes) -> bytes: ...

    async def publish_event(self, pubsub: str, topic: str, data: bytes) -> None: ...

    async def get_secret(self, store: str, name: str) -> dict[str, str] | None: ...

    async def next_id(self, store: str, key: str) -> int: ...


@dataclass
class HostContext:
    """One instance's view of the request it serves, and its way back to the sidecar."""

    host: Host | None = None
    loop: asyncio.AbstractEventLoop | None = None
    deadline: float = float("inf")
    """time.monotonic() by which the call must be done."""
    function: str = ""
    buffers: dict[int, bytes] = field(default_factory=dict)
    maps: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    properties: dict[str, bytes] = field(default_factory=dict)
    status: int | None = None
    effective_context: int = 0
    done: bool = False
    memory: Any = None
    """The module's exported memory (set once instantiated)."""
    allocate: Any = None
    """Its ``proxy_on_memory_allocate`` or ``malloc`` export (a wasm.calls.Export)."""
    suspend: Callable[[Coroutine[Any, Any, Any]], Any] | None = None
    """Set while the call runs on the loop in a greenlet (wasm/suspend.py): how a host call awaits."""

    def reset(self) -> None:
        self.buffers = {k: v for k, v in self.buffers.items() if k in _KEPT}
        self.maps = {}
        self.status = None
        self.done = False

    def wait(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Runs ``coroutine`` on the sidecar's loop and waits for it until the deadline (from the
        worker thread the call runs on). One ``call_soon_threadsafe`` there and one queue put back:
        ``run_coroutine_threadsafe``'s concurrent future and its chained callbacks cost more."""
        if self.host is None or self.loop is None:
            coroutine.close()
            raise HostError(WasmResult.UNIMPLEMENTED, "no host services")
        if self.suspend is not None:
            return self.suspend(coroutine)
        reply: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        task: list[asyncio.Task[Any]] = []
        self.loop.call_soon_threadsafe(_start, self.loop, coroutine, reply, task)
        try:
            ok, value = reply.get(timeout=max(self.deadline - time.monotonic(), 0.0))
        except queue.Empty:
            self.loop.call_soon_threadsafe(_cancel, task)
            raise DeadlineExceeded(f"function {self.function} exceeded its time limit") from None
        if ok:
            return value
        raise value


def _start(
    loop: asyncio.AbstractEventLoop,
    coroutine: Coroutine[Any, Any, Any],
    reply: queue.SimpleQueue[tuple[bool, Any]],
    task: list[asyncio.Task[Any]],
) -> None:
    def done(finished: asyncio.Task[Any]) -> None:
        if finished.cancelled():
            reply.put((False, DeadlineExceeded("cancelled")))
        elif (error := finished.exception()) is not None:
            reply.put((False, error))
        else:
            reply.put((True, finished.result()))

    task.append(loop.create_task(coroutine))
    task[0].add_done_callback(done)


def _cancel(task: list[asyncio.Task[Any]]) -> None:
    for running in task:
        running.cancel()


_KEPT = {BufferType.VM_CONFIGURATION, BufferType.PLUGIN_CONFIGURATION, BufferType.CALL_DATA}


class MemoryAccessError(Exception):
    pass


class Guest:
    """The module's memory and allocator, seen from a host function's caller: ``caller`` is the
    raw caller context of wasm.calls.define_raw (``raw``), or wasmtime-py's Caller."""

    __slots__ = ("caller", "context", "memory", "raw")

    def __init__(self, caller: Any, context: HostContext, raw: Any = None) -> None:
        self.caller = caller
        self.context = context
        self.raw = raw
        if context.memory is None:
            raise MemoryAccessError("the module exports no memory")
        self.memory: Any = raw(caller, context.memory) if raw else _PublicMemory(caller, context.memory)

    def read(self, ptr: int, size: int) -> bytes:
        if ptr < 0 or size < 0 or ptr + size > self.memory.size():
            raise MemoryAccessError(f"read of {size} bytes at {ptr} is out of bounds")
        return bytes(self.memory.read(ptr, size))

    def text(self, ptr: int, size: int) -> str:
        return self.read(ptr, size).decode("utf-8", "replace")

    def write(self, ptr: int, data: bytes) -> None:
        if ptr < 0 or ptr + len(data) > self.memory.size():
            raise MemoryAccessError(f"write of {len(data)} bytes at {ptr} is out of bounds")
        self.memory.write(ptr, data)

    def u32(self, ptr: int, value: int) -> None:
        self.write(ptr, struct.pack("<I", value & 0xFFFFFFFF))

    def u64(self, ptr: int, value: int) -> None:
        self.write(ptr, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def give(self, data: bytes, ptr_ptr: int, size_ptr: int) -> None:
        """Copies ``data`` into memory the module allocates, and writes its address and size."""
        address = 0
        if data:
            allocate = self.context.allocate
            if allocate is None:
                raise MemoryAccessError("the module exports no proxy_on_memory_allocate or malloc")
            address = int(
                allocate.call_in(self.caller, len(data)) if self.raw else allocate(self.caller, len(data))
            )
            if address == 0:
                raise MemoryAccessError("the module's allocator returned 0")
            self.write(address, data)
        self.u32(ptr_ptr, address)
        self.u32(size_ptr, len(data))


class _PublicMemory:
    """wasmtime-py's own memory API (when its _ffi is not there)."""

    __slots__ = ("caller", "memory")

    def __init__(self, caller: Any, memory: Any) -> None:
        self.caller = caller
        self.memory = memory

    def size(self) -> int:
        return int(self.memory.data_len(self.caller))

    def read(self, ptr: int, size: int) -> bytes:
        return bytes(self.memory.read(self.caller, ptr, ptr + size))

    def write(self, ptr: int, data: bytes) -> None:
        self.memory.write(self.caller, data, ptr)


def encode_pairs(pairs: list[tuple[str, str]]) -> bytes:
    """proxy-wasm's map serialisation: count, (key size, value size)*, then key\\0 value\\0 each."""
    encoded = [(k.encode(), v.encode()) for k, v in pairs]
    head = struct.pack("<I", len(encoded)) + b"".join(struct.pack("<II", len(k), len(v)) for k, v in encoded)
    return head + b"".join(k + b"\0" + v + b"\0" for k, v in encoded)


def decode_pairs(data: bytes) -> list[tuple[str, str]]:
    if len(data) < 4:
        return []
    (count,) = struct.unpack_from("<I", data)
    sizes = [struct.unpack_from("<II", data, 4 + 8 * i) for i in range(count)]
    offset = 4 + 8 * count
    pairs = []
    for key_size, value_size in sizes:
        key = data[offset : offset + key_size].decode("utf-8", "replace")
        offset += key_size + 1
        value = data[offset : offset + value_size].decode("utf-8", "replace")
        offset += value_size + 1
        pairs.append((key, value))
    return pairs


Handler = Callable[..., int]

# Every proxy-wasm 0.1.0/0.2.0/0.2.1 host function, and Layotto's: name -> (param types, result).
I32, I64 = "i32", "i64"
KNOWN_IMPORTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "proxy_log": ((I32,) * 3, (I32,)),
    "proxy_get_log_level": ((I32,), (I32,)),
    "proxy_get_current_time_nanoseconds": ((I32,), (I32,)),
    "proxy_set_tick_period_milliseconds": ((I32,), (I32,)),
    "proxy_get_configuration": ((I32,) * 2, (I32,)),
    "proxy_get_buffer_bytes": ((I32,) * 5, (I32,)),
    "proxy_get_buffer_status": ((I32,) * 3, (I32,)),
    "proxy_set_buffer_bytes": ((I32,) * 5, (I32,)),
    "proxy_get_header_map_pairs": ((I32,) * 3, (I32,)),
    "proxy_set_header_map_pairs": ((I32,) * 3, (I32,)),
    "proxy_get_header_map_value": ((I32,) * 5, (I32,)),
    "proxy_add_header_map_value": ((I32,) * 5, (I32,)),
    "proxy_replace_header_map_value": ((I32,) * 5, (I32,)),
    "proxy_remove_header_map_value": ((I32,) * 3, (I32,)),
    "proxy_get_header_map_size": ((I32,) * 2, (I32,)),
    "proxy_get_property": ((I32,) * 4, (I32,)),
    "proxy_set_property": ((I32,) * 4, (I32,)),
    "proxy_get_shared_data": ((I32,) * 5, (I32,)),
    "proxy_set_shared_data": ((I32,) * 5, (I32,)),
    "proxy_register_shared_queue": ((I32,) * 3, (I32,)),
    "proxy_resolve_shared_queue": ((I32,) * 5, (I32,)),
    "proxy_dequeue_shared_queue": ((I32,) * 3, (I32,)),
    "proxy_enqueue_shared_queue": ((I32,) * 3, (I32,)),
    "proxy_continue_request": ((), (I32,)),
    "proxy_continue_response": ((), (I32,)),
    "proxy_continue_stream": ((I32,), (I32,)),
    "proxy_close_stream": ((I32,), (I32,)),
    "proxy_clear_route_cache": ((), (I32,)),
    "proxy_send_local_response": ((I32,) * 8, (I32,)),
    "proxy_http_call": ((I32,) * 10, (I32,)),
    "proxy_grpc_call": ((I32,) * 12, (I32,)),
    "proxy_grpc_stream": ((I32,) * 9, (I32,)),
    "proxy_grpc_send": ((I32,) * 4, (I32,)),
    "proxy_grpc_cancel": ((I32,), (I32,)),
    "proxy_grpc_close": ((I32,), (I32,)),
    "proxy_get_status": ((I32,) * 3, (I32,)),
    "proxy_set_effective_context": ((I32,), (I32,)),
    "proxy_done": ((), (I32,)),
    "proxy_call_foreign_function": ((I32,) * 6, (I32,)),
    "proxy_define_metric": ((I32,) * 4, (I32,)),
    "proxy_increment_metric": ((I32, I64), (I32,)),
    "proxy_record_metric": ((I32, I64), (I32,)),
    "proxy_get_metric": ((I32,) * 2, (I32,)),
    # Layotto's
    "proxy_get_state": ((I32,) * 6, (I32,)),
    "proxy_invoke_service": ((I32,) * 8, (I32,)),
    # l8's
    "proxy_save_state": ((I32,) * 6, (I32,)),
    "proxy_publish_event": ((I32,) * 6, (I32,)),
    "proxy_get_secret": ((I32,) * 6, (I32,)),
    "proxy_next_id": ((I32,) * 5, (I32,)),
}
WASI_MODULES = ("wasi_snapshot_preview1",)

_LEVELS = (logging.DEBUG, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


class HostFunctions:
    """The implemented host functions of one instance; each takes the caller first."""

    def __init__(self, context: HostContext) -> None:
        self.context = context

    # -- logging, time, lifecycle ------------------------------------------------------------------

    def proxy_log(self, g: Guest, level: int, ptr: int, size: int) -> int:
        message = g.text(ptr, size)
        log.log(
            _LEVELS[level] if 0 <= level < len(_LEVELS) else logging.INFO,
            "[%s] %s",
            self.context.function,
            message,
        )
        return WasmResult.OK

    def proxy_get_log_level(self, g: Guest, ret: int) -> int:
        g.u32(ret, 2)
        return WasmResult.OK

    def proxy_get_current_time_nanoseconds(self, g: Guest, ret: int) -> int:
        g.u64(ret, time.time_ns())
        return WasmResult.OK

    def proxy_set_effective_context(self, g: Guest, context_id: int) -> int:
        self.context.effective_context = context_id
        return WasmResult.OK

    def proxy_done(self, g: Guest) -> int:
        self.context.done = True
        return WasmResult.OK

    def proxy_continue_request(self, g: Guest) -> int:
        return WasmResult.OK

    def proxy_continue_response(self, g: Guest) -> int:
        return WasmResult.OK

    def proxy_continue_stream(self, g: Guest, stream: int) -> int:
        return WasmResult.OK

    # -- buffers -----------------------------------------------------------------------------------

    def proxy_get_buffer_bytes(
        self, g: Guest, kind: int, start: int, max_size: int, ptr_ptr: int, size_ptr: int
    ) -> int:
        data = self.context.buffers.get(kind)
        if data is None:
            return WasmResult.NOT_FOUND
        start = max(start, 0)
        g.give(data[start : start + max(max_size, 0)], ptr_ptr, size_ptr)
        return WasmResult.OK

    def proxy_get_buffer_status(self, g: Guest, kind: int, len_ptr: int, flags_ptr: int) -> int:
        data = self.context.buffers.get(kind)
        if data is None:
            return WasmResult.NOT_FOUND
        g.u32(len_ptr, len(data))
        g.u32(flags_ptr, 0)
        return WasmResult.OK

    def proxy_set_buffer_bytes(
        self, g: Guest, kind: int, start: int, size: int, ptr: int, data_size: int
    ) -> int:
        data = g.read(ptr, data_size)
        old = self.context.buffers.get(kind, b"")
        start = max(start, 0)
        # proxy-wasm: replace ``size`` bytes at ``start`` (start 0 size 0 prepends; Layotto's SDK
        # writes whole buffers with start 0 and size = len(data)).
        self.context.buffers[kind] = old[:start] + data + old[start + max(size, 0) :]
        return WasmResult.OK

    def proxy_get_configuration(self, g: Guest, ptr_ptr: int, size_ptr: int) -> int:
        g.give(self.context.buffers.get(BufferType.PLUGIN_CONFIGURATION, b""), ptr_ptr, size_ptr)
        return WasmResult.OK

    # -- header maps -------------------------------------------------------------------------------

    def _map(self, kind: int) -> list[tuple[str, str]]:
        return self.context.maps.setdefault(kind, [])

    def proxy_get_header_map_pairs(self, g: Guest, kind: int, ptr_ptr: int, size_ptr: int) -> int:
        g.give(encode_pairs(self._map(kind)), ptr_ptr, size_ptr)
        return WasmResult.OK

    def proxy_set_header_map_pairs(self, g: Guest, kind: int, ptr: int, size: int) -> int:
        self.context.maps[kind] = decode_pairs(g.read(ptr, size))
        return WasmResult.OK

    def proxy_get_header_map_size(self, g: Guest, kind: int, ret: int) -> int:
        g.u32(ret, len(encode_pairs(self._map(kind))))
        return WasmResult.OK

    def proxy_get_header_map_value(
        self, g: Guest, kind: int, kp: int, ks: int, ptr_ptr: int, size_ptr: int
    ) -> int:
        key = g.text(kp, ks).lower()
        for name, value in self._map(kind):
            if name.lower() == key:
                g.give(value.encode(), ptr_ptr, size_ptr)
                return WasmResult.OK
        return WasmResult.NOT_FOUND

    def proxy_add_header_map_value(self, g: Guest, kind: int, kp: int, ks: int, vp: int, vs: int) -> int:
        self._map(kind).append((g.text(kp, ks), g.text(vp, vs)))
        return WasmResult.OK

    def proxy_replace_header_map_value(self, g: Guest, kind: int, kp: int, ks: int, vp: int, vs: int) -> int:
        key, value = g.text(kp, ks), g.text(vp, vs)
        pairs = [(n, v) for n, v in self._map(kind) if n.lower() != key.lower()]
        self.context.maps[kind] = [*pairs, (key, value)]
        return WasmResult.OK

    def proxy_remove_header_map_value(self, g: Guest, kind: int, kp: int, ks: int) -> int:
        key = g.text(kp, ks).lower()
        self.context.maps[kind] = [(n, v) for n, v in self._map(kind) if n.lower() != key]
        return WasmResult.OK

    # -- properties, local response ----------------------------------------------------------------

    def proxy_get_property(self, g: Guest, pp: int, ps: int, ptr_ptr: int, size_ptr: int) -> int:
        # Paths are segments separated by \0 (["plugin_name"] -> b"plugin_name").
        path = g.read(pp, ps).rstrip(b"\0").replace(b"\0", b".").decode("utf-8", "replace")
        value = self.context.properties.get(path)
        if value is None:
            return WasmResult.NOT_FOUND
        g.give(value, ptr_ptr, size_ptr)
        return WasmResult.OK

    def proxy_set_property(self, g: Guest, pp: int, ps: int, vp: int, vs: int) -> int:
        path = g.read(pp, ps).rstrip(b"\0").replace(b"\0", b".").decode("utf-8", "replace")
        self.context.properties[path] = g.read(vp, vs)
        return WasmResult.OK

    def proxy_send_local_response(
        self, g: Guest, status: int, dp: int, ds: int, bp: int, bs: int, hp: int, hs: int, grpc: int
    ) -> int:
        self.context.status = status
        self.context.buffers[BufferType.HTTP_RESPONSE_BODY] = g.read(bp, bs)
        if hs:
            self.context.maps[MapType.HTTP_RESPONSE_HEADERS] = decode_pairs(g.read(hp, hs))
        return WasmResult.OK

    # -- Layotto's and l8's sidecar calls ----------------------------------------------------------

    def _call(self, coroutine: Awaitable[Any]) -> Any:
        return self.context.wait(coroutine)  # type: ignore[arg-type]

    def proxy_get_state(
        self, g: Guest, sp: int, ss: int, kp: int, ks: int, ptr_ptr: int, size_ptr: int
    ) -> int:
        store, key = g.text(sp, ss), g.text(kp, ks)
        host = self._host()
        value = self._call(host.get_state(store, key))
        if value is None:
            g.u32(ptr_ptr, 0)
            g.u32(size_ptr, 0)
            return WasmResult.NOT_FOUND
        g.give(value, ptr_ptr, size_ptr)
        return WasmResult.OK

    def proxy_invoke_service(
        self, g: Guest, ip: int, is_: int, mp: int, ms: int, pp: int, ps: int, ptr_ptr: int, size_ptr: int
    ) -> int:
        target, method, param = g.text(ip, is_), g.text(mp, ms), g.read(pp, ps)
        answer = self._call(self._host().invoke_service(target, method, param))
        g.give(answer, ptr_ptr, size_ptr)
        return WasmResult.OK

    def proxy_save_state(self, g: Guest, sp: int, ss: int, kp: int, ks: int, vp: int, vs: int) -> int:
        self._call(self._host().save_state(g.text(sp, ss), g.text(kp, ks), g.read(vp, vs)))
        return WasmResult.OK

    def proxy_publish_event(self, g: Guest, pp: int, ps: int, tp: int, ts: int, dp: int, ds: int) -> int:
        self._call(self._host().publish_event(g.text(pp, ps), g.text(tp, ts), g.read(dp, ds)))
        return WasmResult.OK

    def proxy_get_secret(
        self, g: Guest, sp: int, ss: int, np: int, ns: int, ptr_ptr: int, size_ptr: int
    ) -> int:
        secret = self._call(self._host().get_secret(g.text(sp, ss), g.text(np, ns)))
        if secret is None:
            return WasmResult.NOT_FOUND
        g.give(json.dumps(secret, separators=(",", ":")).encode(), ptr_ptr, size_ptr)
        return WasmResult.OK

    def proxy_next_id(self, g: Guest, sp: int, ss: int, kp: int, ks: int, ret: int) -> int:
        g.u64(ret, self._call(self._host().next_id(g.text(sp, ss), g.text(kp, ks))))
        return WasmResult.OK

    def _host(self) -> Host:
        if self.context.host is None:
            raise HostError(WasmResult.UNIMPLEMENTED, "no host services")
        return self.context.host


def _wrap(context: HostContext, method: Handler | None, name: str, raw: Any = None) -> Callable[..., int]:
    """The wasmtime callback: memory faults become InvalidMemoryAccess, service failures their
    result or InternalFailure; a deadline passed traps the call."""

    def call(caller: Any, *args: int) -> int:
        if method is None:
            return int(WasmResult.UNIMPLEMENTED)
        try:
            return int(method(Guest(caller, context, raw), *args))
        except MemoryAccessError as exc:
            log.debug("[%s] %s: %s", context.function, name, exc)
            return int(WasmResult.INVALID_MEMORY_ACCESS)
        except HostError as exc:
            log.debug("[%s] %s: %s", context.function, name, exc)
            return int(exc.result)
        except DeadlineExceeded:
            raise
        except Exception as exc:  # a service's failure is the module's to handle, not a crash
            log.warning("[%s] %s failed: %s", context.function, name, exc)
            return int(WasmResult.INTERNAL_FAILURE)

    return call


def define(linker: wasmtime.Linker, module: wasmtime.Module, context: HostContext) -> None:
    """Defines, in ``linker``, every ``env`` import ``module`` declares (implemented or answering
    Unimplemented). Raises ValueError naming an import l8 does not provide."""
    import wasmtime

    from wasm import calls

    raw = calls.raw_functions()
    functions = HostFunctions(context)
    for imported in module.imports:
        if imported.module in WASI_MODULES:
            continue
        if imported.module != "env" or imported.name not in KNOWN_IMPORTS:
            raise ValueError(
                f"the module imports {imported.module}.{imported.name}, which l8 does not provide"
            )
        declared = imported.type
        if not isinstance(declared, wasmtime.FuncType):
            raise ValueError(f"the module imports {imported.module}.{imported.name} as a non-function")
        params, results = KNOWN_IMPORTS[imported.name]
        if [str(t) for t in declared.params] != list(params) or [str(t) for t in declared.results] != list(
            results
        ):
            raise ValueError(
                f"the module imports env.{imported.name} with the wrong signature "
                f"(expected ({', '.join(params)}) -> {', '.join(results)})"
            )
        method: Handler | None = getattr(functions, imported.name, None)
        if raw and all(t == I32 for t in (*params, *results)):
            handler = _wrap(context, method, imported.name, calls.RawMemory)
            calls.define_raw(linker, "env", imported.name, declared, handler)
        else:
            handler = _wrap(context, method, imported.name)
            linker.define_func("env", imported.name, declared, handler, access_caller=True)
