//! Hard limits of the protocol. The server enforces every one of them; a client should too.

/// Largest frame a client may send, in bytes (both forms). Larger frames close the connection
/// with [`crate::close::TOO_BIG`].
pub const MAX_CLIENT_FRAME_BYTES: usize = 16 * 1024;
/// Deepest nesting of arrays and maps in a client frame (the deepest message is 4 levels): a
/// frame nested deeper is `bad_frame`, checked before decoding, so that a small frame of
/// thousands of nested arrays cannot exhaust the decoder's stack.
pub const MAX_CLIENT_NESTING: usize = 32;
/// Longest comment or question, in Unicode scalar values, after trimming and NFC normalisation.
pub const MAX_TEXT_CHARS: usize = 500;
/// Longest display name, in Unicode scalar values.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest identifier (activity, topic), in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Longest token, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest moderation reason, in Unicode scalar values.
pub const MAX_REASON_CHARS: usize = 200;
/// Most topics one connection may subscribe to at once.
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// Most items in the snapshot of a `reset`.
pub const SNAPSHOT_ITEMS: usize = 50;
/// The most items a fresh `sub` may ask for with `last` (more is served as this many).
pub const MAX_SUB_LAST: u32 = 100;
/// Longest SDP (offer or answer), in bytes.
pub const MAX_SDP_BYTES: usize = 12 * 1024;
