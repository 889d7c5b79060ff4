"""The host side of the http-wasm HTTP handler ABI (https://http-wasm.io/http-handler-abi/), the
guest ABI Dapr's ``middleware.http.wasm`` runs.

A guest exports ``memory``, ``handle_request`` (returns ``ctx_next``: ``ctx << 32 | next``; next=1
passes the request on, next=0 means the guest answered it) and ``handle_response(ctx, is_error)``,
called after the next handler whenever next was 1. It imports, from module ``http_handler``:
``log``, ``log_enabled``, ``get_config``, ``enable_features``, ``get_method``/``set_method``,
``get_uri``/``set_uri``, ``get_protocol_version``, ``get_header_names``, ``get_header_values``,
``set_header_value``, ``add_header_value``, ``remove_header``, ``read_body``/``write_body``,
``get_status_code``/``set_status_code`` and ``get_source_addr``; and may import WASI preview 1
(TinyGo guests do), given no arguments, environment, folders or network.

Features: ``buffer_request`` (1) and ``buffer_response`` (2) are supported; the request body is
always read before the guest runs (so reading it never starves the next handler), and the response
is buffered only when the guest asks, so ``handle_response`` can rewrite it. Trailers (4) are not:
trailer reads are empty and trailer writes trap, as the ABI prescribes for such a host.

One :class:`Exchange` is the request and response as the guest sees them; host functions read and
write it. An instance is exclusive to one request from ``handle_request`` to ``handle_response``
(a guest may keep per-request state under ``ctx``); idle instances are pooled. Every guest call
runs under the store's deadline (epoch interruption) and memory cap, in a worker thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from wasm.engine import UNLIMITED_FUEL, shared_engine
from wasm.wasi_command import TICK_SECONDS, Limits, exit_code

if TYPE_CHECKING:
    import wasmtime

log = structlog.get_logger("l8.wasm.http")

ABI_MODULE = "http_handler"
FEATURE_BUFFER_REQUEST = 1
FEATURE_BUFFER_RESPONSE = 2
FEATURE_TRAILERS = 4
SUPPORTED_FEATURES = FEATURE_BUFFER_REQUEST | FEATURE_BUFFER_RESPONSE
REQUEST, RESPONSE, REQUEST_TRAILERS, RESPONSE_TRAILERS = 0, 1, 2, 3
_LOG_LEVELS = {-1: "debug", 0: "info", 1: "warning", 2: "error"}
_HEADER_MAX = 1 << 20
"""Caps on what a guest may set, so a runaway guest cannot build an unbounded answer."""


class GuestError(Exception):
    """A module that cannot be an http-wasm guest, or a guest call that trapped or timed out."""


Header = tuple[bytes, bytes]


@dataclass(slots=True)
class Exchange:
    """One request (and later its response) as the guest sees and changes it."""

    method: str
    uri: str
    """The escaped path and the query (``/v1.0/state/s?x=1``), as the ABI wants it."""
    protocol: str
    source: str
    request_headers: list[Header]
    request_body: bytes
    features: int = 0
    status: int = 200
    response_headers: list[Header] = field(default_factory=list)
    response_body: bytes = b""
    read_offsets: list[int] = field(default_factory=lambda: [0, 0])
    written: list[bool] = field(default_factory=lambda: [False, False])
    changed: bool = False
    """Whether the guest changed the request (method, uri, headers or body)."""

    def headers(self, kind: int) -> list[Header]:
        if kind == REQUEST:
            return self.request_headers
        if kind == RESPONSE:
            return self.response_headers
        if kind in (REQUEST_TRAILERS, RESPONSE_TRAILERS):
            return []
        raise GuestError(f"unknown header kind {kind}")

    def writable_headers(self, kind: int) -> list[Header]:
        if kind in (REQUEST_TRAILERS, RESPONSE_TRAILERS):
            raise GuestError("trailers are not supported by this host")
        if kind == REQUEST:
            self.changed = True
        return self.headers(kind)


class _Slot:
    """The exchange an instance is working on (host functions are bound to the instance)."""

    __slots__ = ("default_features", "exchange")

    def __init__(self) -> None:
        self.exchange: Exchange | None = None
        self.default_features = 0

    def current(self) -> Exchange:
        if self.exchange is None:
            raise GuestError("this host function is only available while a request is handled")
        return self.exchange


class GuestInstance:
    """One instance of a guest with its own store: used by one request at a time."""

    def __init__(self, guest: HttpWasmGuest) -> None:
        import wasmtime

        engine = shared_engine().engine
        self._guest = guest
        self._slot = _Slot()
        self.store = wasmtime.Store(engine)
        self.store.set_limits(memory_size=guest.limits.memory_bytes)
        self.store.set_fuel(UNLIMITED_FUEL)  # the engine counts fuel for functions; deadlines bound this
        linker = wasmtime.Linker(engine)
        _define_host(linker, self._slot, guest)
        if guest.uses_wasi:
            self.store.set_wasi(wasmtime.WasiConfig())
            linker.define_wasi()
        instance = self._guarded(lambda: linker.instantiate(self.store, guest.module))
        exports = instance.exports(self.store)
        for start in ("_initialize", "_start"):
            function = exports.get(start)
            if isinstance(function, wasmtime.Func):
                self._guarded(lambda f=function: f(self.store))  # type: ignore[misc]
        handle_request = exports.get("handle_request")
        handle_response = exports.get("handle_response")
        if not isinstance(handle_request, wasmtime.Func) or not isinstance(handle_response, wasmtime.Func):
            raise GuestError("the module must export handle_request and handle_response")
        self._handle_request = handle_request
        self._handle_response = handle_response

    def handle_request(self, exchange: Exchange) -> tuple[bool, int]:
        """(next, ctx) from the guest's ``handle_request``."""
        self._slot.exchange = exchange
        exchange.features |= self._slot.default_features
        ctx_next = self._guarded(lambda: self._handle_request(self.store))
        value = int(ctx_next) & 0xFFFFFFFFFFFFFFFF
        return bool(value & 1), value >> 32

    def handle_response(self, exchange: Exchange, ctx: int, is_error: bool) -> None:
        self._slot.exchange = exchange
        try:
            self._guarded(lambda: self._handle_response(self.store, _i32(ctx), int(is_error)))
        finally:
            self._slot.exchange = None

    def release(self) -> None:
        self._slot.exchange = None

    def _call(self, work: Callable[[], Any]) -> Any:
        self.store.set_epoch_deadline(max(1, round(self._guest.limits.timeout / TICK_SECONDS)))
        return work()

    def _guarded(self, work: Callable[[], Any]) -> Any:
        import wasmtime

        with shared_engine().ticker.running():
            try:
                return self._call(work)
            except wasmtime.ExitTrap as exc:
                if exit_code(exc) == 0:  # a WASI _start ending with proc_exit(0)
                    return None
                raise GuestError(f"the guest exited: {_cause(exc)}") from None
            except wasmtime.Trap as exc:
                if exc.trap_code == wasmtime.TrapCode.INTERRUPT:
                    raise GuestError(
                        f"the guest did not finish within {self._guest.limits.timeout:g}s and was stopped"
                    ) from None
                raise GuestError(f"the guest trapped: {_cause(exc)}") from None
            except wasmtime.WasmtimeError as exc:
                raise GuestError(f"the guest failed: {_cause(exc)}") from None


