//! A WASI command for `bindings.wasm`: stdin upper-cased to stdout, each argument (the binding's
//! `args` metadata) on a line of its own after it.

use std::io::{self, Read, Write};

fn main() {
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input).expect("stdin");
    let mut out = io::stdout().lock();
    out.write_all(&input.to_ascii_uppercase()).expect("stdout");
    for arg in std::env::args().skip(1) {
        writeln!(out, "{}", arg).expect("stdout");
    }
}
