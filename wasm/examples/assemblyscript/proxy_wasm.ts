// The proxy-wasm 0.2 ABI as Layotto's functions use it, written by hand (no other packages): the
// host functions declared as imports of module "env" (Layotto's `proxy_get_state` and
// `proxy_invoke_service` among them), the module's side of the ABI (the allocator the host gives
// buffers through, the context callbacks) and a dispatcher that hands each request's callbacks to
// the HttpContext the function registers. A function re-exports the callbacks from its entry file.

@external("env", "proxy_log")
declare function proxy_log(level: u32, message: usize, size: usize): u32;

@external("env", "proxy_get_buffer_bytes")
declare function proxy_get_buffer_bytes(kind: u32, start: usize, maxSize: usize, returnData: usize, returnSize: usize): u32;

@external("env", "proxy_set_buffer_bytes")
declare function proxy_set_buffer_bytes(kind: u32, start: usize, size: usize, data: usize, dataSize: usize): u32;

@external("env", "proxy_get_state")
declare function proxy_get_state(store: usize, storeSize: usize, key: usize, keySize: usize, returnValue: usize, returnSize: usize): u32;

@external("env", "proxy_invoke_service")
declare function proxy_invoke_service(id: usize, idSize: usize, method: usize, methodSize: usize, param: usize, paramSize: usize, returnAnswer: usize, returnSize: usize): u32;

export namespace WasmResult {
  export const Ok: u32 = 0;
  export const NotFound: u32 = 1;
}

export namespace BufferType {
  export const HttpRequestBody: u32 = 0;
  export const HttpResponseBody: u32 = 1;
  /** Layotto's: where `proxy_get_id` writes the function's id. */
  export const CallData: u32 = 8;
}

export namespace LogLevel {
  export const Info: u32 = 2;
  export const Warn: u32 = 3;
}

export namespace Action {
  export const Continue: u32 = 0;
}

/** Where the host writes an answer's address and size. */
const RETURN_DATA = memory.data(4);
const RETURN_SIZE = memory.data(4);

/** A host call's outcome: the bytes it answered, or its WasmResult. */
export class Answer {
  constructor(public status: u32, public data: Uint8Array) {}

  get ok(): bool {
    return this.status == WasmResult.Ok;
  }
}

/** The answer the host placed in memory it got from `malloc`, copied out and the block freed. */
function take(status: u32): Answer {
  const size = status == WasmResult.Ok ? <i32>load<u32>(RETURN_SIZE) : 0;
  const data = new Uint8Array(size);
  if (size > 0) {
    const at = <usize>load<u32>(RETURN_DATA);
    memory.copy(data.dataStart, at, size);
    heap.free(at);
  }
  return new Answer(status, data);
}

export function bytes(text: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(text));
}

export function log(level: u32, message: string): void {
  const text = bytes(message);
  proxy_log(level, text.dataStart, text.length);
}

export function getBuffer(kind: u32, start: usize, maxSize: usize): Answer {
  store<u32>(RETURN_DATA, 0);
  store<u32>(RETURN_SIZE, 0);
  return take(proxy_get_buffer_bytes(kind, start, maxSize, RETURN_DATA, RETURN_SIZE));
}

/** Replaces the whole buffer, as Layotto's SDK does. */
export function setBuffer(kind: u32, data: Uint8Array): u32 {
  return proxy_set_buffer_bytes(kind, 0, data.length, data.dataStart, data.length);
}

/** Names this function: the host routes requests for `id` to it (Layotto's `registerId`). */
export function setId(id: string): void {
  setBuffer(BufferType.CallData, bytes(id));
}

/** Layotto's `GetState`: the value the state store `storeName` holds under `key`. */
export function getState(storeName: string, key: Uint8Array): Answer {
  const name = bytes(storeName);
  store<u32>(RETURN_SIZE, 0);
  return take(proxy_get_state(name.dataStart, name.length, key.dataStart, key.length, RETURN_DATA, RETURN_SIZE));
}

/** Layotto's `InvokeService`: the function registered as `id` (else the app `id`'s `method`)
 *  called with `param` as its body; its answer. */
export function invokeService(id: string, method: string, param: Uint8Array): Answer {
  const target = bytes(id);
  const verb = bytes(method);
  store<u32>(RETURN_SIZE, 0);
  return take(
    proxy_invoke_service(
      target.dataStart, target.length, verb.dataStart, verb.length, param.dataStart, param.length,
      RETURN_DATA, RETURN_SIZE,
    ),
  );
}

/** One request's callbacks (proxy-wasm's HTTP context); the defaults let the request through. */
export class HttpContext {
  constructor(public contextId: u32) {}

  onRequestHeaders(headers: usize, endOfStream: bool): u32 {
    return Action.Continue;
  }

  onRequestBody(bodySize: usize, endOfStream: bool): u32 {
    return Action.Continue;
  }

  onDone(): bool {
    return true;
  }
}

let newHttpContext: (contextId: u32) => HttpContext = (contextId: u32): HttpContext => new HttpContext(contextId);
const contexts = new Map<u32, HttpContext>();

/** Registers how each request's context is made (a function does it at its top level). */
export function setHttpContext(make: (contextId: u32) => HttpContext): void {
  newHttpContext = make;
}

export function proxy_abi_version_0_2_0(): void {}

export function malloc(size: usize): usize {
  return heap.alloc(size);
}

export function proxy_on_memory_allocate(size: usize): usize {
  return heap.alloc(size);
}

export function proxy_on_vm_start(rootContextId: u32, vmConfigurationSize: usize): u32 {
  return 1;
}

export function proxy_on_configure(rootContextId: u32, pluginConfigurationSize: usize): u32 {
  return 1;
}

export function proxy_on_context_create(contextId: u32, rootContextId: u32): void {
  if (rootContextId != 0) contexts.set(contextId, newHttpContext(contextId));
}

export function proxy_on_request_headers(contextId: u32, headers: usize, endOfStream: u32): u32 {
  return contexts.has(contextId) ? contexts.get(contextId).onRequestHeaders(headers, endOfStream != 0) : Action.Continue;
}

export function proxy_on_request_body(contextId: u32, bodySize: usize, endOfStream: u32): u32 {
  return contexts.has(contextId) ? contexts.get(contextId).onRequestBody(bodySize, endOfStream != 0) : Action.Continue;
}

export function proxy_on_done(contextId: u32): u32 {
  return contexts.has(contextId) ? <u32>contexts.get(contextId).onDone() : 1;
}

export function proxy_on_delete(contextId: u32): void {
  if (contexts.has(contextId)) contexts.delete(contextId);
  // The minimal runtime collects only when asked, and only with no managed value on the stack:
  // here, at the end of a request, called straight from the host.
  __collect();
}
