"""Builds the examples from source, once: tests, benches and docs all call :func:`build`.

Each language has its folder and its toolchain (wasm/examples/README.md):

- ``wat``: WebAssembly text, compiled in-process by ``wasmtime.wat2wasm``;
- ``rust``: Debian's ``rustc`` with its wasm32 standard library (``libstd-rust-dev-wasm32``) and
  ``lld``, no crates; a source with ``fn main`` is a WASI command (``wasm32-wasi``), any other a
  library of proxy-wasm exports (``wasm32-unknown-unknown``, ``cdylib``);
- ``assemblyscript``: npm's ``assemblyscript``, installed by ``npm ci`` in its folder, on the
  ``minimal`` runtime.

A built module lands in ``wasm/examples/build/<language>/<key>/<name>.wasm`` (git ignores it),
where the key hashes the example's source, the shared files of its folder (the ABI bindings, npm's
lock file), the compiler's identity and the command line: a second build of unchanged sources only
reads and hashes a few small files.

``python -m wasm.examples.builder rust function_1 function_2 [--into DIR]`` builds from a shell
and prints the modules' paths (or copies them into DIR as ``<name>.wasm``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / "build"

RUSTC = Path("/usr/bin/rustc")
"""Debian's compiler, named by its full path on purpose: rustup's ``rustc`` (``~/.cargo/bin``)
usually comes first on PATH and has no wasm32 target installed (adding one needs the network),
while Debian's ``libstd-rust-dev-wasm32`` matches Debian's own ``rustc`` only."""
RUST_LINKER = Path("/usr/bin/rust-lld")
"""What rustc links wasm with: Debian's ``rustc`` ships the link, package ``lld`` its target."""
RUST_PACKAGES = "rustc libstd-rust-dev-wasm32 lld"

ASSEMBLYSCRIPT = HERE / "assemblyscript"
ASC = ASSEMBLYSCRIPT / "node_modules" / "assemblyscript" / "bin" / "asc.js"
NODE = "node"

TIMEOUT = 300.0
"""Seconds a compiler may take (a cold Rust build of one example takes well under one)."""


class ToolchainMissing(RuntimeError):
    """A language's compiler is not installed; the message names what to install."""


class BuildFailed(RuntimeError):
    """The compiler refused the source; the message carries its output."""


@dataclass(frozen=True)
class Language:
    folder: str
    suffix: str
    shared: Callable[[Path], list[Path]]
    """The files in an example's folder every build there depends on, besides the example."""
    compile: Callable[[Path, Path], None]
    """Compiles the source to the output path; raises ToolchainMissing or BuildFailed."""
    identity: Callable[[Path], str]
    """The compiler and command line for this source, as part of the cache key."""


def build(language: str, name: str) -> Path:
    """The module built from ``wasm/examples/<language>/<name>.<suffix>``, compiled on the first
    call for its sources and taken from the build folder after that."""
    spec = _language(language)
    source = HERE / spec.folder / f"{name}{spec.suffix}"
    if not source.is_file():
        known = ", ".join(examples(language))
        raise FileNotFoundError(f"no {language} example {name!r} in {source.parent} (there are: {known})")
    digest = hashlib.sha256(spec.identity(source).encode())
    for path in [source, *sorted(spec.shared(source.parent))]:
        digest.update(f"\0{path.relative_to(HERE)}\0".encode())
        digest.update(path.read_bytes())
    # Named <name>.wasm in a folder of its key: a WASI command's argv[0] is its file's name.
    built = CACHE / language / digest.hexdigest()[:16] / f"{name}.wasm"
    if built.is_file():
        return built
    built.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=built.parent) as scratch:
        output = Path(scratch) / built.name
        spec.compile(source, output)
        # Renamed into place whole: a concurrent build of the same sources writes the same bytes.
        os.replace(output, built)
    for stale in (CACHE / language).glob(f"*/{name}.wasm"):
        if stale != built:
            stale.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # other examples' builds still in it
                stale.parent.rmdir()
    return built


def examples(language: str) -> list[str]:
    """The names of ``language``'s examples (its shared modules are not examples)."""
    spec = _language(language)
    folder = HERE / spec.folder
    return sorted(p.stem for p in folder.glob(f"*{spec.suffix}") if p.stem not in _SHARED)


def _language(language: str) -> Language:
    try:
        return LANGUAGES[language]
    except KeyError:
        raise ValueError(f"unknown example language {language!r} (known: {', '.join(LANGUAGES)})") from None


# -- WebAssembly text ------------------------------------------------------------------------------


def _wat(source: Path, output: Path) -> None:
    import wasmtime

    try:
        output.write_bytes(wasmtime.wat2wasm(source.read_text(encoding="utf-8")))
    except wasmtime.WasmtimeError as exc:
        raise BuildFailed(f"{source.name}: {exc}") from None


# -- Rust ------------------------------------------------------------------------------------------


