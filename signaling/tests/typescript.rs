//! The TypeScript types of `@shangliang/client` are the ones generated from this crate's serde
//! types (`shangliang_signaling::typescript::bindings`): a protocol change that is not carried
//! into the checked-in file fails here, in CI.

use std::path::PathBuf;

use shangliang_signaling::typescript::{CHECKED_IN_PATH, bindings};

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(CHECKED_IN_PATH)
}

#[test]
fn checked_in_typescript_types_are_the_generated_ones() {
    let generated = bindings();
    let path = checked_in();
    if std::env::var_os("SHANGLIANG_WRITE_TS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        // Regenerate into a temporary file so the difference can be looked at with diff.
        let tmp = std::env::temp_dir().join(format!("shangliang-protocol-{}.ts", std::process::id()));
        std::fs::write(&tmp, &generated).unwrap();
        panic!(
            "{CHECKED_IN_PATH} is not what the Rust types in signaling/src generate \
             (the generated text is in {}; `diff` them to see what changed).\n\
             Regenerate it with:\n    SHANGLIANG_WRITE_TS=1 cargo test -p shangliang-signaling --test typescript\n\
             then rebuild the client package (npm --prefix web-client/packages/client test) and commit the file.",
            tmp.display()
        );
    }
}

#[test]
fn generated_types_cover_every_message_and_error_code() {
    let ts = bindings();
    // Every tag the Rust enums put on the wire appears as a literal of the generated unions.
    for tag in ["auth", "sub", "unsub", "post", "cmd", "ping", "media", "consensus"] {
        assert!(ts.contains(&format!("\"t\": \"{tag}\"")), "ClientMsg tag {tag} missing");
    }
    for tag in ["welcome", "subscribed", "batch", "reset", "ack", "error", "reply", "event", "state", "pong", "consensus_reply"] {
        assert!(ts.contains(&format!("\"t\": \"{tag}\"")), "ServerMsg tag {tag} missing");
    }
    for code in ["bad_frame", "limit_reached", "cannot_discipline_moderator", "no_such_poll"] {
        assert!(ts.contains(&format!("\"{code}\"")), "ErrorCode {code} missing");
    }
    // 64-bit integers are numbers, never bigint; no import statements (one self-contained file).
    assert!(!ts.contains("bigint"));
    assert!(!ts.contains("import "));
}
