"""WASI command modules (``wasi_snapshot_preview1``, ``_start``) run once per call, as Dapr's
``bindings.wasm`` runs them: the call's bytes are stdin, stdout is the answer, stderr is kept for
the log and for the error when the command fails.

Each run gets a fresh store and instance (a command's ``_start`` runs once per instance) under two
limits: a memory cap (``Store.set_limits``: a ``memory.grow`` past it fails as the guest's own
out-of-memory) and a wall-clock deadline through wasmtime's epoch interruption, so a guest in an
infinite loop traps at its deadline instead of holding a worker thread forever. The engine and its
epoch ticker are the sidecar's one (wasm/engine.py); the ticker runs while a run is in flight.

Everything here blocks: callers run it in a worker thread (``asyncio.to_thread``). wasmtime is
imported on first use, so a sidecar without wasm components never loads it.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wasm.engine import TICK, UNLIMITED_FUEL, on_exit, shared_engine

if TYPE_CHECKING:
    import wasmtime

TICK_SECONDS = TICK
"""How often the epoch advances while a run is in flight: a deadline's resolution."""
STDERR_TAIL = 1024
"""How much of a failed command's stderr its error carries (its end: where the reason usually is)."""
WASI_MODULE = "wasi_snapshot_preview1"


class CommandError(Exception):
    """A module that cannot be used as a WASI command (not wasm, no ``_start``, an import that is
    not WASI preview 1)."""


class CommandFailed(Exception):
    """A run that did not end well: a non-zero exit, a trap, the deadline."""

    def __init__(self, message: str, stderr: bytes = b"") -> None:
        tail = stderr[-STDERR_TAIL:].decode("utf-8", "replace").strip()
        super().__init__(f"{message}; stderr: {tail}" if tail else message)
        self.stderr = stderr


class CommandTimeout(CommandFailed):
    """The run passed its deadline and was interrupted."""


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float
    """Wall-clock seconds a run may take."""
    memory_bytes: int
    """The most linear memory the guest may hold."""


@dataclass(frozen=True, slots=True)
class Outcome:
    stdout: bytes
    stderr: bytes


_modules: dict[str, wasmtime.Module] = {}
_modules_lock = threading.Lock()


def module_file(url: str) -> str:
    """The file a Dapr wasm ``url`` names: ``file://path`` (relative to the working directory
    unless it starts with ``/``) or a plain path. ValueError for ``http(s)://`` (l8 fetches no code
    over the network: the machines it runs on often have none, and a module pulled at start-up is
    code nobody reviewed) and any other scheme."""
    scheme, colon, rest = url.partition(":")
    if not colon or len(scheme) < 2:  # no scheme (or a Windows drive letter): a plain path
        return url
    if scheme == "file":
        return rest.removeprefix("//")
    if scheme in ("http", "https"):
        raise ValueError(
            f"url {url!r}: this sidecar does not fetch wasm modules over the network (no network "
            "here, and no unreviewed code at start-up); copy the module to disk and use file://"
        )
    raise ValueError(f"url {url!r}: unsupported scheme {scheme!r} (use file://)")


def compile_command(binary: bytes) -> wasmtime.Module:
    """The compiled module for these bytes (compiled once per content, then cached), checked to be
    a WASI command. Raises CommandError naming what is wrong."""
    import wasmtime

    key = hashlib.sha256(binary).hexdigest()
    with _modules_lock:
        cached = _modules.get(key)
    if cached is not None:
        return cached
    try:
        module = wasmtime.Module(shared_engine().engine, binary)
    except wasmtime.WasmtimeError as exc:
        raise CommandError(f"not a valid WebAssembly module: {_first_line(exc)}") from None
    if not any(export.name == "_start" for export in module.exports):
        raise CommandError("the module exports no _start function: it is not a WASI command")
    foreign = sorted({i.module for i in module.imports} - {WASI_MODULE})
    if foreign:
        raise CommandError(f"the module imports from {', '.join(foreign)}; only {WASI_MODULE} is provided")
    with _modules_lock:
        return _modules.setdefault(key, module)


