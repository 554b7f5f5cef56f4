//! The shangliang wire protocol.
//!
//! Every message is one websocket frame holding one object with a string tag `t`.
//! The normal form is a **binary** frame with MessagePack (maps with string keys, exactly the
//! shape of the JSON form); the debugging form is a **text** frame with JSON. A connection's
//! form is chosen by the first frame the client sends and kept for the whole connection.
//! `docs/protocol.md` is the reference; this crate is the executable form of it.
//!
//! No I/O lives here: [`decode_client`] turns a frame into a [`ClientMsg`] under the limits of
//! [`limits`], [`encode_server`] turns a [`ServerMsg`] into frame bytes, and [`encode_batch`]
//! builds the one shared `batch` frame per topic per flush out of items encoded once
//! ([`encode_item`]).

mod codec;
mod identity;
mod ids;
pub mod limits;
pub mod media;
mod messages;
pub mod consult;
pub mod typescript;

pub use codec::{
    DecodeError, Form, decode_client, decode_server, encode_batch, encode_client, encode_item,
    encode_server,
};
pub use identity::{Author, Org, OrgLevel, Role};
pub use ids::{ActivityId, Epoch, InvalidId, NodeId, ParticipantId, RoomId, Seq};
pub use messages::*;

/// The protocol version this crate speaks. A client sends it in `auth`; the server refuses
/// other versions with [`ErrorCode::VersionUnsupported`] and close code [`close::VERSION`].
pub const PROTOCOL_VERSION: u16 = 1;

/// Websocket close codes the hub uses, with the reason text it sends.
pub mod close {
    /// Normal closure (client said goodbye, or the server is shutting down).
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown, restart).
    pub const GOING_AWAY: u16 = 1001;
    /// A frame was larger than [`crate::limits::MAX_CLIENT_FRAME_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// Too many malformed or unknown frames in a row: the peer does not speak this protocol.
    pub const PROTOCOL: u16 = 4400;
    /// `auth` was missing, its token invalid, forged or expired.
    pub const UNAUTHENTICATED: u16 = 4401;
    /// The client spoke a protocol version the server does not support.
    pub const VERSION: u16 = 4426;
    /// The client could not keep up with delivery for too long (sustained lag).
    pub const SLOW_CONSUMER: u16 = 4408;
    /// The client sent frames faster than the per-connection limit for too long (flood).
    pub const FLOOD: u16 = 4429;
    /// No `auth` arrived within the handshake time limit.
    pub const AUTH_TIMEOUT: u16 = 4402;
    /// The server is over its connection limit.
    pub const OVERLOADED: u16 = 4503;
}
