"""WebAssembly functions that run inside the sidecar. Filled in by the wasm work; nothing here yet."""
