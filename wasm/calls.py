"""Calling a module's exports cheaply.

wasmtime-py's ``Func.__call__`` asks the engine for the function's type and converts every value
through it on each call (about 50 us of the 330 us an echo request took). An export whose params
and results are all i32 (all of proxy-wasm's) is called here through wasmtime's C API directly,
with its arity read once and the value arrays reused; anything else goes through ``Func.__call__``.
This uses wasmtime-py's internal ``_ffi`` module (pinned in pyproject); when it is not there, every
call takes the public path.
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
        params = self._params
        for index, value in enumerate(args):
            params[index].kind = ffi.WASMTIME_I32.value  # type: ignore[assignment]
            params[index].of.i32 = value
        with enter_wasm(store) as trap:
            error = ffi.wasmtime_func_call(
                store._context(),
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
