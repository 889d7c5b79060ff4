//! The proxy-wasm 0.2 ABI as Layotto's functions use it, written by hand (no crates: the registry
//! is not reachable here). Like the small `proxy-wasm` crate of Layotto's Rust demo it wraps the
//! two host functions Layotto adds, `proxy_get_state` and `proxy_invoke_service`; it also exports
//! the module side of the ABI (the allocator and the context callbacks) and routes each request's
//! callbacks to an `HttpContext` the function registers at `_start`.
//!
//! An example includes it with `#[path = "proxy_wasm.rs"] mod proxy_wasm;`.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    InvalidMemoryAccess = 6,
    Empty = 7,
    InternalFailure = 10,
    Unimplemented = 12,
    Other = 0xffff_ffff,
}

impl Status {
    fn from(code: u32) -> Status {
        match code {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::BadArgument,
            6 => Status::InvalidMemoryAccess,
            7 => Status::Empty,
            10 => Status::InternalFailure,
            12 => Status::Unimplemented,
            _ => Status::Other,
        }
    }
}

#[repr(u32)]
#[derive(Clone, Copy)]
pub enum BufferType {
    HttpRequestBody = 0,
    HttpResponseBody = 1,
    /// Layotto's: where `proxy_get_id` writes the function's id.
    CallData = 8,
}

#[repr(u32)]
#[derive(Clone, Copy)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

#[repr(u32)]
#[derive(Clone, Copy)]
pub enum Action {
    Continue = 0,
    Pause = 1,
}

mod host {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn proxy_log(level: u32, message: *const u8, size: usize) -> u32;
        pub fn proxy_get_buffer_bytes(
            kind: u32,
            start: usize,
            max_size: usize,
            return_data: *mut *mut u8,
            return_size: *mut usize,
        ) -> u32;
        pub fn proxy_set_buffer_bytes(kind: u32, start: usize, size: usize, data: *const u8, data_size: usize) -> u32;
        // Layotto's
        pub fn proxy_get_state(
            store: *const u8,
            store_size: usize,
            key: *const u8,
            key_size: usize,
            return_value: *mut *mut u8,
            return_size: *mut usize,
        ) -> u32;
        pub fn proxy_invoke_service(
            id: *const u8,
            id_size: usize,
            method: *const u8,
            method_size: usize,
            param: *const u8,
            param_size: usize,
            return_answer: *mut *mut u8,
            return_size: *mut usize,
        ) -> u32;
    }
}

/// Takes ownership of bytes the host placed in memory it got from `proxy_on_memory_allocate`.
fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    // The host asked for exactly `size` bytes, so capacity and length are both `size`.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

fn check(code: u32) -> Result<(), Status> {
    match Status::from(code) {
        Status::Ok => Ok(()),
        status => Err(status),
    }
}

pub fn log(level: LogLevel, message: &str) {
    unsafe { host::proxy_log(level as u32, message.as_ptr(), message.len()) };
}

pub fn get_buffer(kind: BufferType, start: usize, max_size: usize) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0);
    check(unsafe { host::proxy_get_buffer_bytes(kind as u32, start, max_size, &mut data, &mut size) })?;
    Ok(take(data, size))
}

/// Replaces the whole buffer, as Layotto's SDK does.
pub fn set_buffer(kind: BufferType, data: &[u8]) -> Result<(), Status> {
    check(unsafe { host::proxy_set_buffer_bytes(kind as u32, 0, data.len(), data.as_ptr(), data.len()) })
}

/// Names this function: the host routes requests for `id` to it.
pub fn set_id(id: &str) {
    let _ = set_buffer(BufferType::CallData, id.as_bytes());
}

/// Layotto's `GetState`: the value the state store `store` holds under `key`.
pub fn get_state(store: &str, key: &[u8]) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0);
    check(unsafe {
        host::proxy_get_state(store.as_ptr(), store.len(), key.as_ptr(), key.len(), &mut data, &mut size)
    })?;
    Ok(take(data, size))
}

/// Layotto's `InvokeService`: the function registered as `id` (else the app `id`'s `method`)
/// called with `param` as its body; its answer.
pub fn invoke_service(id: &str, method: &str, param: &[u8]) -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0);
    check(unsafe {
        host::proxy_invoke_service(
            id.as_ptr(),
            id.len(),
            method.as_ptr(),
            method.len(),
            param.as_ptr(),
            param.len(),
            &mut data,
            &mut size,
        )
    })?;
    Ok(take(data, size))
}

/// One request's callbacks (proxy-wasm's HTTP context); the defaults let the request through.
pub trait HttpContext {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_http_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_done(&mut self) -> bool {
        true
    }
}

type NewHttpContext = fn(context_id: u32, root_context_id: u32) -> Box<dyn HttpContext>;

#[derive(Default)]
struct Dispatcher {
    new_http_context: Option<NewHttpContext>,
    roots: Vec<u32>,
    http: HashMap<u32, Box<dyn HttpContext>>,
}

thread_local! {
    static DISPATCHER: RefCell<Dispatcher> = RefCell::new(Dispatcher::default());
}

/// Registers how each request's context is made (Layotto's demo calls it from `_start`).
pub fn set_http_context(new: NewHttpContext) {
    DISPATCHER.with(|d| d.borrow_mut().new_http_context = Some(new));
}

/// Runs `callback` on request `context_id`'s context, out of the dispatcher while it runs (a
/// host call may come back in through `proxy_on_memory_allocate`).
fn with_http<T>(context_id: u32, default: T, callback: impl FnOnce(&mut dyn HttpContext) -> T) -> T {
    let taken = DISPATCHER.with(|d| d.borrow_mut().http.remove(&context_id));
    match taken {
        None => default,
        Some(mut context) => {
            let result = callback(context.as_mut());
            DISPATCHER.with(|d| d.borrow_mut().http.insert(context_id, context));
            result
        }
    }
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_0() {}

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut memory: Vec<u8> = Vec::with_capacity(size);
    let at = memory.as_mut_ptr();
    std::mem::forget(memory);
    at
}

#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut u8 {
    proxy_on_memory_allocate(size)
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_root_context_id: u32, _plugin_configuration_size: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    DISPATCHER.with(|d| {
        let mut d = d.borrow_mut();
        if root_context_id == 0 {
            d.roots.push(context_id);
        } else if let Some(new) = d.new_http_context {
            d.http.insert(context_id, new(context_id, root_context_id));
        }
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, headers: usize, end_of_stream: u32) -> u32 {
    with_http(context_id, Action::Continue, |c| c.on_http_request_headers(headers, end_of_stream != 0)) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(context_id: u32, body_size: usize, end_of_stream: u32) -> u32 {
    with_http(context_id, Action::Continue, |c| c.on_http_request_body(body_size, end_of_stream != 0)) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
    with_http(context_id, true, |c| c.on_done()) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    DISPATCHER.with(|d| {
        let mut d = d.borrow_mut();
        d.http.remove(&context_id);
        d.roots.retain(|&root| root != context_id);
    });
}
