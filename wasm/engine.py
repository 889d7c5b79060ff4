"""One wasmtime Engine and one epoch ticker per sidecar, shared by everything that runs wasm:
functions (:class:`WasmEngine`, wasm/runner.py), ``bindings.wasm`` (wasm/wasi_command.py) and
``middleware.http.wasm`` (wasm/http_wasm.py), each through :func:`shared_engine`.

Wall-time limits use epoch interruption: the ticker thread advances the engine's epoch every
``TICK`` seconds while any user holds it (a function engine from start to close, a binding or
middleware run while it runs), and every call into a module runs with a deadline of a number of
ticks, so a guest stuck in a loop traps with ``interrupt`` at its deadline (fuel bounds
instructions, not time). Fuel is on for the whole engine (a wasmtime Config is per engine): it
bounds the function calls run on the event loop (wasm/runner.py); every other store is given
:data:`UNLIMITED_FUEL` and so never runs out (what fuel costs them is its counting, a few per cent
of a guest's own instructions, next to the WASI files and worker-thread hop of a binding call).

Compiling is CPU work: ``compile`` is meant to run in a worker thread. Modules are cached by the
SHA-256 of their bytes, so the same file installed twice (or reloaded unchanged) is compiled once.

At interpreter exit (:func:`_release_at_exit`) the wasmtime objects l8 keeps in module-level caches
are dropped and collected while wasmtime's bindings still exist: freed later, by the interpreter's
final teardown, their finalisers find the bindings gone and print "Exception ignored in ...
_delete ... 'NoneType' object is not callable".

wasmtime is imported here and only here (and by the modules that use an ``Engine``): a sidecar
with no wasm never loads it.
"""

from __future__ import annotations

import atexit
import gc
import hashlib
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import wasmtime

SWITCH_INTERVAL = 0.0002
TICK = 0.01
"""Seconds per epoch tick: the resolution of wall-time deadlines."""
UNLIMITED_FUEL = 2**62
"""The fuel of a store that fuel does not bound (its deadline does)."""


class EpochTicker:
    """Advances the engine's epoch every tick while at least one user holds it."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._holders = 0
        self._thread: threading.Thread | None = None

    def hold(self) -> None:
        with self._lock:
            self._holders += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._tick, name="l8-wasm-epoch", daemon=True)
                self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._holders -= 1

    @contextmanager
    def running(self) -> Iterator[None]:
        """Held for the block: a binding's or a middleware's run."""
        self.hold()
        try:
            yield
        finally:
            self.release()

    def _tick(self) -> None:
        import time

        while True:
            time.sleep(TICK)
            with self._lock:
                if not self._holders:
                    self._thread = None
                    return
            self._engine.increment_epoch()


@dataclass(frozen=True, slots=True)
class SharedEngine:
    engine: wasmtime.Engine
    ticker: EpochTicker


_shared: SharedEngine | None = None
_shared_lock = threading.Lock()
_at_exit: list[Callable[[], None]] = []


def shared_engine() -> SharedEngine:
    """The sidecar's one engine (epoch interruption and fuel on) and its ticker, made on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            import wasmtime

            config = wasmtime.Config()
            config.epoch_interruption = True
            config.consume_fuel = True  # bounds the function calls run on the event loop
            engine = wasmtime.Engine(config)
            _shared = SharedEngine(engine, EpochTicker(engine))
            atexit.register(_release_at_exit)
        return _shared


def on_exit(release: Callable[[], None]) -> None:
    """Registers ``release`` (dropping a module-level cache of wasmtime objects) to run at exit,
    before the engine itself is dropped."""
    _at_exit.append(release)


def _release_at_exit() -> None:
    global _shared
    for release in _at_exit:
        release()
    with _shared_lock:
        _shared = None
    gc.collect()


class ModuleError(Exception):
    """A module that cannot be used: not WebAssembly, invalid, or not following the ABI."""


class WasmEngine:
    """The engine, its module cache, the epoch ticker and the worker threads wasm runs on."""

    def __init__(self, workers: int = 32) -> None:
        shared = shared_engine()
        self.engine = shared.engine
        self._ticker = shared.ticker
        self._modules: dict[str, wasmtime.Module] = {}
        self._lock = threading.Lock()
        self._started = False
        self._lowered = False
        self._switch_interval = sys.getswitchinterval()
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="l8-wasm")

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._ticker.hold()

    def calls_on_threads(self) -> None:
        """Called before a function's call runs on a worker thread. The first time, lowers the
        interpreter's switch interval to SWITCH_INTERVAL, process-wide, until close: a worker
        thread back from wasm (or from a host call) waits for the GIL while the loop thread runs
        Python, and at the default 5 ms a call that crosses threads four times waited up to 20 ms
        (0.2 ms: proxy_get_state through a function on threads went from 1,800 to 2,500 calls a
        second). The interval only matters while another thread waits for the GIL, so it costs
        the rest of the sidecar nothing measurable (docs/performance.md); a sidecar whose
        functions all run on the loop (wasm/runner.py, wasm/suspend.py) never lowers it."""
        if self._started and not self._lowered:
            self._lowered = True
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))

    def close(self) -> None:
        """Waits for the calls running (each bounded by its deadline, which the ticker keeps
        advancing meanwhile), then lets go of the ticker; idempotent. Blocking: run it off the loop."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self._started:
            self._started = False
            self._ticker.release()
        if self._lowered:
            self._lowered = False
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
