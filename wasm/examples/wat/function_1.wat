;; Layotto's demo function 1 (id "id_1"): reads `name` from the body (a form or query string such
;; as "name=book1"), asks function "id_2" for its stock (env.proxy_invoke_service, Layotto's host
;; function) and answers "There are N inventories for X.".
(module
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_invoke_service"
    (func $invoke (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 64) "id_1")
  (data (i32.const 72) "id_2")
  (data (i32.const 80) "There are ")
  (data (i32.const 96) " inventories for ")
  (data (i32.const 120) "name=")

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

  ;; 1 when the 5 bytes at $at are "name=" and start a field (first, or after '&')
  (func $is_name (param $body i32) (param $at i32) (result i32)
    (local $i i32)
    (if (i32.and (i32.ne (local.get $at) (local.get $body))
                 (i32.ne (i32.load8_u (i32.sub (local.get $at) (i32.const 1))) (i32.const 38)))
      (then (return (i32.const 0))))
    (block $differ
      (loop $each
        (br_if $differ (i32.ne (i32.load8_u (i32.add (local.get $at) (local.get $i)))
                               (i32.load8_u (i32.add (i32.const 120) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $each (i32.lt_u (local.get $i) (i32.const 5))))
      (return (i32.const 1)))
    (i32.const 0))

  ;; copies $size bytes from $from to $to; the end
  (func $append (param $to i32) (param $from i32) (param $size i32) (result i32)
    (memory.copy (local.get $to) (local.get $from) (local.get $size))
    (i32.add (local.get $to) (local.get $size)))

  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $end i32) (result i32)
    (local $body i32) (local $stop i32) (local $at i32) (local $name i32) (local $name_size i32)
    (local $answer i32) (local $answer_size i32) (local $out i32) (local $cursor i32)
    (drop (call $get_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
    (local.set $body (i32.load (i32.const 0)))
    (local.set $stop (i32.add (local.get $body) (i32.load (i32.const 4))))
    ;; find "name=", then the value up to '&' or the end
    (local.set $at (local.get $body))
    (block $found
      (loop $scan
        (br_if $found (i32.gt_u (i32.add (local.get $at) (i32.const 5)) (local.get $stop)))
        (if (call $is_name (local.get $body) (local.get $at))
          (then
            (local.set $name (i32.add (local.get $at) (i32.const 5)))
            (local.set $at (local.get $name))
            (block $value_end
              (loop $value
                (br_if $value_end (i32.ge_u (local.get $at) (local.get $stop)))
                (br_if $value_end (i32.eq (i32.load8_u (local.get $at)) (i32.const 38)))
                (local.set $at (i32.add (local.get $at) (i32.const 1)))
                (br $value)))
            (local.set $name_size (i32.sub (local.get $at) (local.get $name)))
            (br $found)))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $scan)))
    ;; the stock, from function id_2 (empty method, the name as its body): address at 8, size at 12
    ;; (size 0 first: a failed call writes nothing, and its answer is then empty, not the last one)
    (i32.store (i32.const 12) (i32.const 0))
    (drop (call $invoke (i32.const 72) (i32.const 4) (i32.const 0) (i32.const 0)
                        (local.get $name) (local.get $name_size) (i32.const 8) (i32.const 12)))
    (local.set $answer (i32.load (i32.const 8)))
    (local.set $answer_size (i32.load (i32.const 12)))
    (local.set $out (call $malloc (i32.add (i32.const 28) (i32.add (local.get $answer_size) (local.get $name_size)))))
    (local.set $cursor (call $append (local.get $out) (i32.const 80) (i32.const 10)))
    (local.set $cursor (call $append (local.get $cursor) (local.get $answer) (local.get $answer_size)))
    (local.set $cursor (call $append (local.get $cursor) (i32.const 96) (i32.const 17)))
    (local.set $cursor (call $append (local.get $cursor) (local.get $name) (local.get $name_size)))
    (i32.store8 (local.get $cursor) (i32.const 46))
    (drop (call $set_buffer (i32.const 1) (i32.const 0) (i32.const 0)
                            (local.get $out) (i32.sub (i32.add (local.get $cursor) (i32.const 1)) (local.get $out))))
    (i32.const 0))
)
