;; A WASI command that never ends: bindings.wasm must stop it at its deadline.
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $forever (br $forever))))
