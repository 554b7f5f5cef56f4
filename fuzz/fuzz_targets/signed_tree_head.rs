//! Signed tree heads from arbitrary JSON: parsing never panics, and nothing verifies under the
//! hub's key except the one head it signed (any other is a forgery).
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shangliang::record::merkle::{LogKey, SignedTreeHead, TreeHead};
use shangliang_signaling::ActivityId;

fn signed() -> &'static (LogKey, SignedTreeHead) {
    static S: OnceLock<(LogKey, SignedTreeHead)> = OnceLock::new();
    S.get_or_init(|| {
        let key = LogKey::from_seed(&[7; 32]);
        let sth = key.sign(&ActivityId::new("demo").unwrap(), TreeHead { size: 5, root: [3; 32] }, 1_700_000_000_000);
        (key, sth)
    })
}

fuzz_target!(|data: &[u8]| {
    let (key, genuine) = signed();
    if let Ok(sth) = serde_json::from_slice::<SignedTreeHead>(data) {
        if sth.verify(&key.public()).is_ok() {
            assert_eq!(&sth, genuine, "a head the hub never signed verified");
        }
    }
});