class HttpWasmGuest:
    """A compiled http-wasm guest, its configuration and its pool of idle instances."""

    def __init__(self, name: str, binary: bytes, config: bytes, limits: Limits, pool_size: int = 8) -> None:
        import wasmtime

        self.name = name
        self.config = config
        self.limits = limits
        self.pool_size = pool_size
        try:
            self.module = wasmtime.Module(shared_engine().engine, binary)
        except wasmtime.WasmtimeError as exc:
            raise GuestError(f"not a valid WebAssembly module: {_cause(exc)}") from None
        exports = {export.name for export in self.module.exports}
        missing = sorted({"memory", "handle_request", "handle_response"} - exports)
        if missing:
            raise GuestError(f"the module does not export {', '.join(missing)}: it is not an http-wasm guest")
        self.uses_wasi = False
        for item in self.module.imports:
            if item.module == "wasi_snapshot_preview1":
                self.uses_wasi = True
            elif item.module != ABI_MODULE or item.name not in _HOST_FUNCTIONS:
                raise GuestError(
                    f"the module imports {item.module}.{item.name}, which this host does not provide"
                )
        self._idle: list[GuestInstance] = []
        self._lock = threading.Lock()

    def idle(self) -> GuestInstance | None:
        """An idle instance, if one is pooled (never blocks)."""
        with self._lock:
            return self._idle.pop() if self._idle else None

    def acquire(self) -> GuestInstance:
        """An idle instance, or a new one (blocking when it makes one: call from a worker thread)."""
        return self.idle() or GuestInstance(self)

    def give_back(self, instance: GuestInstance) -> None:
        instance.release()
        with self._lock:
            if len(self._idle) < self.pool_size:
                self._idle.append(instance)

    def warm_up(self) -> None:
        """Instantiate once at start-up, so a guest failing its start function fails start-up."""
        self.give_back(GuestInstance(self))


