"""One wasmtime Engine per sidecar, with epoch interruption on, and the compiled modules it keeps.

Wall-time limits use epoch interruption: a ticker thread advances the engine's epoch every
``TICK`` seconds and every call into a module runs with a deadline of a number of ticks, so a
function stuck in a loop traps with ``interrupt`` at its deadline (fuel bounds instructions, not
time). Fuel is on too, but bounds only the calls run on the event loop (wasm/runner.py); the
others get more than they can use. Compiling is CPU work: ``compile`` is meant to run in a
worker thread. Modules are cached by the SHA-256 of their bytes, so the same file installed twice
(or reloaded unchanged) is compiled once.

wasmtime is imported here and only here (and by the modules that use an ``Engine``): a sidecar
with no wasm function never loads it.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import wasmtime

SWITCH_INTERVAL = 0.0002
TICK = 0.01
"""Seconds per epoch tick: the resolution of wall-time deadlines."""


class ModuleError(Exception):
    """A module that cannot be used: not WebAssembly, invalid, or not following the ABI."""


class WasmEngine:
    """The engine, its module cache, the epoch ticker and the worker threads wasm runs on."""

    def __init__(self, workers: int = 32) -> None:
        import wasmtime

        config = wasmtime.Config()
        config.epoch_interruption = True
        config.consume_fuel = True  # bounds the calls run on the event loop (wasm/runner.py)
        self.engine = wasmtime.Engine(config)
        self._modules: dict[str, wasmtime.Module] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._switch_interval = sys.getswitchinterval()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="l8-wasm")

    def start(self) -> None:
        # A worker thread back from wasm (or from a host call) waits for the GIL while the loop
        # thread runs Python; at the default 5 ms switch interval a call that crosses threads
        # four times waited up to 20 ms. 0.2 ms: proxy_get_state through a function went from
        # 1,800 to 2,500 calls a second (bench/wasm_bench.py). Process-wide, set once wasm starts.
        if self._ticker is None:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
            self._ticker = threading.Thread(target=self._tick, name="l8-wasm-epoch", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            self.engine.increment_epoch()

    def close(self) -> None:
        """Waits for the calls running (each bounded by its deadline, which the ticker keeps
        advancing meanwhile), then stops the ticker; idempotent. Blocking: run it off the loop."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
            sys.setswitchinterval(self._switch_interval)
        with self._lock:  # freed now, not by the collector at exit (when wasmtime's bindings are gone)
            self._modules.clear()

    @staticmethod
    def ticks(seconds: float) -> int:
        """The epoch deadline, in ticks, of a call allowed ``seconds`` of wall time."""
        return max(1, round(seconds / TICK) + 1)

    def compile(self, code: bytes) -> wasmtime.Module:
        """The compiled module of ``code`` (binary or text), from the cache when seen before."""
        import wasmtime

        digest = hashlib.sha256(code).hexdigest()
        with self._lock:
            cached = self._modules.get(digest)
        if cached is not None:
            return cached
        if code[:4] != b"\0asm":
            raise ModuleError("not a WebAssembly module (no \\0asm header)")
        try:
            module = wasmtime.Module(self.engine, code)
        except wasmtime.WasmtimeError as exc:
            raise ModuleError(f"invalid WebAssembly module: {_first_line(str(exc))}") from None
        with self._lock:
            self._modules[digest] = module
        return module

    def forget(self, code: bytes) -> None:
        with self._lock:
            self._modules.pop(hashlib.sha256(code).hexdigest(), None)

    @property
    def cached(self) -> int:
        return len(self._modules)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
