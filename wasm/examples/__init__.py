"""Example modules, kept as source by language and built on demand (no .wasm is committed):
``wat/``, ``rust/`` and ``assemblyscript/``, each built by :func:`wasm.examples.builder.build`
(wasm/examples/README.md)."""
