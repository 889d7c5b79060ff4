// Layotto's demo function 1 (id "id_1"): reads `name` from the body (a form or query string such
// as "name=book1"), asks function "id_2" for its stock (Layotto's `proxy_invoke_service`) and
// answers "There are N inventories for X.".

import { Action, BufferType, HttpContext, bytes, getBuffer, invokeService, setBuffer, setHttpContext, setId } from "./proxy_wasm";

export {
  malloc, proxy_abi_version_0_2_0, proxy_on_configure, proxy_on_context_create, proxy_on_delete,
  proxy_on_done, proxy_on_memory_allocate, proxy_on_request_body, proxy_on_request_headers,
  proxy_on_vm_start,
} from "./proxy_wasm";

export function proxy_get_id(): void {
  setId("id_1");
}

class Inventory extends HttpContext {
  onRequestBody(bodySize: usize, endOfStream: bool): u32 {
    const body = getBuffer(BufferType.HttpRequestBody, 0, bodySize).data;
    const name = field(body, bytes("name="));
    const stock = invokeService("id_2", "", name).data;
    setBuffer(BufferType.HttpResponseBody, concat([bytes("There are "), stock, bytes(" inventories for "), name, bytes(".")]));
    return Action.Continue;
  }
}

setHttpContext((contextId: u32): HttpContext => new Inventory(contextId));

/** The value of the first `&`-separated field starting with `prefix` ("name="), else empty. */
function field(body: Uint8Array, prefix: Uint8Array): Uint8Array {
  let start = 0;
  while (start <= body.length) {
    let end = start;
    while (end < body.length && body[end] != 0x26) end++; // '&'
    if (startsWith(body.subarray(start, end), prefix)) return body.subarray(start + prefix.length, end);
    start = end + 1;
  }
  return new Uint8Array(0);
}

function startsWith(text: Uint8Array, prefix: Uint8Array): bool {
  if (text.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (text[i] != prefix[i]) return false;
  return true;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let size = 0;
  for (let i = 0; i < parts.length; i++) size += parts[i].length;
  const out = new Uint8Array(size);
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i], at);
    at += parts[i].length;
  }
  return out;
}
