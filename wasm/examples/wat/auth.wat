;; An http-wasm guest for middleware.http.wasm that answers 401 itself unless the request's
;; Authorization header equals its guest config (e.g. "Bearer s3cret"); a request that has it
;; goes on to the sidecar.
(module
  (import "http_handler" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "http_handler" "get_header_values" (func $get_header_values (param i32 i32 i32 i32 i32) (result i64)))
  (import "http_handler" "set_status_code" (func $set_status_code (param i32)))
  (import "http_handler" "set_header_value" (func $set_header_value (param i32 i32 i32 i32 i32)))
  (import "http_handler" "write_body" (func $write_body (param i32 i32 i32)))
  (memory (export "memory") 1)
  ;; 0..1023: the config; 1024..5119: the header's values; 8192..: constant strings
  (data (i32.const 8192) "authorization")                ;; 13 bytes
  (data (i32.const 8224) "content-type")                 ;; 12 bytes
  (data (i32.const 8256) "text/plain")                   ;; 10 bytes
  (data (i32.const 8288) "www-authenticate")             ;; 16 bytes
  (data (i32.const 8320) "Bearer")                       ;; 6 bytes
  (data (i32.const 8352) "unauthorized by wasm\n")       ;; 21 bytes

  (func $equal (param $a i32) (param $b i32) (param $len i32) (result i32)
    (local $i i32)
    (block $differ
      (loop $each
        (if (i32.ge_u (local.get $i) (local.get $len)) (then (return (i32.const 1))))
        (br_if $differ (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                               (i32.load8_u (i32.add (local.get $b) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (i32.const 0))

  (func (export "handle_request") (result i64)
    (local $config_len i32) (local $count_len i64) (local $len i32)
    (local.set $config_len (call $get_config (i32.const 0) (i32.const 1024)))
    (local.set $count_len
      (call $get_header_values (i32.const 0) (i32.const 8192) (i32.const 13) (i32.const 1024) (i32.const 4096)))
    (local.set $len (i32.wrap_i64 (local.get $count_len)))
    ;; exactly one value (count 1), written (it fit), equal to the config (len counts the NUL)
    (if (i32.and
          (i32.and
            (i64.eq (i64.shr_u (local.get $count_len) (i64.const 32)) (i64.const 1))
            (i32.le_u (local.get $len) (i32.const 4096)))
          (i32.eq (local.get $len) (i32.add (local.get $config_len) (i32.const 1))))
      (then
        (if (call $equal (i32.const 0) (i32.const 1024) (local.get $config_len))
          (then (return (i64.const 1))))))
    (call $set_status_code (i32.const 401))
    (call $set_header_value (i32.const 1) (i32.const 8224) (i32.const 12) (i32.const 8256) (i32.const 10))
    (call $set_header_value (i32.const 1) (i32.const 8288) (i32.const 16) (i32.const 8320) (i32.const 6))
    (call $write_body (i32.const 1) (i32.const 8352) (i32.const 21))
    (i64.const 0))

  (func (export "handle_response") (param i32 i32)))