def _rust_target(source: Path) -> tuple[str, str]:
    """(target, crate type): a command with ``fn main`` for WASI, else proxy-wasm exports."""
    if "fn main()" in source.read_text(encoding="utf-8"):
        return "wasm32-wasi", "bin"
    return "wasm32-unknown-unknown", "cdylib"


def _rust_command(source: Path, output: Path) -> list[str]:
    target, crate_type = _rust_target(source)
    return [
        str(RUSTC), "--edition", "2021", "--target", target, "--crate-type", crate_type,
        "-O", "-C", "strip=symbols", "-D", "warnings", "-o", str(output), str(source),
    ]  # fmt: skip


def _rust_identity(source: Path) -> str:
    return _tool_identity(RUSTC) + " ".join(_rust_command(source, Path("out.wasm"))[1:])


def _rust(source: Path, output: Path) -> None:
    target, _ = _rust_target(source)
    if not RUSTC.is_file():
        raise ToolchainMissing(
            f"the Rust examples need Debian's rustc at {RUSTC}, which is missing: install Debian's "
            f"packages {RUST_PACKAGES} (`make toolchains`, or apt-get install {RUST_PACKAGES})"
        )
    if not (RUSTC.parent.parent / "lib" / "rustlib" / target / "lib").is_dir():
        raise ToolchainMissing(
            f"{RUSTC} has no standard library for {target}: install Debian's package "
            f"libstd-rust-dev-wasm32 (`make toolchains`)"
        )
    if not RUST_LINKER.exists():
        raise ToolchainMissing(
            f"{RUSTC} links wasm with {RUST_LINKER}, which is missing or dangling: install Debian's "
            f"package lld (`make toolchains`)"
        )
    _run(_rust_command(source, output), source, cwd=output.parent)


# -- AssemblyScript --------------------------------------------------------------------------------

_ASC_FLAGS = ["--runtime", "minimal", "--optimize", "--noAssert", "--use", "abort="]
"""``minimal``: the functions collect garbage themselves at the end of each request; ``abort=``
drops the ``env.abort`` import (a failed assertion traps instead), which no proxy-wasm host has."""


def _assemblyscript_shared(folder: Path) -> list[Path]:
    return [folder / "proxy_wasm.ts", folder / "package-lock.json"]


def _assemblyscript(source: Path, output: Path) -> None:
    node = shutil.which(NODE)
    if node is None:
        raise ToolchainMissing("the AssemblyScript examples need Node.js: install Debian's package nodejs")
    if not ASC.is_file():
        raise ToolchainMissing(
            f"the AssemblyScript examples need npm's package assemblyscript in {ASSEMBLYSCRIPT}: "
            f"run `make examples` (or `npm ci` in that folder)"
        )
    _run([node, str(ASC), source.name, "-o", str(output), *_ASC_FLAGS], source, cwd=source.parent)


# -- running a compiler ----------------------------------------------------------------------------


def _tool_identity(tool: Path) -> str:
    """A new compiler (an upgrade) is a new key: its path, size and modification time."""
    try:
        stat = tool.stat()
    except OSError:
        return f"{tool} missing "
    return f"{tool} {stat.st_size} {stat.st_mtime_ns} "


def _run(command: list[str], source: Path, cwd: Path) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"{source.name}: {Path(command[0]).name} took over {TIMEOUT:.0f}s") from None
    if done.returncode != 0:
        output = (done.stderr + done.stdout).strip()
        raise BuildFailed(f"{source.name} did not compile (exit {done.returncode}):\n{output}")


_SHARED = {"proxy_wasm"}
"""The shared ABI bindings of the Rust and AssemblyScript folders: included, not built."""

LANGUAGES: dict[str, Language] = {
    "wat": Language("wat", ".wat", lambda folder: [], _wat, lambda source: f"wasmtime {version('wasmtime')}"),
    "rust": Language("rust", ".rs", lambda folder: [folder / "proxy_wasm.rs"], _rust, _rust_identity),
    "assemblyscript": Language(
        "assemblyscript",
        ".ts",
        _assemblyscript_shared,
        _assemblyscript,
        lambda source: _tool_identity(ASC) + " ".join(_ASC_FLAGS),
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wasm.examples.builder", description="Builds examples.")
    parser.add_argument("language", choices=sorted(LANGUAGES))
    parser.add_argument("names", nargs="*", help="examples to build (default: all of the language's)")
    parser.add_argument("--into", type=Path, help="copy each module into this folder as <name>.wasm")
    arguments = parser.parse_args(argv)
    try:
        for name in arguments.names or examples(arguments.language):
            built = build(arguments.language, name)
            if arguments.into is not None:
                arguments.into.mkdir(parents=True, exist_ok=True)
                built = Path(shutil.copyfile(built, arguments.into / f"{name}.wasm"))
            print(built)
    except (ToolchainMissing, BuildFailed, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
