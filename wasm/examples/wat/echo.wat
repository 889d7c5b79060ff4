;; The echo function (id "echo"): answers the request body, as is. proxy-wasm ABI, Layotto's
;; proxy_get_id. Built by the tests with wasmtime.wat2wasm.
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 64) "echo")

  ;; A bump allocator, reset for every request; grows the memory when it must.
  (func $malloc (export "malloc") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $at) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))) (i32.const -1))
          (then (return (i32.const 0))))))
    (local.get $at))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (call $malloc (local.get 0)))

  (func (export "proxy_get_id")
    (drop (call $set_buffer (i32.const 8) (i32.const 0) (i32.const 4) (i32.const 64) (i32.const 4))))

  (func (export "proxy_on_context_create") (param i32 i32)
    (global.set $heap (i32.const 1024)))

  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $end i32) (result i32)
    ;; the body's address lands at 0, its size at 4
    (drop (call $get_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
    (drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
    (i32.const 0))
)
