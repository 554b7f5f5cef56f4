//! shangliang: the real-time hub of an online consultation platform.
//!
//! - [`fanout`]: the sharded in-memory fan-out core for live comments (no sockets).
//! - [`consult`]: the domain as sans-I/O state machines (floor, questions, comment policy, audit).
//! - [`record`]: the durable consultation record (SQLite by default).
//! - [`bus`]: cross-node delivery (in-process for one node; NATS in a cluster).
//! - [`programme`]: the livestream's programme: source by floor, keyframe switching, fMP4/LL-HLS (pure).
//! - [`server`]: the axum/tokio shell: HTTP API, websocket sessions, auth, metrics.
//! - [`admin`]: the organisers' side (activities, settings, committees, accounts, invitations), pure.
//!
//! Dependency direction: `server` uses all others; `fanout` and `consult` use none of them.

pub mod admin;
pub mod bus;
pub mod config;
pub mod consensus;
pub mod consult;
pub mod fanout;
pub mod organise;
pub mod programme;
pub mod record;
pub mod server;
