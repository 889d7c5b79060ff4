;; Layotto's demo function 2 (id "id_2"): the body is a book's name; answers the stock count the
;; state store "state_demo" holds under that name (env.proxy_get_state, Layotto's host function).
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_state" (func $get_state (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 64) "id_2")
  (data (i32.const 80) "state_demo")
  (data (i32.const 96) "no stock recorded")

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
    ;; the name: address at 0, size at 4; the value: address at 8, size at 12
    (drop (call $get_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
    (i32.store (i32.const 12) (i32.const 0))
    (if (i32.ne (call $get_state (i32.const 80) (i32.const 10) (i32.load (i32.const 0)) (i32.load (i32.const 4))
                                 (i32.const 8) (i32.const 12)) (i32.const 0))
      (then (drop (call $log (i32.const 2) (i32.const 96) (i32.const 17)))))
    (drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0) (i32.load (i32.const 8)) (i32.load (i32.const 12))))
    (i32.const 0))
)
