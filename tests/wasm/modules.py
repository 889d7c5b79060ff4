"""Test modules in WebAssembly text: small probes of the ABI and of the limits."""

from __future__ import annotations

import wasmtime

ALLOCATOR = """
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func $malloc (export "malloc") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (local.get $at) (local.get $size)))
    (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32) (global.set $heap (i32.const 1024)))
"""

IMPORTS = """
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
"""


def module(
    id_: str, body: str, *, imports: str = IMPORTS, allocator: str = ALLOCATOR, get_id: bool = True
) -> bytes:
    """A module with id ``id_`` whose proxy_on_request_body runs ``body`` (params $size, result i32)."""
    export_id = (
        f'(data (i32.const 64) "{id_}")\n'
        f'(func (export "proxy_get_id") (drop (call $set_buffer (i32.const 8) (i32.const 0) '
        f"(i32.const {len(id_)}) (i32.const 64) (i32.const {len(id_)}))))"
        if get_id
        else ""
    )
    text = f"""(module {imports} {allocator} {export_id}
      (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $end i32) (result i32)
        {body}))"""
    return bytes(wasmtime.wat2wasm(text))


def answering_status(call: str) -> str:
    """A body that answers the one-byte WasmResult of ``call``."""
    return f"""(i32.store8 (i32.const 200) {call})
      (drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 200) (i32.const 1)))
      (i32.const 0)"""


LOOP = module("spin", "(loop $forever (br $forever)) (i32.const 0)")
BOMB = module(
    "bomb",
    "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable",
)