# -- host functions ---------------------------------------------------------------------------------

_I32, _I64 = "i32", "i64"
_HOST_FUNCTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "log": ((_I32, _I32, _I32), ()),
    "log_enabled": ((_I32,), (_I32,)),
    "get_config": ((_I32, _I32), (_I32,)),
    "enable_features": ((_I32,), (_I32,)),
    "get_method": ((_I32, _I32), (_I32,)),
    "set_method": ((_I32, _I32), ()),
    "get_uri": ((_I32, _I32), (_I32,)),
    "set_uri": ((_I32, _I32), ()),
    "get_protocol_version": ((_I32, _I32), (_I32,)),
    "get_header_names": ((_I32, _I32, _I32), (_I64,)),
    "get_header_values": ((_I32, _I32, _I32, _I32, _I32), (_I64,)),
    "set_header_value": ((_I32, _I32, _I32, _I32, _I32), ()),
    "add_header_value": ((_I32, _I32, _I32, _I32, _I32), ()),
    "remove_header": ((_I32, _I32, _I32), ()),
    "read_body": ((_I32, _I32, _I32), (_I64,)),
    "write_body": ((_I32, _I32, _I32), ()),
    "get_status_code": ((), (_I32,)),
    "set_status_code": ((_I32,), ()),
    "get_source_addr": ((_I32, _I32), (_I32,)),
}


def _define_host(linker: wasmtime.Linker, slot: _Slot, guest: HttpWasmGuest) -> None:
    import wasmtime

    kinds = {_I32: wasmtime.ValType.i32(), _I64: wasmtime.ValType.i64()}
    host = _Host(slot, guest)
    for name, (params, results) in _HOST_FUNCTIONS.items():
        kind = wasmtime.FuncType([kinds[p] for p in params], [kinds[r] for r in results])
        linker.define_func(ABI_MODULE, name, kind, getattr(host, name), access_caller=True)