def run_command(module: wasmtime.Module, stdin: bytes, argv: Sequence[str], limits: Limits) -> Outcome:
    """Run the command once. Returns its stdout and stderr when it ends with status 0; raises
    CommandFailed (CommandTimeout past the deadline) otherwise."""
    import wasmtime

    runtime = shared_engine()
    store = wasmtime.Store(runtime.engine)
    store.set_limits(memory_size=limits.memory_bytes)
    store.set_fuel(UNLIMITED_FUEL)  # the engine counts fuel for functions; the deadline bounds this
    store.set_epoch_deadline(max(1, round(limits.timeout / TICK_SECONDS)))
    wasi = wasmtime.WasiConfig()
    wasi.argv = list(argv)
    stdin_path, stdout_path, stderr_path = _streams(stdin)
    if stdin:
        wasi.stdin_file = stdin_path
    wasi.stdout_file = stdout_path
    wasi.stderr_file = stderr_path
    store.set_wasi(wasi)
    linker = _linker()
    failure: CommandFailed | None = None
    with runtime.ticker.running():
        try:
            instance = linker.instantiate(store, module)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            start(store)
        except wasmtime.ExitTrap as exc:
            code = exit_code(exc)
            if code != 0:
                failure = CommandFailed(f"the command exited with status {code}")
        except wasmtime.Trap as exc:
            if exc.trap_code == wasmtime.TrapCode.INTERRUPT:
                failure = CommandTimeout(
                    f"the command did not finish within {limits.timeout:g}s and was stopped"
                )
            else:
                failure = CommandFailed(f"the command trapped: {_cause(exc)}")
        except wasmtime.WasmtimeError as exc:
            failure = CommandFailed(f"the command failed: {_first_line(exc)}")
    del store
    stdout, stderr = _read(stdout_path), _read(stderr_path)
    if failure is not None:
        raise type(failure)(str(failure), stderr)
    return Outcome(stdout, stderr)


_scratch = threading.local()
_scratch_folders: list[str] = []


def _forget() -> None:
    """At exit: the compiled commands and this thread's linker (worker threads' go with them)."""
    with _modules_lock:
        _modules.clear()
    _scratch.__dict__.pop("linker", None)


on_exit(_forget)


def _linker() -> wasmtime.Linker:
    """This thread's linker with WASI defined (it holds no store: one serves every run)."""
    import wasmtime

    linker: wasmtime.Linker | None = getattr(_scratch, "linker", None)
    if linker is None:
        linker = _scratch.linker = wasmtime.Linker(shared_engine().engine)
        linker.define_wasi()
    return linker


def _streams(stdin: bytes) -> tuple[str, str, str]:
    """This thread's private files for stdin, stdout and stderr, emptied (stdin filled) for a run.
    wasmtime's Python API takes stdin from a file only, and its custom output callbacks run Python
    on wasmtime's own threads (one of which, released while the interpreter exits, aborts the
    process), so output goes to files too. One folder per worker thread, reused run after run
    (making and removing one per run cost more than the run), removed at exit. No data, no stdin
    (an empty stream), as in Dapr."""
    paths: tuple[str, str, str] | None = getattr(_scratch, "paths", None)
    if paths is None:
        folder = tempfile.mkdtemp(prefix="l8-wasm-")
        with _modules_lock:
            if not _scratch_folders:
                atexit.register(_remove_scratch)
            _scratch_folders.append(folder)
        paths = _scratch.paths = (
            os.path.join(folder, "stdin"),
            os.path.join(folder, "stdout"),
            os.path.join(folder, "stderr"),
        )
    for path, data in zip(paths, (stdin, b"", b""), strict=True):
        with open(path, "wb") as file:
            file.write(data)
    return paths


def _remove_scratch() -> None:
    for folder in _scratch_folders:
        shutil.rmtree(folder, ignore_errors=True)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        return b""


def exit_code(exc: wasmtime.ExitTrap) -> int:
    """The status a WASI ``proc_exit`` gave."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    digits = "".join(c for c in str(exc).split("\n", 1)[0] if c.isdigit())
    return int(digits) if digits else 1


def _cause(exc: BaseException) -> str:
    """A trap's reason: wasmtime's text ends with it, after the backtrace."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1].removeprefix("wasm trap: ") if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0]
