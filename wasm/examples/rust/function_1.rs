//! Layotto's demo function 1 (id "id_1"): reads `name` from the body (a form or query string such
//! as "name=book1"), asks function "id_2" for its stock (Layotto's `proxy_invoke_service`) and
//! answers "There are N inventories for X.".

#[path = "proxy_wasm.rs"]
mod proxy_wasm;

use proxy_wasm::{Action, BufferType, HttpContext};

#[no_mangle]
pub extern "C" fn _start() {
    proxy_wasm::set_http_context(|_, _| Box::new(Inventory));
}

#[no_mangle]
pub extern "C" fn proxy_get_id() {
    proxy_wasm::set_id("id_1");
}

struct Inventory;

impl HttpContext for Inventory {
    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        let body = proxy_wasm::get_buffer(BufferType::HttpRequestBody, 0, body_size).unwrap_or_default();
        let name = field(&body, b"name=");
        let stock = proxy_wasm::invoke_service("id_2", "", name).unwrap_or_default();
        let mut answer = b"There are ".to_vec();
        answer.extend_from_slice(&stock);
        answer.extend_from_slice(b" inventories for ");
        answer.extend_from_slice(name);
        answer.push(b'.');
        let _ = proxy_wasm::set_buffer(BufferType::HttpResponseBody, &answer);
        Action::Continue
    }
}

/// The value of the first `&`-separated field starting with `prefix` ("name="), else empty.
fn field<'a>(body: &'a [u8], prefix: &[u8]) -> &'a [u8] {
    body.split(|&b| b == b'&').find_map(|f| f.strip_prefix(prefix)).unwrap_or_default()
}
