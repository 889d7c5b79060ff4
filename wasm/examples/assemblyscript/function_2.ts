// Layotto's demo function 2 (id "id_2"): the body is a book's name; answers the stock count the
// state store "state_demo" holds under that name (Layotto's `proxy_get_state`).

import { Action, BufferType, HttpContext, LogLevel, getBuffer, getState, log, setBuffer, setHttpContext, setId } from "./proxy_wasm";

export {
  malloc, proxy_abi_version_0_2_0, proxy_on_configure, proxy_on_context_create, proxy_on_delete,
  proxy_on_done, proxy_on_memory_allocate, proxy_on_request_body, proxy_on_request_headers,
  proxy_on_vm_start,
} from "./proxy_wasm";

export function proxy_get_id(): void {
  setId("id_2");
}

class Stock extends HttpContext {
  onRequestBody(bodySize: usize, endOfStream: bool): u32 {
    const name = getBuffer(BufferType.HttpRequestBody, 0, bodySize).data;
    const stock = getState("state_demo", name);
    if (!stock.ok) log(LogLevel.Info, "no stock recorded");
    setBuffer(BufferType.HttpResponseBody, stock.data);
    return Action.Continue;
  }
}

setHttpContext((contextId: u32): HttpContext => new Stock(contextId));