class _Host:
    """The ABI's functions over the instance's current exchange; ``caller`` reaches the memory."""

    def __init__(self, slot: _Slot, guest: HttpWasmGuest) -> None:
        self._slot = slot
        self._guest = guest

    def log(self, caller: Any, level: int, message: int, length: int) -> None:
        text = _read(caller, message, length).decode("utf-8", "replace")
        getattr(log, _LOG_LEVELS.get(level, "info"))("wasm guest", guest=self._guest.name, message=text)

    def log_enabled(self, caller: Any, level: int) -> int:
        return 1 if 0 <= level <= 2 else 0

    def get_config(self, caller: Any, buf: int, limit: int) -> int:
        return _write(caller, buf, limit, self._guest.config)

    def enable_features(self, caller: Any, features: int) -> int:
        wanted = features & SUPPORTED_FEATURES
        if self._slot.exchange is None:  # at start-up: for every request
            self._slot.default_features |= wanted
            return self._slot.default_features
        self._slot.exchange.features |= wanted
        return self._slot.exchange.features

    def get_method(self, caller: Any, buf: int, limit: int) -> int:
        return _write(caller, buf, limit, self._slot.current().method.encode())

    def set_method(self, caller: Any, ptr: int, length: int) -> None:
        exchange = self._slot.current()
        method = _read(caller, ptr, length).decode("latin-1")
        if not method or not method.isalpha():
            raise GuestError(f"invalid method {method!r}")
        exchange.method, exchange.changed = method.upper(), True

    def get_uri(self, caller: Any, buf: int, limit: int) -> int:
        return _write(caller, buf, limit, (self._slot.current().uri or "/").encode("latin-1"))

    def set_uri(self, caller: Any, ptr: int, length: int) -> None:
        exchange = self._slot.current()
        uri = _read(caller, ptr, length).decode("latin-1")
        if not uri.startswith("/") or any(c in uri for c in " \r\n\0"):
            raise GuestError(f"invalid URI {uri!r}: it must be an escaped path starting with /")
        exchange.uri, exchange.changed = uri, True

    def get_protocol_version(self, caller: Any, buf: int, limit: int) -> int:
        return _write(caller, buf, limit, self._slot.current().protocol.encode())

    def get_source_addr(self, caller: Any, buf: int, limit: int) -> int:
        return _write(caller, buf, limit, self._slot.current().source.encode())

    def get_header_names(self, caller: Any, kind: int, buf: int, limit: int) -> int:
        names = list(dict.fromkeys(name.lower() for name, _ in self._slot.current().headers(kind)))
        return _write_list(caller, buf, limit, names)

    def get_header_values(
        self, caller: Any, kind: int, name: int, name_len: int, buf: int, limit: int
    ) -> int:
        wanted = _read(caller, name, name_len).lower()
        values = [value for key, value in self._slot.current().headers(kind) if key.lower() == wanted]
        return _write_list(caller, buf, limit, values)

    def set_header_value(
        self, caller: Any, kind: int, name: int, name_len: int, value: int, value_len: int
    ) -> None:
        key, text = _header(caller, name, name_len, value, value_len)
        headers = self._slot.current().writable_headers(kind)
        headers[:] = [(k, v) for k, v in headers if k.lower() != key]
        headers.append((key, text))

    def add_header_value(
        self, caller: Any, kind: int, name: int, name_len: int, value: int, value_len: int
    ) -> None:
        key, text = _header(caller, name, name_len, value, value_len)
        self._slot.current().writable_headers(kind).append((key, text))

    def remove_header(self, caller: Any, kind: int, name: int, name_len: int) -> None:
        key = _read(caller, name, name_len).lower()
        headers = self._slot.current().writable_headers(kind)
        headers[:] = [(k, v) for k, v in headers if k.lower() != key]

    def read_body(self, caller: Any, kind: int, buf: int, limit: int) -> int:
        if limit <= 0:
            raise GuestError("read_body needs a buf_limit above zero")
        exchange = self._slot.current()
        body = _body(exchange, kind)
        offset = exchange.read_offsets[kind]
        chunk = body[offset : offset + limit]
        _memory(caller).write(caller, chunk, buf)
        exchange.read_offsets[kind] = offset + len(chunk)
        eof = exchange.read_offsets[kind] >= len(body)
        return (int(eof) << 32) | len(chunk)

    def write_body(self, caller: Any, kind: int, ptr: int, length: int) -> None:
        exchange = self._slot.current()
        data = _read(caller, ptr, length)
        if kind == REQUEST:
            previous = exchange.request_body if exchange.written[0] else b""
            exchange.request_body, exchange.written[0], exchange.changed = previous + data, True, True
        elif kind == RESPONSE:
            previous = exchange.response_body if exchange.written[1] else b""
            exchange.response_body, exchange.written[1] = previous + data, True
        else:
            raise GuestError(f"unknown body kind {kind}")

    def get_status_code(self, caller: Any) -> int:
        return self._slot.current().status

    def set_status_code(self, caller: Any, status: int) -> None:
        if not 100 <= status <= 999:
            raise GuestError(f"invalid status code {status}")
        self._slot.current().status = status


def _body(exchange: Exchange, kind: int) -> bytes:
    if kind == REQUEST:
        return exchange.request_body
    if kind == RESPONSE:
        return exchange.response_body
    raise GuestError(f"unknown body kind {kind}")


def _memory(caller: Any) -> wasmtime.Memory:
    import wasmtime

    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise GuestError("the guest exports no memory")
    return memory


def _read(caller: Any, ptr: int, length: int) -> bytes:
    if length < 0 or length > _HEADER_MAX * 16:
        raise GuestError(f"a length of {length} bytes is out of range")
    return bytes(_memory(caller).read(caller, ptr, ptr + length))


def _write(caller: Any, buf: int, limit: int, value: bytes) -> int:
    """The ABI's ``buf_limit`` rule: the value is written only when it fits; its length either way."""
    if 0 < len(value) <= limit:
        _memory(caller).write(caller, value, buf)
    return len(value)


def _write_list(caller: Any, buf: int, limit: int, values: list[bytes]) -> int:
    """NUL-terminated values, answered as ``count << 32 | len``."""
    if not values:
        return 0
    encoded = b"".join(value + b"\0" for value in values)
    if len(encoded) <= limit:
        _memory(caller).write(caller, encoded, buf)
    return (len(values) << 32) | len(encoded)


def _header(caller: Any, name: int, name_len: int, value: int, value_len: int) -> Header:
    key = _read(caller, name, name_len).lower()
    text = _read(caller, value, value_len)
    if not key or any(c in key for c in b" :\r\n\0") or any(c in text for c in b"\r\n\0"):
        raise GuestError(f"invalid header {key!r}")
    if len(text) > _HEADER_MAX:
        raise GuestError("a header value over 1 MiB")
    return key, text


def _i32(value: int) -> int:
    """An unsigned 32-bit ctx as the signed i32 wasmtime passes."""
    return value - (1 << 32) if value >= 1 << 31 else value


def _cause(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1].removeprefix("wasm trap: ") if lines else type(exc).__name__
