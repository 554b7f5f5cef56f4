//! Any bytes: the server-message decoder (used by clients and the load harness) never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shangliang_signaling::{Form, decode_server};

fuzz_target!(|data: &[u8]| {
    let _ = decode_server(Form::MsgPack, data);
    let _ = decode_server(Form::Json, data);
});
