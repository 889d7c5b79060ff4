"""Calling a module's exports, and being called by it, cheaply.

wasmtime-py's ``Func.__call__`` asks the engine for the function's type and converts every value
through it on each call (about 50 us of the 330 us an echo request took). An export whose params
and results are all i32 (all of proxy-wasm's) is called here through wasmtime's C API directly,
with its arity read once and the value arrays reused; anything else goes through ``Func.__call__``.
This uses wasmtime-py's internal ``_ffi`` module (pinned in pyproject); when it is not there, every
call takes the public path.

Host functions the other way: wasmtime-py's trampoline builds a Caller, converts each argument
through its type (``Val._from_raw``) and the result back, and its Memory API copies through an
intermediate bytearray; together about 10 us of each host call. :func:`define_raw` defines an
all-i32 host function on wasmtime's unchecked callback (raw values in, raw result out), and
:class:`RawMemory` reads and writes through the memory's base pointer: an echo call went from 65
to 40 us in-process (docs/performance.md).
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import wasmtime

try:
    from wasmtime import _ffi as ffi
    from wasmtime._func import enter_wasm

    _FAST = all(hasattr(ffi, name) for name in ("wasmtime_func_call", "wasmtime_val_t", "WASMTIME_I32"))
except ImportError:  # pragma: no cover - another wasmtime-py layout
    _FAST = False


class Export:
    """One export of one instance, callable with a store (or a host function's caller)."""

    __slots__ = ("_fast", "_params", "_results", "_results_count", "arity", "func")

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func) -> None:
        import wasmtime

        self.func = func
        kind = func.type(store)
        self.arity = len(kind.params)
        self._results_count = len(kind.results)
        i32 = wasmtime.ValType.i32()
        self._fast = _FAST and all(t == i32 for t in [*kind.params, *kind.results])
        if self._fast:
            self._params = (ffi.wasmtime_val_t * max(self.arity, 1))()
            self._results = (ffi.wasmtime_val_t * max(self._results_count, 1))()

    def __call__(self, store: Any, *args: int) -> Any:
        if not self._fast:
            return self.func(store, *args)
        return self.call_in(store._context(), *args)

    def call_in(self, context: Any, *args: int) -> Any:
        """The call, given a store's (or a host call's caller's) raw context; i32 exports only."""
        params = self._params
        for index, value in enumerate(args):
            params[index].kind = ffi.WASMTIME_I32.value  # type: ignore[assignment]
            params[index].of.i32 = value
        with enter_wasm(None) as trap:  # type: ignore[arg-type]
            error = ffi.wasmtime_func_call(
                context,
                ctypes.byref(self.func._func),
                params,
                self.arity,
                self._results,
                self._results_count,
                trap,
            )
            if error:
                import wasmtime

                raise wasmtime.WasmtimeError._from_ptr(error)
        return self._results[0].of.i32 if self._results_count == 1 else None


class RawMemory:
    """A module's memory seen from inside a host call: reads and writes through its base pointer
    (one C call for the base and one for the size per access, no intermediate bytearray)."""

    __slots__ = ("_context", "_memory")

    def __init__(self, context: Any, memory: wasmtime.Memory) -> None:
        self._context = context
        self._memory = ctypes.byref(memory._memory)

    def size(self) -> int:
        return int(ffi.wasmtime_memory_data_size(self._context, self._memory))

    def read(self, ptr: int, size: int) -> bytes:
        base = ffi.wasmtime_memory_data(self._context, self._memory)
        return ctypes.string_at(ctypes.addressof(base.contents) + ptr, size) if size else b""

    def write(self, ptr: int, data: bytes) -> None:
        if data:
            base = ffi.wasmtime_memory_data(self._context, self._memory)
            ctypes.memmove(ctypes.addressof(base.contents) + ptr, data, len(data))


RawHandler = Any
"""``handler(caller_context, *i32_params) -> int | None``: a host function taking raw i32s."""

_handlers: dict[int, tuple[RawHandler, int, int]] = {}
_next_handler = 0


def raw_functions() -> bool:
    """Whether host functions can be defined with :func:`define_raw` (wasmtime-py's _ffi is there)."""
    return _FAST and hasattr(ffi, "wasmtime_linker_define_func_unchecked")


def define_raw(
    linker: wasmtime.Linker, module: str, name: str, kind: wasmtime.FuncType, handler: RawHandler
) -> None:
    """Defines ``module.name`` (all params and results i32, at most one result) as ``handler``
    called with the caller's store context and the params as Python ints: wasmtime's unchecked
    callback, without wasmtime-py's trampoline converting each value through its type and building
    a Caller (about 10 us a host call). An exception raised by ``handler`` traps the call and is
    raised again where the export was called (wasmtime-py's own convention, see Export)."""
    global _next_handler
    _next_handler += 1
    key = _next_handler
    _handlers[key] = (handler, len(kind.params), len(kind.results))
    module_bytes, name_bytes = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        ctypes.create_string_buffer(module_bytes),
        len(module_bytes),
        ctypes.create_string_buffer(name_bytes),
        len(name_bytes),
        kind.ptr(),
        _trampoline,
        key,
        _finalize,
    )
    if error:
        import wasmtime

        raise wasmtime.WasmtimeError._from_ptr(error)


if _FAST:

    @ffi.wasmtime_func_unchecked_callback_t  # type: ignore[untyped-decorator]
    def _trampoline(env: int, caller: Any, values: Any, count: int) -> int:
        try:
            handler, params, results = _handlers[env]
            context = ffi.wasmtime_caller_context(caller)
            if params == 0:
                result = handler(context)
            elif params == 3:
                result = handler(context, values[0].i32, values[1].i32, values[2].i32)
            else:
                result = handler(context, *[values[i].i32 for i in range(params)])
            if results:
                values[0].i32 = result
            return 0
        except BaseException as exc:
            import wasmtime
            from wasmtime import _func

            _func.LAST_EXCEPTION = exc  # type: ignore[assignment]
            trap = wasmtime.Trap("python exception")._consume()
            return ctypes.cast(trap, ctypes.c_void_p).value or 0

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
    def _finalize(env: int) -> None:
        # Called by wasmtime when a store drops the function, possibly late in interpreter exit.
        handlers = _handlers
        if handlers is not None:
            handlers.pop(env or 0, None)
