"""The WAT examples in wasm/examples/, compiled by the tests (no .wasm is committed)."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "wasm" / "examples"


def build(name: str, folder: Path) -> Path:
    """``wasm/examples/<name>.wat`` compiled to ``folder/<name>.wasm``; returns its path."""
    import wasmtime

    path = folder / f"{name}.wasm"
    path.write_bytes(wasmtime.wat2wasm((EXAMPLES / f"{name}.wat").read_text(encoding="utf-8")))
    return path
