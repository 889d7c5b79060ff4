;; An http-wasm guest for middleware.http.wasm that rewrites a path prefix. Its guest config is
;; "<prefix>=<replacement>": a request whose URI starts with <prefix> goes on with <replacement> in
;; its place (the rest of the path and the query kept), e.g. "/shop/stock/=/v1.0/state/statestore/".
;; Other requests go on unchanged.
(module
  (import "http_handler" "get_config" (func $get_config (param i32 i32) (result i32)))
  (import "http_handler" "get_uri" (func $get_uri (param i32 i32) (result i32)))
  (import "http_handler" "set_uri" (func $set_uri (param i32 i32)))
  (import "http_handler" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  ;; 0..1023: the config; 1024..9215: the URI; 9216..: the new URI
  (global $config i32 (i32.const 0))
  (global $uri i32 (i32.const 1024))
  (global $new i32 (i32.const 9216))

  ;; the index of the first "=" in the config, or -1
  (func $separator (param $len i32) (result i32)
    (local $i i32)
    (block $none
      (loop $scan
        (br_if $none (i32.ge_u (local.get $i) (local.get $len)))
        (if (i32.eq (i32.load8_u (local.get $i)) (i32.const 61))
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i32.const -1))

  ;; whether mem[a:a+len] == mem[b:b+len]
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
    (local $config_len i32) (local $eq i32) (local $uri_len i32) (local $replacement_len i32)
    (local.set $config_len (call $get_config (global.get $config) (i32.const 1024)))
    (if (i32.gt_u (local.get $config_len) (i32.const 1024)) (then unreachable))
    (local.set $eq (call $separator (local.get $config_len)))
    (if (i32.lt_s (local.get $eq) (i32.const 0)) (then (return (i64.const 1))))
    (local.set $uri_len (call $get_uri (global.get $uri) (i32.const 8192)))
    (if (i32.gt_u (local.get $uri_len) (i32.const 8192)) (then (return (i64.const 1))))
    (if (i32.lt_u (local.get $uri_len) (local.get $eq)) (then (return (i64.const 1))))
    (if (i32.eqz (call $equal (global.get $uri) (global.get $config) (local.get $eq)))
      (then (return (i64.const 1))))
    ;; new URI = replacement + the URI after the prefix
    (local.set $replacement_len (i32.sub (i32.sub (local.get $config_len) (local.get $eq)) (i32.const 1)))
    (memory.copy (global.get $new) (i32.add (local.get $eq) (i32.const 1)) (local.get $replacement_len))
    (memory.copy
      (i32.add (global.get $new) (local.get $replacement_len))
      (i32.add (global.get $uri) (local.get $eq))
      (i32.sub (local.get $uri_len) (local.get $eq)))
    (call $set_uri (global.get $new)
      (i32.add (local.get $replacement_len) (i32.sub (local.get $uri_len) (local.get $eq))))
    (call $log (i32.const -1) (global.get $new)
      (i32.add (local.get $replacement_len) (i32.sub (local.get $uri_len) (local.get $eq))))
    (i64.const 1))

  (func (export "handle_response") (param i32 i32)))
