"""Example functions, kept as source and built on demand (no .wasm is committed).

``wat/``: the echo function and Layotto's demo pair (``function_1`` = ``id_1``, ``function_2`` =
``id_2``) in WebAssembly text, built with :func:`build`."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(name: str) -> bytes:
    """The binary of ``wat/<name>.wat``."""
    import wasmtime

    return bytes(wasmtime.wat2wasm((HERE / "wat" / f"{name}.wat").read_text(encoding="utf-8")))
