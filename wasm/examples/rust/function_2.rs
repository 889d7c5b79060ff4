//! Layotto's demo function 2 (id "id_2"): the body is a book's name; answers the stock count the
//! state store "state_demo" holds under that name (Layotto's `proxy_get_state`).

#[path = "proxy_wasm.rs"]
mod proxy_wasm;

use proxy_wasm::{Action, BufferType, HttpContext, LogLevel};

#[no_mangle]
pub extern "C" fn _start() {
    proxy_wasm::set_http_context(|_, _| Box::new(Stock));
}

#[no_mangle]
pub extern "C" fn proxy_get_id() {
    proxy_wasm::set_id("id_2");
}

struct Stock;

impl HttpContext for Stock {
    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        let name = proxy_wasm::get_buffer(BufferType::HttpRequestBody, 0, body_size).unwrap_or_default();
        let stock = proxy_wasm::get_state("state_demo", &name).unwrap_or_else(|_| {
            proxy_wasm::log(LogLevel::Info, "no stock recorded");
            Vec::new()
        });
        let _ = proxy_wasm::set_buffer(BufferType::HttpResponseBody, &stock);
        Action::Continue
    }
}
