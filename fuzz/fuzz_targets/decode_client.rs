//! Any bytes, in either form: the client decoder never panics, and what it accepts re-encodes
//! to something it accepts again as the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shangliang_signaling::{Form, decode_client, encode_client};

fuzz_target!(|data: &[u8]| {
    for form in [Form::MsgPack, Form::Json] {
        if let Ok(msg) = decode_client(form, data) {
            let again = decode_client(form, &encode_client(form, &msg)).expect("re-encoded message decodes");
            assert_eq!(again, msg);
        }
    }
});
