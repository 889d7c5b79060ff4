;; A WASI command that asks for 256 MiB of memory and traps when it is refused.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1)) (then unreachable))))
