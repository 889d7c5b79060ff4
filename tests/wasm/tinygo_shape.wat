;; The shape of Layotto's TinyGo demo functions (function_1.wasm / function_2.wasm, built by TinyGo
;; with Layotto's fork of proxy-wasm-go-sdk), written by hand because TinyGo cannot be installed
;; here, so Layotto's own binaries cannot be rebuilt from source.
;;
;; Imports: exactly the ones such a module declares. TinyGo links only the host calls a program
;; uses: the demo pair's proxy-wasm calls in module env (the SDK declares every hostcall of
;; proxywasm/internal/abi_hostcalls.go as a bodiless //export, which TinyGo turns into an import),
;; and the WASI calls of TinyGo's runtime (os.Args at start-up, println/panic output, exit).
;; Exports: the whole callback set of proxywasm/internal/abi_callback_*.go, proxy_abi_version_0_2_0,
;; TinyGo's _start and malloc, the memory, and Layotto's proxy_get_id.
;;
;; It behaves like TinyGo's runtime under the SDK: _start initialises (reads its arguments, prints a
;; line, sets the VM context) and must run first and once; proxy_on_context_create(root, 0) creates
;; the plugin context and traps before _start (the SDK panics without a VM context);
;; proxy_on_vm_start and proxy_on_configure trap unless the root context exists;
;; proxy_on_context_create(ctx, root) creates the HTTP context, which every request callback checks;
;; proxy_on_memory_allocate hands memory to the host (a bump heap, released when the HTTP context is
;; deleted, as the collector would); the request body is read with proxy_get_buffer_bytes; the
;; answer is appended to the HTTP response body with proxy_set_buffer_bytes (the SDK's
;; AppendHttpResponseBody: start MaxInt32, size 0), like function_2: the body names a key of the
;; state store state_demo and the answer is "There are <value> inventories for <key>.".
;; Every callback logs its name through proxy_log (Info), so a test can read the order the host
;; called them in.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_effective_context (param i32) (result i32)))
  (import "env" "proxy_get_state" (func $get_state (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_invoke_service" (func $invoke_service (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 2)
  ;; 0..1023: constant strings; 1024..1087: out-parameters of host calls; 8192..: the heap
  (data (i32.const 16) "_start")
  (data (i32.const 32) "proxy_get_id")
  (data (i32.const 48) "proxy_on_vm_start")
  (data (i32.const 80) "proxy_on_configure")
  (data (i32.const 112) "proxy_on_request_headers")
  (data (i32.const 144) "proxy_on_request_body")
  (data (i32.const 176) "proxy_on_request_trailers")
  (data (i32.const 208) "proxy_on_done")
  (data (i32.const 224) "proxy_on_log")
  (data (i32.const 240) "proxy_on_delete")
  (data (i32.const 256) "proxy_on_memory_allocate")
  (data (i32.const 288) "proxy_on_request_metadata")
  (data (i32.const 320) "proxy_on_response_headers")
  (data (i32.const 352) "proxy_on_response_metadata")
  (data (i32.const 384) "proxy_on_response_body")
  (data (i32.const 416) "proxy_on_response_trailers")
  (data (i32.const 448) "proxy_on_http_call_response")
  (data (i32.const 480) "proxy_on_new_connection")
  (data (i32.const 512) "proxy_on_downstream_data")
  (data (i32.const 544) "proxy_on_downstream_connection_close")
  (data (i32.const 592) "proxy_on_upstream_data")
  (data (i32.const 624) "proxy_on_upstream_connection_close")
  (data (i32.const 672) "proxy_on_queue_ready")
  (data (i32.const 704) "proxy_on_tick")
  (data (i32.const 720) "proxy_on_context_create root")
  (data (i32.const 752) "proxy_on_context_create http")
  (data (i32.const 784) "_start argv[0]=")
  (data (i32.const 800) "tinygo")
  (data (i32.const 816) "state_demo")
  (data (i32.const 832) "There are ")
  (data (i32.const 848) "0")
  (data (i32.const 864) " inventories for ")
  (data (i32.const 896) ".")
  (data (i32.const 912) "tinygo runtime initialised\n")
  (data (i32.const 944) "panic: proxy_get_buffer_bytes failed\n")
  (global $heap (mut i32) (i32.const 8192))
  (global $request_heap (mut i32) (i32.const 8192))
  (global $initialised (mut i32) (i32.const 0))
  (global $root (mut i32) (i32.const 0))
  (global $vm_started (mut i32) (i32.const 0))
  (global $http (mut i32) (i32.const 0))

  (func $log (param $ptr i32) (param $len i32)
    (drop (call $proxy_log (i32.const 2) (local.get $ptr) (local.get $len))))

  (func $alloc (param $size i32) (result i32)
    (local $at i32) (local $end i32)
    (local.set $at (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $at) (local.get $size)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))) (i32.const -1))
        (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $at))

  ;; copies $len bytes to $dst; returns the end of what was written
  (func $put (param $dst i32) (param $src i32) (param $len i32) (result i32)
    (memory.copy (local.get $dst) (local.get $src) (local.get $len))
    (i32.add (local.get $dst) (local.get $len)))

  (func $print (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 1040) (local.get $ptr))
    (i32.store (i32.const 1044) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 1040) (i32.const 1) (i32.const 1048))))

  (func $check_http (param $ctx i32)
    (if (i32.or (i32.eqz (global.get $http)) (i32.ne (local.get $ctx) (global.get $http))) (then unreachable)))

  (func (export "proxy_abi_version_0_2_0"))

  ;; TinyGo's entry: the runtime starts, os.Args is read, main() sets the VM context.
  (func (export "_start")
    (local $argc i32) (local $size i32) (local $argv i32) (local $buf i32) (local $line i32)
    (if (global.get $initialised) (then unreachable))
    (if (call $args_sizes_get (i32.const 1024) (i32.const 1028)) (then unreachable))
    (local.set $argc (i32.load (i32.const 1024)))
    (local.set $size (i32.load (i32.const 1028)))
    (local.set $argv (call $alloc (i32.mul (local.get $argc) (i32.const 4))))
    (local.set $buf (call $alloc (local.get $size)))
    (if (call $args_get (local.get $argv) (local.get $buf)) (then unreachable))
    (call $print (i32.const 1) (i32.const 912) (i32.const 27))
    (global.set $initialised (i32.const 1))
    ;; "_start argv[0]=<the first argument>" (its terminating NUL left out)
    (local.set $line (call $alloc (i32.add (local.get $size) (i32.const 16))))
    (call $log (local.get $line)
      (i32.sub
        (call $put (call $put (local.get $line) (i32.const 784) (i32.const 15)) (local.get $buf) (i32.sub (local.get $size) (i32.const 1)))
        (local.get $line))))

  (func (export "malloc") (param $size i32) (result i32)
    (call $alloc (local.get $size)))

  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (call $log (i32.const 256) (i32.const 24))
    (call $alloc (local.get $size)))

  ;; Layotto's: the function's id into the CallData buffer (SetCallData)
  (func (export "proxy_get_id")
    (if (i32.eqz (global.get $initialised)) (then unreachable))
    (call $log (i32.const 32) (i32.const 12))
    (drop (call $set_buffer (i32.const 8) (i32.const 0) (i32.const 0) (i32.const 800) (i32.const 6))))

  (func (export "proxy_on_context_create") (param $ctx i32) (param $parent i32)
    (if (i32.eqz (global.get $initialised)) (then unreachable))
    (if (i32.eqz (local.get $parent))
      (then
        (global.set $root (local.get $ctx))
        (call $log (i32.const 720) (i32.const 28)))
      (else
        (if (i32.ne (local.get $parent) (global.get $root)) (then unreachable))
        (global.set $http (local.get $ctx))
        (global.set $request_heap (global.get $heap))
        (call $log (i32.const 752) (i32.const 28)))))

  (func (export "proxy_on_vm_start") (param $root i32) (param $size i32) (result i32)
    (if (i32.eqz (global.get $root)) (then unreachable))
    (call $log (i32.const 48) (i32.const 17))
    (global.set $vm_started (i32.const 1))
    (i32.const 1))

  (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
    (if (i32.or (i32.eqz (global.get $vm_started)) (i32.ne (local.get $ctx) (global.get $root))) (then unreachable))
    (call $log (i32.const 80) (i32.const 18))
    (i32.const 1))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $headers i32) (param $end i32) (result i32)
    (call $check_http (local.get $ctx))
    (drop (call $set_effective_context (local.get $ctx)))
    (call $log (i32.const 112) (i32.const 24))
    (i32.const 0))

  (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $end i32) (result i32)
    (local $key i32) (local $key_len i32) (local $value i32) (local $value_len i32) (local $answer i32) (local $at i32)
    (call $check_http (local.get $ctx))
    (call $log (i32.const 144) (i32.const 21))
    ;; GetHttpRequestBody(0, size): the host allocates through proxy_on_memory_allocate
    (if (call $get_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 1056) (i32.const 1060))
      (then
        (call $print (i32.const 2) (i32.const 944) (i32.const 37))
        (call $proc_exit (i32.const 2))))
    (local.set $key (i32.load (i32.const 1056)))
    (local.set $key_len (i32.load (i32.const 1060)))
    (if (call $get_state (i32.const 816) (i32.const 10) (local.get $key) (local.get $key_len) (i32.const 1064) (i32.const 1068))
      (then
        (local.set $value (i32.const 848))
        (local.set $value_len (i32.const 1)))
      (else
        (local.set $value (i32.load (i32.const 1064)))
        (local.set $value_len (i32.load (i32.const 1068)))))
    (local.set $answer (call $alloc (i32.add (i32.add (local.get $key_len) (local.get $value_len)) (i32.const 32))))
    (local.set $at (call $put (local.get $answer) (i32.const 832) (i32.const 10)))
    (local.set $at (call $put (local.get $at) (local.get $value) (local.get $value_len)))
    (local.set $at (call $put (local.get $at) (i32.const 864) (i32.const 17)))
    (local.set $at (call $put (local.get $at) (local.get $key) (local.get $key_len)))
    (local.set $at (call $put (local.get $at) (i32.const 896) (i32.const 1)))
    ;; AppendHttpResponseBody
    (drop (call $set_buffer (i32.const 1) (i32.const 0x7fffffff) (i32.const 0)
      (local.get $answer) (i32.sub (local.get $at) (local.get $answer))))
    (i32.const 0))

  (func (export "proxy_on_request_trailers") (param $ctx i32) (param $trailers i32) (result i32)
    (call $check_http (local.get $ctx))
    (call $log (i32.const 176) (i32.const 25))
    (i32.const 0))

  (func (export "proxy_on_done") (param $ctx i32) (result i32)
    (call $log (i32.const 208) (i32.const 13))
    (i32.const 1))

  (func (export "proxy_on_log") (param $ctx i32)
    (call $log (i32.const 224) (i32.const 12)))

  (func (export "proxy_on_delete") (param $ctx i32)
    (call $log (i32.const 240) (i32.const 15))
    (if (i32.eq (local.get $ctx) (global.get $http))
      (then
        (global.set $http (i32.const 0))
        (global.set $heap (global.get $request_heap)))))

  ;; The rest of the SDK's callbacks: exported as TinyGo's build exports them; l8 does not call
  ;; them for a function (each logs its name, so a call would show in the order a test checks).
  (func (export "proxy_on_request_metadata") (param i32 i32) (result i32) (call $log (i32.const 288) (i32.const 25)) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (call $log (i32.const 320) (i32.const 25)) (i32.const 0))
  (func (export "proxy_on_response_metadata") (param i32 i32) (result i32) (call $log (i32.const 352) (i32.const 26)) (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (call $log (i32.const 384) (i32.const 22)) (i32.const 0))
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) (call $log (i32.const 416) (i32.const 26)) (i32.const 0))
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32) (call $log (i32.const 448) (i32.const 27)))
  (func (export "proxy_on_new_connection") (param i32) (result i32) (call $log (i32.const 480) (i32.const 23)) (i32.const 0))
  (func (export "proxy_on_downstream_data") (param i32 i32 i32) (result i32) (call $log (i32.const 512) (i32.const 24)) (i32.const 0))
  (func (export "proxy_on_downstream_connection_close") (param i32 i32) (call $log (i32.const 544) (i32.const 36)))
  (func (export "proxy_on_upstream_data") (param i32 i32 i32) (result i32) (call $log (i32.const 592) (i32.const 22)) (i32.const 0))
  (func (export "proxy_on_upstream_connection_close") (param i32 i32) (call $log (i32.const 624) (i32.const 34)))
  (func (export "proxy_on_queue_ready") (param i32 i32) (call $log (i32.const 672) (i32.const 20)))
  (func (export "proxy_on_tick") (param i32) (call $log (i32.const 704) (i32.const 13)))
)
